"""The meeting lifecycle (contract v2): cancel, reschedule, reassign and no-show, through a
real Kafka-protocol broker, on SQLite and on PostgreSQL, black box: commands and suggestion
requests in, replies and `rotations.events` out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.client import RotationsClient
from tests.integration import test_directory
from tests.integration.helpers import command, send
from tests.integration.test_directory import MANAGER, act, user
from tests.integration.test_rule_v2 import create, published

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# The service whose directory is required, and its client (a second process per store when
# test_directory.py runs in the same session: fixtures are per module).
directory_service = test_directory.directory_service
dclient = test_directory.dclient

RECORD = {"type": "deal", "id": "42"}
# Every lifecycle command, with the fields it needs besides `meeting_id` ("b" is a member of
# the rotations these run on; "a" hosts their meeting).
LIFECYCLE = [
    pytest.param("CancelMeeting", {"reason": "customer cancelled"}, id="cancel"),
    pytest.param("RescheduleMeeting", {"starts_at": "2030-01-07T10:00:00+00:00"}, id="reschedule"),
    pytest.param("ReassignMeeting", {"host_id": "b"}, id="reassign-named"),
    pytest.param("ReassignMeeting", {}, id="reassign-auto"),
    pytest.param("MarkNoShow", {}, id="no-show"),
]


def accepted(reply: dict[str, Any], *events: str) -> dict[str, Any]:
    assert reply["status"] == "accepted", reply
    if events:
        assert [e["type"] for e in reply["events"]] == list(events), reply
    return reply


def rejected(reply: dict[str, Any], code: str) -> None:
    assert reply["status"] == "rejected", reply
    assert reply["error"]["code"] == code, reply
    assert reply["events"] == [], reply


async def booking(
    client: RotationsClient, rotation: str, meeting_id: str, **fields: Any
) -> dict[str, Any]:
    reply = await send(
        client, "BookMeeting", rotation, meeting_id=meeting_id, record=RECORD, **fields
    )
    return accepted(reply, "MeetingBooked")


async def counts(client: RotationsClient, rotation: str, **request: Any) -> dict[str, int]:
    """Each member's `meetings` in a suggestion (request fields: as_of, starts_at, ...)."""
    answer = await client.suggest(rotation, **request)
    assert answer.get("error") is None, answer
    return {c["user_id"]: c["meetings"] for c in answer["candidates"]}


def day(days_ahead: int) -> datetime:
    """10:00 UTC on a day a little ahead (well inside the 40-day horizon)."""
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days_ahead)


async def test_a_cancelled_meeting_stops_counting_and_its_id_stays_taken(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"cancel-{uid}"
    await create(client, rotation, ["kari", "ola"])
    booked = await booking(client, rotation, "m1")
    assert booked["host_id"] == "kari"
    before_cancel = datetime.now(UTC)

    cancelled = await send(client, "CancelMeeting", rotation, meeting_id="m1", reason="moved")
    accepted(cancelled, "MeetingCancelled")
    assert cancelled["version"] == booked["version"] + 1
    answer = await client.suggest(rotation)
    assert {c["user_id"]: c["meetings"] for c in answer["candidates"]} == {"kari": 0, "ola": 0}
    # Cancelling does not change kari's last assignment: ola (never assigned) goes first.
    assert (answer["host_id"], answer["reason"]) == ("ola", "tie_least_recent")

    again = await send(client, "BookMeeting", rotation, meeting_id="m1", record=RECORD)
    rejected(again, "duplicate_meeting")
    rejected(await send(client, "CancelMeeting", rotation, meeting_id="m1"), "meeting_cancelled")

    then = await client.suggest(rotation, as_of=before_cancel)
    assert {c["user_id"]: c["meetings"] for c in then["candidates"]} == {"kari": 1, "ola": 0}
    assert then["host_id"] == "ola"
    assert then["position"] == booked["events"][0]["position"]


async def test_a_rescheduled_meeting_moves_between_windows(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"resched-{uid}"
    await create(client, rotation, ["a", "b"], policy={"window": "day", "count_by": "starts_at"})
    first, second = day(3), day(5)
    booked = await booking(client, rotation, "m1", starts_at=first.isoformat())
    assert booked["host_id"] == "a"
    assert await counts(client, rotation, starts_at=first) == {"a": 1, "b": 0}
    assert await counts(client, rotation, starts_at=second) == {"a": 0, "b": 0}
    assert await counts(client, rotation) == {"a": 0, "b": 0}  # today: another day

    moved = await send(
        client, "RescheduleMeeting", rotation, meeting_id="m1", starts_at=second.isoformat()
    )
    accepted(moved, "MeetingRescheduled")
    assert await counts(client, rotation, starts_at=first) == {"a": 0, "b": 0}
    assert await counts(client, rotation, starts_at=second) == {"a": 1, "b": 0}  # same host
    on_second = await client.suggest(rotation, starts_at=second)
    assert (on_second["host_id"], on_second["reason"]) == ("b", "fewest_meetings")


async def test_a_reassigned_meeting_counts_for_the_new_host_in_its_window(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"rewin-{uid}"
    await create(client, rotation, ["a", "b"], policy={"window": "day", "count_by": "starts_at"})
    start = day(4)
    assert (await booking(client, rotation, "m1", starts_at=start.isoformat()))["host_id"] == "a"

    moved = await send(client, "ReassignMeeting", rotation, meeting_id="m1", host_id="b")
    assert accepted(moved, "MeetingReassigned")["host_id"] == "b"
    assert await counts(client, rotation, starts_at=start) == {"a": 0, "b": 1}
    assert await counts(client, rotation) == {"a": 0, "b": 0}  # not in today's window


async def test_reassign_to_a_named_member_moves_the_count(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"named-{uid}"
    await create(client, rotation, ["kari", "ola", "per"])
    assert (await booking(client, rotation, "m1"))["host_id"] == "kari"

    moved = await send(client, "ReassignMeeting", rotation, meeting_id="m1", host_id="per")
    assert accepted(moved, "MeetingReassigned")["host_id"] == "per"
    answer = await client.suggest(rotation)
    by_user = {c["user_id"]: c for c in answer["candidates"]}
    assert {u: c["meetings"] for u, c in by_user.items()} == {"kari": 0, "ola": 0, "per": 1}
    # The meeting is per's latest assignment; kari keeps hers (ola, never assigned, is next).
    assert by_user["per"]["last_assigned_at"] > by_user["kari"]["last_assigned_at"]
    assert answer["host_id"] == "ola"

    back = await send(client, "ReassignMeeting", rotation, meeting_id="m1", host_id="kari")
    assert accepted(back, "MeetingReassigned")["host_id"] == "kari"
    assert await counts(client, rotation) == {"kari": 1, "ola": 0, "per": 0}


async def test_reassign_without_host_takes_the_suggestion_among_the_others(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"auto-{uid}"
    await create(client, rotation, ["a", "b", "c"])
    for meeting, host in [("m1", "b"), ("m2", "b"), ("m3", "c"), ("m4", "c")]:
        await booking(client, rotation, meeting, host_id=host)
    assert (await booking(client, rotation, "m5"))["host_id"] == "a"
    # a (1 meeting) would still be the suggestion; the current host is left out: b and c
    # have 2 each and b was assigned before c.
    assert (await client.suggest(rotation))["host_id"] == "a"

    moved = await send(client, "ReassignMeeting", rotation, meeting_id="m5")
    assert accepted(moved, "MeetingReassigned")["host_id"] == "b"
    assert await counts(client, rotation) == {"a": 0, "b": 3, "c": 2}
    assert (await client.suggest(rotation))["host_id"] == "a"


async def test_reassign_refusals_change_nothing(client: RotationsClient, uid: str) -> None:
    rotation = f"refuse-{uid}"
    await create(client, rotation, ["a", "b"])
    booked = await booking(client, rotation, "m1")
    assert booked["host_id"] == "a"
    unknown = await send(client, "ReassignMeeting", rotation, meeting_id="m1", host_id="nobody")
    rejected(unknown, "unknown_member")

    accepted(await send(client, "ToggleAvailability", rotation, user_id="b", available=False))
    nobody_else = await send(client, "ReassignMeeting", rotation, meeting_id="m1")
    rejected(nobody_else, "no_available_member")
    assert await counts(client, rotation) == {"a": 1, "b": 0}

    # Named, an unavailable member may still take it (an override, as for a booking).
    overridden = await send(client, "ReassignMeeting", rotation, meeting_id="m1", host_id="b")
    assert accepted(overridden, "MeetingReassigned")["host_id"] == "b"
    assert overridden["version"] == booked["version"] + 2  # the refusals stored nothing
    assert await counts(client, rotation) == {"a": 0, "b": 1}

    alone = f"alone-{uid}"
    await create(client, alone, ["solo"])
    await booking(client, alone, "m1")
    rejected(await send(client, "ReassignMeeting", alone, meeting_id="m1"), "no_available_member")


async def test_a_no_show_stops_counting_when_no_shows_do_not_count(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"noshow-{uid}"
    await create(client, rotation, ["a", "b"], policy={"no_shows_count": False})
    assert (await booking(client, rotation, "m1"))["host_id"] == "a"
    accepted(await send(client, "MarkNoShow", rotation, meeting_id="m1"), "MeetingMarkedNoShow")
    assert await counts(client, rotation) == {"a": 0, "b": 0}
    # Counting fields apply as if always in force: counted again once no-shows count.
    accepted(await send(client, "SetPolicy", rotation, policy={"no_shows_count": True}))
    assert await counts(client, rotation) == {"a": 1, "b": 0}

    counted = f"noshow-default-{uid}"
    await create(client, counted, ["a", "b"])
    await booking(client, counted, "m1")
    accepted(await send(client, "MarkNoShow", counted, meeting_id="m1"), "MeetingMarkedNoShow")
    assert await counts(client, counted) == {"a": 1, "b": 0}  # default: no-shows count


async def with_a_meeting(client: RotationsClient, rotation: str, meeting_id: str = "m1") -> str:
    """A rotation of a and b, and a meeting a hosts (what every LIFECYCLE command acts on)."""
    await create(client, rotation, ["a", "b"])
    assert (await booking(client, rotation, meeting_id))["host_id"] == "a"
    return rotation


@pytest.mark.parametrize(("kind", "fields"), LIFECYCLE)
async def test_unknown_and_cancelled_meetings_are_refused(
    client: RotationsClient, uid: str, kind: str, fields: dict[str, Any]
) -> None:
    rotation = await with_a_meeting(client, f"mine-{uid}")
    other = await with_a_meeting(client, f"other-{uid}", "theirs")
    for meeting_id in ("never-booked", "theirs"):  # "theirs": booked in another rotation
        reply = await send(client, kind, rotation, meeting_id=meeting_id, **fields)
        rejected(reply, "unknown_meeting")
    assert await counts(client, other) == {"a": 1, "b": 0}

    accepted(await send(client, "CancelMeeting", rotation, meeting_id="m1"), "MeetingCancelled")
    rejected(await send(client, kind, rotation, meeting_id="m1", **fields), "meeting_cancelled")
    assert await counts(client, rotation) == {"a": 0, "b": 0}


@pytest.mark.parametrize(("kind", "fields"), LIFECYCLE)
async def test_a_resent_command_id_gets_the_original_reply_and_stores_nothing(
    client: RotationsClient, uid: str, kind: str, fields: dict[str, Any]
) -> None:
    rotation = await with_a_meeting(client, f"idem-{uid}")
    message = command(kind, rotation, meeting_id="m1", **fields)
    first = accepted(await client.command(message))
    after_first = await client.suggest(rotation)

    assert await client.command(message) == first
    assert await client.suggest(rotation) == after_first
    renamed = accepted(await send(client, "RenameRotation", rotation, name="next"))
    assert renamed["version"] == first["version"] + 1


async def test_reassigning_to_someone_else_needs_schedule_for_others(
    dclient: RotationsClient, uid: str
) -> None:
    boss, rep, other, seatless = (f"{n}-{uid}" for n in ("boss", "rep", "other", "seatless"))
    await user(dclient, boss, permissions=[*MANAGER, "schedule_for_others"])
    await user(dclient, rep)
    await user(dclient, other)
    await user(dclient, seatless, seat=False, permissions=["schedule_for_others"])
    rotation = f"perm-{uid}"
    accepted(await act(dclient, boss, "CreateRotation", rotation, name="P", members=[rep, other]))
    for meeting, host in [("m1", rep), ("m2", other)]:
        fields = {"meeting_id": meeting, "record": RECORD, "host_id": host}
        accepted(await act(dclient, boss, "BookMeeting", rotation, **fields))

    to_other = await act(dclient, rep, "ReassignMeeting", rotation, meeting_id="m1", host_id=other)
    rejected(to_other, "forbidden")
    assert "schedule_for_others" in to_other["error"]["message"]
    no_seat = await act(
        dclient, seatless, "ReassignMeeting", rotation, meeting_id="m1", host_id=other
    )
    rejected(no_seat, "forbidden")
    stranger = await act(dclient, f"nobody-{uid}", "CancelMeeting", rotation, meeting_id="m1")
    rejected(stranger, "forbidden")

    # To yourself, or to whoever the rotation picks (as an auto-assigned booking), is allowed.
    to_self = await act(dclient, rep, "ReassignMeeting", rotation, meeting_id="m2", host_id=rep)
    assert accepted(to_self)["host_id"] == rep
    picked = await act(dclient, rep, "ReassignMeeting", rotation, meeting_id="m1")
    assert accepted(picked)["host_id"] == other
    assert accepted(await act(dclient, rep, "MarkNoShow", rotation, meeting_id="m1"))

    await user(dclient, rep, permissions=["schedule_for_others"])
    granted = await act(dclient, rep, "ReassignMeeting", rotation, meeting_id="m2", host_id=other)
    assert accepted(granted)["host_id"] == other
    assert accepted(await act(dclient, rep, "CancelMeeting", rotation, meeting_id="m2"))


async def test_the_events_topic_carries_the_lifecycle_events(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"events-{uid}"
    await create(client, rotation, ["a", "b"])
    await booking(client, rotation, "m1")
    start = day(2).isoformat()
    replies = [
        await send(client, "RescheduleMeeting", rotation, meeting_id="m1", starts_at=start),
        await send(client, "ReassignMeeting", rotation, meeting_id="m1", host_id="b"),
        await send(client, "MarkNoShow", rotation, meeting_id="m1"),
        await send(client, "CancelMeeting", rotation, meeting_id="m1", reason="lost"),
    ]
    positions = [accepted(r)["events"][0]["position"] for r in replies]

    events = await published(client, rotation, positions[-1])
    mine = list({b["position"]: b for b in events}.values())  # published at least once
    assert [b["type"] for b in mine] == [
        "Created",
        "MeetingBooked",
        "MeetingRescheduled",
        "MeetingReassigned",
        "MeetingMarkedNoShow",
        "MeetingCancelled",
    ]
    rescheduled, reassigned, no_show, cancelled = mine[2:]
    assert [b["position"] for b in mine[2:]] == positions
    assert all(b["meeting_id"] == "m1" and b["rotation_id"] == rotation for b in mine[1:])
    assert datetime.fromisoformat(rescheduled["starts_at"]) == datetime.fromisoformat(start)
    assert (reassigned["host_id"], reassigned["meeting"]["host_id"]) == ("b", "a")
    assert {"suggested_host_id", "candidates", "override", "reason"} <= reassigned.keys()
    assert no_show["meeting"]["host_id"] == "b"
    assert cancelled["reason"] == "lost"
