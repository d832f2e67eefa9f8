"""The one fold (events.fold): state by the aggregate's own mutators, and what each event did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from events.directory import DirectoryUser, ineligibility
from events.fold import Change, aggregate_events, change, fold, fold_steps
from events.rotation import Rotation
from projections.ports import AuditSource, EventSource, RotationsStore, ViewSource
from service.application import RotationsApplication
from tests.unit.commands import book, fact, ok

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def state_of(rotation: Rotation) -> dict[str, Any]:
    """Everything an aggregate holds but the events it has not saved yet."""
    return {k: v for k, v in vars(rotation).items() if k != "_pending_events"}


def made(rotation: Rotation) -> list[Aggregate.Event]:
    events: list[Aggregate.Event] = list(aggregate_events(rotation.collect_events()))
    return events


def booked_twice() -> Rotation:
    rotation = Rotation(rotation_id="r", name="Sales", members=["a", "b"], at=at(0))
    rotation.book_meeting("m1", None, {}, None, at(1))
    rotation.book_meeting("m2", None, {}, None, at(2))
    return rotation


# -- fold -------------------------------------------------------------------------------


def test_fold_makes_the_aggregate_its_commands_made() -> None:
    rotation = booked_twice()
    rotation.add_team("t", ["b", "c"], at(3))
    rotation.team_changed("t", ["c", "d"], at(4))
    rotation.toggle_availability("a", False)
    rotation.rename("Sales EMEA")
    rotation.remove_team("t")
    rotation.delete()

    folded: Rotation | None = fold(made(rotation))

    assert folded is not None
    assert state_of(folded) == state_of(rotation)


def test_fold_of_nothing_is_nothing_and_a_start_is_carried_on() -> None:
    events = made(booked_twice())

    nothing: Rotation | None = fold([])
    start: Rotation | None = fold(events[:2])
    carried: Rotation | None = fold(events[2:], start)
    whole: Rotation | None = fold(events)

    assert nothing is None
    assert carried is not None and whole is not None
    assert state_of(carried) == state_of(whole)


def test_fold_equals_the_rotation_as_the_repository_returns_it(app: RotationsApplication) -> None:
    fact(app, "TeamUpdated", team_id="t1", members=["x", "y"])
    ok(app, "CreateRotation", "r", name="Sales", members=["a", "x"])
    book(app, "r", "m1")
    ok(app, "AddTeam", "r", team_id="t1")
    fact(app, "TeamUpdated", team_id="t1", members=["y", "z"])
    book(app, "r", "m2", host_id="z")
    ok(app, "ToggleAvailability", "r", user_id="a", available=False)

    stored = app.get_rotation("r")
    folded: Rotation | None = fold(aggregate_events(app.events.get(stored.id)))

    assert folded is not None
    assert state_of(folded) == state_of(stored)


def test_only_aggregate_events_are_folded() -> None:
    with pytest.raises(TypeError, match="not an aggregate event"):
        list(aggregate_events([object()]))  # type: ignore[list-item]


# -- what each event changed ------------------------------------------------------------


def test_a_reset_is_an_event_that_made_members_join() -> None:
    rotation = Rotation(rotation_id="r", name="Sales", members=["a", "b"], at=at(0))
    rotation.book_meeting("m1", None, {}, None, at(1))
    rotation.toggle_availability("b", False)
    rotation.add_member("c", at(2))
    rotation.add_team("t", ["a", "c"], at(3))  # both are members already: nobody joins
    rotation.remove_member("b")
    rotation.rename("Sales EMEA")

    steps = list(fold_steps(made(rotation)))

    assert [(type(s.event).__name__, s.joined, s.left, s.reset) for s in steps] == [
        ("Created", ("a", "b"), (), True),
        ("MeetingBooked", (), (), False),
        ("AvailabilityToggled", (), (), False),
        ("MemberAdded", ("c",), (), True),
        ("TeamAdded", (), (), False),
        ("MemberRemoved", (), ("b",), False),
        ("Renamed", (), (), False),
    ]
    assert steps[1].state.members["a"]["meetings"] == 1
    assert all(r["meetings"] == 0 for r in steps[3].state.members.values())


def test_a_creation_without_members_is_no_reset() -> None:
    rotation = Rotation(rotation_id="r", name="Empty", members=[], at=at(0))

    (step,) = fold_steps(made(rotation))

    assert step.change == Change(joined=(), left=(), reset=False)


def test_a_join_at_the_instant_of_the_last_reset_is_still_a_reset() -> None:
    """`last_reset_at` does not move then, yet `_join` reset every count: joins decide."""
    rotation = Rotation(rotation_id="r", name="Sales", members=["a", "b"], at=at(0))
    rotation.book_meeting("m1", None, {}, None, at(0))
    rotation.add_member("c", at(0))

    steps = list(fold_steps(made(rotation)))

    assert steps[2].state.last_reset_at == steps[1].state.last_reset_at
    assert steps[2].reset
    assert steps[1].state.members["a"]["meetings"] == 1
    assert steps[2].state.members["a"]["meetings"] == 0


def test_joined_and_left_with_a_team_change_come_from_the_state() -> None:
    rotation = Rotation(rotation_id="r", name="Sales", members=["x"], at=at(0))
    rotation.add_team("t", ["x", "y"], at(1))
    rotation.team_changed("t", ["z"], at(2))  # y leaves; x stays (added directly); z joins
    rotation.remove_team("t")

    steps = list(fold_steps(made(rotation)))

    assert [s.change for s in steps[1:]] == [
        Change(joined=("y",), left=(), reset=True),
        Change(joined=("z",), left=("y",), reset=True),
        Change(joined=(), left=("z",), reset=False),
    ]
    assert list(steps[-1].state.members) == ["x"]


def test_change_between_two_states() -> None:
    before = booked_twice()
    after = booked_twice()
    after.add_member("c", at(3))
    after.remove_member("a")

    assert change(before, after) == Change(joined=("c",), left=("a",), reset=True)
    assert change(None, before) == Change(joined=("a", "b"), left=(), reset=True)


# -- steps ------------------------------------------------------------------------------


def test_each_step_keeps_its_own_state_and_its_position() -> None:
    events = made(booked_twice())

    steps = list(fold_steps(events, positions=[10, 12, 15]))

    assert [s.position for s in steps] == [10, 12, 15]
    assert [s.state.total_meetings for s in steps] == [0, 1, 2]  # earlier states unchanged
    assert steps[0].booking is None
    booking = steps[1].booking
    assert booking is not None and booking.meeting_id == "m1"


def test_positions_must_match_the_events() -> None:
    with pytest.raises(ValueError):
        list(fold_steps(made(booked_twice()), positions=[1, 2]))


def test_without_positions_steps_have_none() -> None:
    assert [s.position for s in fold_steps(made(booked_twice()))] == [None, None, None]


# -- rules once, seams typed -------------------------------------------------------------


def test_an_unknown_user_is_ineligible_and_a_known_one_says_why() -> None:
    user = DirectoryUser(
        user_id="u",
        name="U",
        seat=True,
        calendar_connected=True,
        calendar_sync=True,
        permissions=[],
    )

    assert ineligibility(None) == "unknown_user"
    assert ineligibility(user) is None
    user.deactivate()
    assert ineligibility(user) == "deactivated"


def test_the_application_is_what_projections_need(app: RotationsApplication) -> None:
    for port in (EventSource, AuditSource, ViewSource, RotationsStore):
        assert isinstance(app, port)
