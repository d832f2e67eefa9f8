"""The whole slice over a real Kafka-protocol broker, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.client import RotationsClient
from tests.integration.helpers import book, dead_letters_where, read_topic, send
from tests.integration.service_process import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_create_book_and_suggest(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    created = await send(client, "CreateRotation", rotation, name="Sales", members=["kari", "ola"])
    assert created["status"] == "accepted"
    assert created["version"] == 1
    assert [e["type"] for e in created["events"]] == ["Created"]

    first = await book(client, rotation)
    second = await book(client, rotation)
    assert (first["host_id"], second["host_id"]) == ("kari", "ola")
    assert second["events"][0]["position"] > first["events"][0]["position"]

    answer = await client.suggest(rotation)
    assert answer["host_id"] == "kari"
    assert answer["reason"] == "tie_least_recent"
    assert [(c["user_id"], c["meetings"]) for c in answer["candidates"]] == [
        ("kari", 1),
        ("ola", 1),
    ]
    assert answer["position"] >= second["events"][0]["position"]


async def test_adding_a_member_resets_counts(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Service", members=["a", "b"])
    await book(client, rotation)
    await book(client, rotation)
    await book(client, rotation)
    added = await send(client, "AddMember", rotation, user_id="c")
    assert added["status"] == "accepted"

    answer = await client.suggest(rotation)
    assert {c["user_id"]: c["meetings"] for c in answer["candidates"]} == {"a": 0, "b": 0, "c": 0}
    # c was never assigned, so it is the oldest and goes first.
    assert answer["host_id"] == "c"
    assert answer["reason"] == "tie_least_recent"


async def test_unavailable_member_is_skipped_until_back(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari", "ola"])
    off = await send(client, "ToggleAvailability", rotation, user_id="kari", available=False)
    assert off["status"] == "accepted"
    assert (await client.suggest(rotation))["host_id"] == "ola"
    assert (await book(client, rotation))["host_id"] == "ola"
    assert (await book(client, rotation))["host_id"] == "ola"

    await send(client, "ToggleAvailability", rotation, user_id="kari", available=True)
    answer = await client.suggest(rotation)
    assert answer["host_id"] == "kari"
    assert answer["candidates"][0]["available"] is True


async def test_override_books_the_chosen_member(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari", "ola"])
    await send(client, "ToggleAvailability", rotation, user_id="ola", available=False)
    overridden = await book(client, rotation, host="ola")
    assert overridden["status"] == "accepted"
    assert overridden["host_id"] == "ola"
    answer = await client.suggest(rotation, exclude=["kari"])
    assert answer["host_id"] is None
    assert answer["reason"] == "no_available_member"
    assert len(answer["candidates"]) == 2


@pytest.mark.parametrize(
    ("setup", "kind", "fields", "code"),
    [
        (False, "AddMember", {"user_id": "x"}, "unknown_rotation"),
        (True, "CreateRotation", {"name": "again", "members": []}, "rotation_exists"),
        (True, "AddMember", {"user_id": "kari"}, "already_member"),
        (True, "RemoveMember", {"user_id": "nobody"}, "unknown_member"),
        (
            True,
            "BookMeeting",
            {"meeting_id": "m", "host_id": "nobody", "record": {"type": "deal", "id": "1"}},
            "unknown_member",
        ),
    ],
)
async def test_domain_errors_are_replied_with_codes(
    client: RotationsClient, uid: str, setup: bool, kind: str, fields: dict[str, object], code: str
) -> None:
    rotation = f"r-{uid}"
    if setup:
        await send(client, "CreateRotation", rotation, name="Sales", members=["kari"])
    reply = await send(client, kind, rotation, **fields)
    assert reply["status"] == "rejected"
    assert reply["error"]["code"] == code
    assert reply["rotation_id"] == rotation


async def test_duplicate_meeting_and_deleted_rotation(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari"])
    meeting = {"meeting_id": "m-1", "record": {"type": "contact", "id": "7"}}
    assert (await send(client, "BookMeeting", rotation, **meeting))["status"] == "accepted"
    again = await send(client, "BookMeeting", rotation, **meeting)
    assert again["error"]["code"] == "duplicate_meeting"

    assert (await send(client, "DeleteRotation", rotation))["status"] == "accepted"
    after = await send(client, "AddMember", rotation, user_id="ola")
    assert after["error"]["code"] == "rotation_deleted"
    answer = await client.suggest(rotation)
    assert answer["host_id"] is None
    assert answer["candidates"] == []
    assert answer["error"]["code"] == "rotation_deleted"


async def test_unknown_rotation_suggestion(client: RotationsClient, uid: str) -> None:
    answer = await client.suggest(f"missing-{uid}")
    assert answer["error"]["code"] == "unknown_rotation"
    assert answer["host_id"] is None


async def test_redelivered_command_id_gets_original_reply(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari", "ola"])
    booking = {
        "type": "BookMeeting",
        "command_id": f"cmd-{uid}",
        "rotation_id": rotation,
        "actor": "tests",
        "meeting_id": "m-1",
        "record": {"type": "deal", "id": "1"},
    }
    first = await client.command(booking)
    retried = await client.command(booking)
    assert retried == first
    answer = await client.suggest(rotation)
    assert sum(c["meetings"] for c in answer["candidates"]) == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (
            b'{"type": "BookMeeting", "command_id": "c", "rotation_id": "r", "actor": "a"}',
            "meeting_id",
        ),
        (b'{"type": "Teleport", "command_id": "c", "rotation_id": "r", "actor": "a"}', "type"),
        (b"[1, 2, 3]", "message"),
    ],
)
async def test_invalid_messages_are_replied_and_dead_lettered(
    client: RotationsClient, body: bytes, says: str
) -> None:
    raw = await client.request_raw(client.settings.commands_topic, body, key="bad")
    reply = json.loads(raw)
    assert reply["status"] == "rejected"
    assert reply["error"]["code"] == "invalid_message"
    assert says in reply["error"]["message"]

    mine = await dead_letters_where(client, lambda letter: letter["original_bytes"] == body)
    assert mine[-1]["source_topic"] == client.settings.commands_topic
    assert mine[-1]["error"]["code"] == "invalid_message"


async def test_invalid_suggestion_request(client: RotationsClient) -> None:
    raw = await client.request_raw(client.settings.suggest_topic, b'{"exclude": 5}')
    reply = json.loads(raw)
    assert reply["error"]["code"] == "invalid_message"
    assert "rotation_id" in reply["error"]["message"]


async def test_service_keeps_going_after_bad_input(client: RotationsClient, uid: str) -> None:
    await client.request_raw(client.settings.commands_topic, b"\x00" * 100)
    rotation = f"r-{uid}"
    assert (await send(client, "CreateRotation", rotation, name="S", members=["a"]))["status"] == (
        "accepted"
    )


async def test_as_of_answers_from_the_events(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari", "ola"])
    first = await book(client, rotation)
    between = datetime.now(UTC).isoformat()
    await book(client, rotation)

    then = await client.suggest(rotation, as_of=between)
    assert then["host_id"] == "ola"
    assert then["position"] == first["events"][0]["position"]
    assert {c["user_id"]: c["meetings"] for c in then["candidates"]} == {"kari": 1, "ola": 0}


async def test_pipelined_bookings_spread_evenly(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    members = [f"m{i}" for i in range(5)]
    await send(client, "CreateRotation", rotation, name="Burst", members=members)
    from tests.integration.helpers import command

    futures = [
        await client.send_raw(
            client.settings.commands_topic,
            json.dumps(
                command(
                    "BookMeeting",
                    rotation,
                    meeting_id=f"m{i}",
                    record={"type": "ticket", "id": str(i)},
                )
            ).encode(),
            key=rotation,
        )
        for i in range(50)
    ]
    replies = [json.loads(r) for r in await asyncio.wait_for(asyncio.gather(*futures), 60)]
    assert all(r["status"] == "accepted" for r in replies)
    counts = {c["user_id"]: c["meetings"] for c in (await client.suggest(rotation))["candidates"]}
    assert counts == dict.fromkeys(members, 10)


async def test_restart_keeps_counts_and_suggestions(
    client: RotationsClient, service: ServiceProcess, uid: str
) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari", "ola", "per"])
    for _ in range(4):
        await book(client, rotation)
    before = await client.suggest(rotation)

    assert service.stop() == 0
    service.start()
    await service.wait_ready(client)

    after = await client.suggest(rotation)
    assert after["candidates"] == before["candidates"]
    assert after["host_id"] == before["host_id"]
    assert (await book(client, rotation))["host_id"] == before["host_id"]


async def test_stored_events_are_published_in_order(client: RotationsClient, uid: str) -> None:
    rotation = f"r-{uid}"
    await send(client, "CreateRotation", rotation, name="Sales", members=["kari"])
    await send(client, "AddMember", rotation, user_id="ola")
    booked = await book(client, rotation)
    position = booked["events"][0]["position"]

    mine: list[Any] = []
    for _ in range(100):  # published after they are stored: wait for the last one
        records = await read_topic(
            client.settings.kafka_bootstrap_servers, client.settings.events_topic
        )
        mine = [r for r in records if r.key == rotation.encode()]
        if any(dict(r.headers).get("position") == str(position).encode() for r in mine):
            break
        await asyncio.sleep(0.1)
    types = [json.loads(r.value)["type"] for r in mine]
    assert types[:3] == ["Created", "MemberAdded", "MeetingBooked"]
    positions = [int(dict(r.headers)["position"]) for r in mine]
    assert positions == sorted(positions)
    assert positions[2] == position
