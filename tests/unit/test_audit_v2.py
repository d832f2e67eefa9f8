"""Audit and explanations of rule v2 and the meeting lifecycle (SQLite and PostgreSQL).

Bookings go through `RotationsApplication.execute`; the version-2 commands drive the
aggregate itself (its command methods, as the handlers call them) and save it, so these
tests need nothing of the service but the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.ranking import FEWEST_MEETINGS, TIE_JOIN_ORDER
from events.rotation import LEVEL_JOIN, LEVEL_RETURN, MANUAL, Meeting, Rotation, rotation_uuid
from projections.audit import (
    BOOKED,
    CANCELLED,
    NO_SHOW,
    REASSIGNED,
    RESCHEDULED,
    MeetingNotFound,
    audit_history,
    explain_booking,
    explain_bookings,
    explain_meeting,
)
from service.application import RotationsApplication
from tests.unit.commands import book, ok

RID = "audit-v2"
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)  # a Monday
START = datetime(2024, 5, 8, 14, 0, tzinfo=UTC)


class Clock:
    """The application's clock and the times the tests give the aggregate: one minute on
    at every call, so every decision has a distinct, known instant."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(store_env: dict[str, str], clock: Clock) -> Iterator[RotationsApplication]:
    app = RotationsApplication(env=dict(store_env), clock=clock)
    yield app
    app.close()


def change(app: RotationsApplication, do: Callable[[Rotation], Any], rotation_id: str = RID) -> Any:
    """Run one command method on the stored rotation and save what it recorded."""
    rotation = app.get_rotation(rotation_id)
    result = do(rotation)
    app.save(rotation)
    app.refresh_caches()
    return result


def facts(app: RotationsApplication, meeting_id: str, rotation_id: str = RID) -> Meeting:
    """The meeting's facts from its latest event (the ledger's index does this in service)."""
    for event in reversed(list(app.events.get(rotation_uuid(rotation_id)))):
        if getattr(event, "meeting_id", None) == meeting_id:
            found: Meeting = event.facts()  # type: ignore[attr-defined]
            return found
    raise LookupError(meeting_id)


def v2_history(app: RotationsApplication, clock: Clock) -> None:
    """Weights, a weekly window with caps, levelling on join, a manual credit, options,
    and every lifecycle event."""
    ok(app, "CreateRotation", RID, name="Sales", members=["a", "b"])
    change(
        app,
        lambda r: r.set_policy(
            {"on_join": "level", "window": "week", "cap": {"meetings": 5, "per": "week"}},
            at=clock(),
        ),
    )
    book(app, RID, "m1")  # a (join order)
    book(app, RID, "m2")  # b
    book(app, RID, "m3")  # a (least recent)
    change(app, lambda r: r.add_member("c", at=clock(), options={"weight": 200}))
    change(app, lambda r: r.set_member_options("b", {"priority": 4, "cap": None}))
    change(app, lambda r: r.credit_member("a", -1, "double-booked", actor="lead", at=clock()))
    book(app, RID, "m4")
    change(app, lambda r: r.cancel_meeting(facts(app, "m1"), "customer", "lead", clock()))
    change(app, lambda r: r.reschedule_meeting(facts(app, "m3"), START, "lead", clock()))
    change(app, lambda r: r.reassign_meeting(facts(app, "m2"), None, "lead", clock()))
    change(app, lambda r: r.mark_no_show(facts(app, "m3"), "lead", clock()))
    change(app, lambda r: r.set_policy({"window": "month", "no_shows_count": False}, clock()))


def by_event(app: RotationsApplication) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in audit_history(app, RID):
        found.setdefault(entry.event, []).append(entry)
    return found


def test_policy_changes_say_what_changed(app: RotationsApplication, clock: Clock) -> None:
    v2_history(app, clock)

    first, second = by_event(app)["PolicySet"]

    assert first.changes == (
        "on_join reset → level",
        "window since_reset → week",
        "cap none → 5/week",
    )
    assert first.summary == (
        "policy set: on_join reset → level; window since_reset → week; cap none → 5/week"
    )
    assert first.policy is not None and first.policy["cap"] == {"meetings": 5, "per": "week"}
    # SetPolicy replaces the policy whole: what it leaves out goes back to its default.
    assert second.changes == (
        "on_join level → reset",
        "window week → month",
        "cap 5/week → none",
        "no_shows_count yes → no",
    )


def test_a_levelled_join_and_a_manual_credit_say_who_gave_them_and_why(
    app: RotationsApplication, clock: Clock
) -> None:
    v2_history(app, clock)
    entries = by_event(app)

    (added,) = entries["MemberAdded"]
    levelled, manual = entries["MemberCredited"]

    # Under on_join level nobody's count is reset; the newcomer is credited instead.
    assert added.reset is False and added.joined == ("c",)
    assert added.summary == "added c with weight 200 (joined: c; no reset (on_join level))"
    # a had 2, b 1 (weight 100 each): the least share 1/100 times c's weight 200 is 2.
    assert (levelled.user_id, levelled.credit, levelled.credit_kind) == ("c", 2, LEVEL_JOIN)
    assert levelled.actor is None
    assert levelled.summary == "c levelled on join by the service: credited +2 meetings"
    assert (manual.user_id, manual.credit, manual.credit_kind) == ("a", -1, MANUAL)
    assert (manual.actor, manual.reason) == ("lead", "double-booked")
    assert manual.summary == "credit taken back from a -1 meeting by lead: 'double-booked'"


def test_member_options_show_before_and_after(app: RotationsApplication, clock: Clock) -> None:
    v2_history(app, clock)

    (options,) = by_event(app)["MemberOptionsSet"]

    assert options.user_id == "b" and options.options == {"priority": 4, "cap": None}
    assert options.changes == ("priority 2 → 4", "cap 5/week (the policy's), unchanged")
    assert options.summary.startswith("options of b: priority 2 → 4")


def test_lifecycle_entries(app: RotationsApplication, clock: Clock) -> None:
    v2_history(app, clock)
    entries = by_event(app)

    (cancelled,) = entries["MeetingCancelled"]
    (rescheduled,) = entries["MeetingRescheduled"]
    (reassigned,) = entries["MeetingReassigned"]
    (no_show,) = entries["MeetingMarkedNoShow"]

    assert (cancelled.meeting_id, cancelled.host_id, cancelled.reason) == ("m1", "a", "customer")
    assert cancelled.actor == "lead"
    assert cancelled.summary == "meeting m1 of a cancelled by lead: 'customer'"
    assert (rescheduled.previous_starts_at, rescheduled.starts_at) == (None, START)
    assert rescheduled.summary == (
        f"meeting m3 of a rescheduled by lead: starts unset → {START.isoformat()}"
    )
    # a: 1 meeting left after the cancellation, -1 credit: share 1/100, the lowest.
    assert (reassigned.previous_host_id, reassigned.host_id) == ("b", "a")
    assert (reassigned.suggested_host_id, reassigned.override) == ("a", False)
    assert reassigned.reason == FEWEST_MEETINGS and reassigned.actor == "lead"
    assert reassigned.summary == (
        "meeting m2 reassigned by lead from b to a: as suggested (fewest_meetings)"
    )
    assert no_show.summary == "meeting m3 of a marked a no-show by lead: still counts " + (
        "(no_shows_count yes)"
    )
    line = json.loads(json.dumps(reassigned.to_json()))
    assert line["previous_host_id"] == "b" and line["event"] == "MeetingReassigned"


def test_a_levelled_return_is_the_services(app: RotationsApplication, clock: Clock) -> None:
    ok(app, "CreateRotation", RID, name="Sales", members=["a", "b"])
    change(app, lambda r: r.set_policy({"on_return": "level"}, at=clock()))
    change(app, lambda r: r.toggle_availability("b", False, at=clock()))
    book(app, RID, "m1")
    book(app, RID, "m2")
    change(app, lambda r: r.toggle_availability("b", True, at=clock()))

    credit = by_event(app)["MemberCredited"][-1]

    assert (credit.user_id, credit.credit, credit.credit_kind) == ("b", 2, LEVEL_RETURN)
    assert credit.summary == "b levelled on return by the service: credited +2 meetings"


def test_a_booking_explains_what_decided_it(app: RotationsApplication, clock: Clock) -> None:
    v2_history(app, clock)

    x = explain_booking(app, RID, "m4")

    assert x.matches is True, x.differences
    assert x.stored is not None and x.stored == x.derived
    assert x.derived.policy["window"] == "week" and x.derived.policy["on_join"] == "level"
    assert x.derived.reference_at == x.at
    assert x.derived.window == {
        "start": datetime(2024, 5, 6, tzinfo=UTC),
        "end": datetime(2024, 5, 13, tzinfo=UTC),
    }
    assert x.derived.preferred_host_id is None
    rows = {
        c["user_id"]: (c["meetings"], c["credits"], c["weight"], c["priority"], c["cap"])
        for c in x.derived.candidates
    }
    cap = {"meetings": 5, "per": "week"}
    # a: 2 meetings - 1 credit = share 2/100; b: 1 meeting, 2/100 but priority 4; c: 0 + 2
    # levelled, 3/200.
    assert rows == {
        "a": (2, -1, 100, 2, cap),
        "b": (1, 0, 100, 4, cap),
        "c": (0, 2, 200, 2, cap),
    }
    assert x.host_id == "c" and x.derived.reason == FEWEST_MEETINGS
    assert not any(c["capped"] for c in x.derived.candidates)
    assert all(c["held"] == 0 for c in x.derived.candidates)


def test_a_capped_member_is_explained_as_capped(app: RotationsApplication, clock: Clock) -> None:
    ok(app, "CreateRotation", RID, name="Sales", members=["a", "b"])
    change(app, lambda r: r.set_member_options("a", {"cap": {"meetings": 1, "per": "day"}}))
    book(app, RID, "m1")  # a, who reaches her cap
    book(app, RID, "m2")  # b
    book(app, RID, "m3")  # b again: a is capped for the day

    x = explain_booking(app, RID, "m3")

    assert x.matches is True, x.differences
    assert x.host_id == "b"
    a = next(c for c in x.derived.candidates if c["user_id"] == "a")
    assert a["capped"] is True and a["cap"] == {"meetings": 1, "per": "day"}
    assert x.derived.candidates[-1]["user_id"] == "a"  # listed after those who can host


def test_a_preferred_host_is_an_input_of_the_explanation(
    app: RotationsApplication, clock: Clock
) -> None:
    ok(app, "CreateRotation", RID, name="Sales", members=["a", "b"])
    change(
        app,
        lambda r: r.book_meeting(
            "m1", None, {"type": "deal", "id": "d"}, None, clock(), preferred_host_id="b"
        ),
    )

    x = explain_booking(app, RID, "m1")

    assert x.matches is True, x.differences
    assert (x.host_id, x.derived.reason, x.derived.preferred_host_id) == (
        "b",
        "preferred_host",
        "b",
    )
    (entry,) = by_event(app)["MeetingBooked"]
    assert entry.summary == "meeting m1 hosted by b: as suggested (preferred_host)"


def test_a_reassignment_is_explained_as_a_booking_is(
    app: RotationsApplication, clock: Clock
) -> None:
    v2_history(app, clock)

    decisions = explain_bookings(app, RID)

    assert [(x.kind, x.meeting_id) for x in decisions] == [
        (BOOKED, "m1"),
        (BOOKED, "m2"),
        (BOOKED, "m3"),
        (BOOKED, "m4"),
        (REASSIGNED, "m2"),
    ]
    assert all(x.matches for x in decisions), [x.differences for x in decisions]
    moved = decisions[-1]
    assert (moved.previous_host_id, moved.host_id, moved.actor) == ("b", "a", "lead")
    # Re-derived with b excluded: listed after those who could take it.
    assert moved.derived.candidates[-1]["user_id"] == "b"
    assert moved.derived.suggested_host_id == "a"


def test_a_meetings_whole_life_in_order(app: RotationsApplication, clock: Clock) -> None:
    v2_history(app, clock)

    m2 = explain_meeting(app, RID, "m2")
    m3 = explain_meeting(app, RID, "m3")
    m1 = explain_meeting(app, RID, "m1")

    assert [e.kind for e in m2.entries] == [BOOKED, REASSIGNED]
    assert [e.host_id for e in m2.entries] == ["b", "a"]
    assert [x.kind for x in m2.explanations] == [BOOKED, REASSIGNED]
    assert m2.matches is True and m2.status == BOOKED and m2.host_id == "a"
    assert [e.kind for e in m3.entries] == [BOOKED, RESCHEDULED, NO_SHOW]
    assert [e.starts_at for e in m3.entries] == [None, START, START]
    assert m3.entries[1].explanation is None and m3.status == NO_SHOW
    assert [e.kind for e in m1.entries] == [BOOKED, CANCELLED] and m1.status == CANCELLED
    assert m1.entries[1].entry.reason == "customer"
    data = json.loads(json.dumps(m2.to_json()))
    assert data["matches"] is True and data["status"] == "booked"
    assert data["entries"][1]["explanation"]["matches"] is True
    with pytest.raises(MeetingNotFound):
        explain_meeting(app, RID, "m404")


def test_a_tampered_v2_record_is_a_mismatch_field_by_field(
    app: RotationsApplication, clock: Clock
) -> None:
    v2_history(app, clock)

    def tampered_booking(rotation: Rotation) -> None:
        rotation.book_meeting("m-bad", None, {"type": "deal", "id": "d"}, None, clock())
        event = rotation.pending_events[-1]
        assert isinstance(event, Rotation.MeetingBooked)
        for candidate in event.candidates:
            if candidate["user_id"] == "c":
                candidate["weight"] = 300  # a weight c never had
        object.__setattr__(event, "policy", {**event.policy, "window": "day"})

    change(app, tampered_booking)

    x = explain_booking(app, RID, "m-bad")

    assert x.matches is False
    i = next(i for i, c in enumerate(x.derived.candidates, 1) if c["user_id"] == "c")
    assert f"candidate {i}: c's weight stored 300, re-derived 200" in x.differences
    assert "policy window day → month (stored → re-derived)" in x.differences


def test_a_tampered_reassignment_is_a_mismatch(app: RotationsApplication, clock: Clock) -> None:
    v2_history(app, clock)

    def tampered(rotation: Rotation) -> None:
        rotation.reassign_meeting(facts(app, "m4"), None, "lead", clock())
        event = rotation.pending_events[-1]
        object.__setattr__(event, "reason", TIE_JOIN_ORDER)

    change(app, tampered)

    life = explain_meeting(app, RID, "m4")

    assert [e.kind for e in life.entries] == [BOOKED, REASSIGNED]
    assert life.matches is False
    assert life.explanations[0].matches is True
    (difference,) = life.differences
    assert difference.startswith("reassigned (version ")
    assert "reason: stored 'tie_join_order', re-derived" in difference


def test_the_service_commands_are_audited_and_explained(
    app: RotationsApplication, clock: Clock
) -> None:
    """The same story through the service's own handlers (`RotationsApplication.execute`)."""
    policy = {"window": "month", "on_join": "level", "cap": {"meetings": 3, "per": "week"}}
    ok(app, "CreateRotation", RID, name="Sales", members=["a", "b"], policy=policy)
    book(app, RID, "m1")
    book(app, RID, "m2")
    ok(app, "AddMember", RID, user_id="c", weight=300)
    ok(app, "CreditMember", RID, user_id="b", meetings=2, reason="ran the webinar")
    ok(app, "CancelMeeting", RID, meeting_id="m1", reason="no budget")
    ok(app, "RescheduleMeeting", RID, meeting_id="m2", starts_at=START.isoformat())
    ok(app, "ReassignMeeting", RID, meeting_id="m2")
    ok(app, "MarkNoShow", RID, meeting_id="m2")
    ok(app, "SetPolicy", RID, policy={**policy, "no_shows_count": False})

    summaries = [e.summary for e in audit_history(app, RID)]
    life = explain_meeting(app, RID, "m2")

    assert summaries[0] == (
        "created 'Sales' with a, b; policy: on_join reset → level; window since_reset → "
        "month; cap none → 3/week"
    )
    assert "c levelled on join by the service: credited +3 meetings" in summaries
    assert "credited b +2 meetings by tester: 'ran the webinar'" in summaries
    assert "meeting m1 of a cancelled by tester: 'no budget'" in summaries
    assert summaries[-1] == "policy set: no_shows_count yes → no"
    assert [e.kind for e in life.entries] == [BOOKED, RESCHEDULED, REASSIGNED, NO_SHOW]
    assert life.matches is True, life.differences
    assert all(x.matches for x in explain_bookings(app, RID))
