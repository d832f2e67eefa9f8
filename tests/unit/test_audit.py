"""Audit history and booking explanations, from the events alone (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from events.errors import UnknownRotation
from events.policy import DEFAULT_POLICY
from events.ranking import FEWEST_MEETINGS, TIE_JOIN_ORDER, TIE_LEAST_RECENT
from events.rotation import OVERRIDE, standing_to_dict
from projections.audit import MeetingNotFound, audit_history, explain_booking, explain_bookings
from service.application import RotationsApplication
from tests.unit.commands import RECORD, book, fact, ok, user

RID = "audit-r"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


class StepClock:
    """Each call is one minute after the previous: bookings get distinct, known instants."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(minutes=self.calls)


@pytest.fixture
def clocked(store_env: dict[str, str]) -> Iterator[RotationsApplication]:
    app = RotationsApplication(env=dict(store_env), clock=StepClock())
    yield app
    app.close()


def lifecycle(app: RotationsApplication) -> list[int]:
    """A history touching every event type; returns the positions the replies reported."""
    replies = [
        ok(app, "CreateRotation", RID, name="Sales", members=["a", "b"]),
        book(app, RID, "m1"),  # a: tie on join order
        book(app, RID, "m2", host_id="a"),  # override: b was due
        ok(app, "AddMember", RID, user_id="c"),  # counts reset
        ok(app, "ToggleAvailability", RID, user_id="c", available=False),
        book(app, RID, "m3"),  # b: never assigned, so least recent
        ok(app, "RemoveMember", RID, user_id="b"),
        ok(app, "RenameRotation", RID, name="Sales EMEA"),
        ok(app, "DeleteRotation", RID),
    ]
    return [reply.events[0].position for reply in replies]


def test_history_lists_every_event_with_position_version_and_time(
    clocked: RotationsApplication,
) -> None:
    positions = lifecycle(clocked)

    entries = audit_history(clocked, RID)

    assert [e.position for e in entries] == positions
    assert [e.version for e in entries] == list(range(1, 10))
    assert [e.timestamp for e in entries] == sorted(e.timestamp for e in entries)
    assert [(e.event, e.user_id, e.reset) for e in entries] == [
        ("Created", None, True),
        ("MeetingBooked", None, False),
        ("MeetingBooked", None, False),
        ("MemberAdded", "c", True),
        ("AvailabilityToggled", "c", False),
        ("MeetingBooked", None, False),
        ("MemberRemoved", "b", False),
        ("Renamed", None, False),
        ("Deleted", None, False),
    ]
    bookings = [e for e in entries if e.event == "MeetingBooked"]
    assert [
        (e.meeting_id, e.suggested_host_id, e.host_id, e.override, e.reason) for e in bookings
    ] == [
        ("m1", "a", "a", False, TIE_JOIN_ORDER),
        ("m2", "b", "a", True, OVERRIDE),
        ("m3", "b", "b", False, TIE_LEAST_RECENT),
    ]
    assert entries[0].members == ("a", "b")
    assert entries[4].available is False
    assert entries[7].name == "Sales EMEA"
    assert "override of suggested b" in bookings[1].summary


def test_history_entries_serialise_to_json_lines(clocked: RotationsApplication) -> None:
    lifecycle(clocked)

    lines = [json.dumps(e.to_json()) for e in audit_history(clocked, RID)]

    first = json.loads(lines[0])
    assert first["event"] == "Created" and first["members"] == ["a", "b"]
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None


def test_history_of_an_unknown_rotation_is_an_error(app: RotationsApplication) -> None:
    with pytest.raises(UnknownRotation):
        audit_history(app, "nope")


def test_explain_shows_the_stored_record_and_re_derives_it(clocked: RotationsApplication) -> None:
    positions = lifecycle(clocked)

    auto = explain_booking(clocked, RID, "m3")
    override = explain_booking(clocked, RID, "m2")

    assert auto.matches is True and auto.differences == ()
    assert (auto.position, auto.version, auto.host_id) == (positions[5], 6, "b")
    assert auto.record == RECORD and auto.starts_at is None
    assert auto.stored == auto.derived
    assert auto.derived.suggested_host_id == "b" and auto.derived.reason == TIE_LEAST_RECENT
    # Unavailable c is listed last; a (assigned at m2) after b (never assigned since reset).
    assert [c["user_id"] for c in auto.derived.candidates] == ["b", "a", "c"]
    assert override.matches is True
    assert (override.derived.suggested_host_id, override.derived.override) == ("b", True)
    assert override.derived.reason == OVERRIDE
    assert override.to_json()["matches"] is True


def test_explain_bookings_explains_each_booking_once(clocked: RotationsApplication) -> None:
    lifecycle(clocked)

    explanations = explain_bookings(clocked, RID)

    assert [x.meeting_id for x in explanations] == ["m1", "m2", "m3"]
    assert all(x.matches for x in explanations)


def test_explain_an_unknown_meeting_or_rotation(clocked: RotationsApplication) -> None:
    lifecycle(clocked)

    with pytest.raises(MeetingNotFound):
        explain_booking(clocked, RID, "m404")
    with pytest.raises(UnknownRotation):
        explain_booking(clocked, "nope", "m1")


def test_a_stored_record_the_events_do_not_support_is_a_mismatch(
    clocked: RotationsApplication,
) -> None:
    ok(clocked, "CreateRotation", RID, name="Sales", members=["a", "b"])
    book(clocked, RID, "m1")
    rotation = clocked.get_rotation(RID)
    wrong = rotation.suggest()
    # A decision record claiming b was suggested for fewest meetings, with no override.
    rotation._meeting_booked(
        meeting_id="m-bad",
        host_id="b",
        suggested_host_id="b",
        override=False,
        reason=FEWEST_MEETINGS,
        candidates=[standing_to_dict(s) for s in reversed(wrong.candidates)],
        record=RECORD,
        starts_at=None,
        at=T0 + timedelta(hours=1),
        policy=dict(DEFAULT_POLICY),
        reference_at=T0 + timedelta(hours=1),
        window=None,
        preferred_host_id=None,
    )
    clocked.save(rotation)

    explanation = explain_booking(clocked, RID, "m-bad")

    assert explanation.matches is False
    assert explanation.derived.suggested_host_id == "b"  # b was genuinely due
    assert explanation.derived.reason == FEWEST_MEETINGS
    assert explanation.stored is not None
    assert any(d.startswith("candidate 1:") for d in explanation.differences)
    assert not any(d.startswith("suggested_host_id") for d in explanation.differences)


def test_history_shows_who_joined_and_left_with_teams(clocked: RotationsApplication) -> None:
    fact(clocked, "TeamUpdated", team_id="t1", members=["x", "y"])
    ok(clocked, "CreateRotation", RID, name="Sales", members=["a", "x"])
    ok(clocked, "AddTeam", RID, team_id="t1")
    fact(clocked, "TeamUpdated", team_id="t1", members=["y", "z"])
    ok(clocked, "RemoveTeam", RID, team_id="t1")

    entries = audit_history(clocked, RID)

    assert [(e.event, e.team_id, e.joined, e.left, e.reset) for e in entries] == [
        ("Created", None, ("a", "x"), (), True),
        ("TeamAdded", "t1", ("y",), (), True),  # x was already a member in her own right
        ("TeamMembersChanged", "t1", ("z",), (), True),  # x stays: she was added directly
        ("TeamRemoved", "t1", (), ("y", "z"), False),
    ]
    assert "joined: y; every count reset to 0" in entries[1].summary


@pytest.fixture
def directory_app(store_env: dict[str, str]) -> Iterator[RotationsApplication]:
    """The directory decides who may host; the tester may do everything."""
    app = RotationsApplication(env=dict(store_env), clock=StepClock(), directory="required")
    user(app, "tester", permissions=["manage_rotations", "schedule_for_others"])
    for member in ("a", "b", "c"):
        user(app, member)
    yield app
    app.close()


def test_explain_takes_eligibility_from_the_directory_before_the_booking(
    directory_app: RotationsApplication, store_env: dict[str, str]
) -> None:
    app = directory_app
    ok(app, "CreateRotation", RID, name="Sales", members=["a", "b", "c"])
    fact(app, "UserDeactivated", user_id="a")
    assert book(app, RID, "m1").host_id == "b"  # a was due, but deactivated
    user(app, "a")  # back, after the booking
    user(app, "c", eligible=False)  # gone, after the booking

    explanation = explain_booking(app, RID, "m1")

    assert explanation.matches is True, explanation.differences
    why = {c["user_id"]: c["why"] for c in explanation.derived.candidates}
    assert why == {"a": "deactivated", "b": None, "c": None}
    # The same store read as if no directory existed cannot re-derive it: run explain
    # in the mode the service runs in.
    open_app = RotationsApplication(env=dict(store_env), directory="open")
    try:
        assert explain_booking(open_app, RID, "m1").matches is False
    finally:
        open_app.close()
