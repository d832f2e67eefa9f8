"""The Rotation aggregate, driven directly with explicit instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.errors import (
    AlreadyMember,
    IneligibleMember,
    NoAvailableMember,
    RotationDeleted,
    RotationError,
    UnknownMember,
)
from events.ranking import FEWEST_MEETINGS, TIE_JOIN_ORDER
from events.rotation import OVERRIDE, Rotation

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
RECORD = {"type": "deal", "id": "d-1"}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def new_rotation(*members: str) -> Rotation:
    return Rotation(rotation_id="r1", name="Sales", members=list(members), at=T0)


def book(rotation: Rotation, meeting_id: str, minutes: int, host_id: str | None = None) -> str:
    return rotation.book_meeting(meeting_id, host_id, RECORD, starts_at=None, at=at(minutes))


def meetings(rotation: Rotation) -> dict[str, int]:
    return {user_id: record["meetings"] for user_id, record in rotation.members.items()}


def last_event(rotation: Rotation) -> Any:
    return rotation.pending_events[-1]


def test_created_rotation_has_members_in_join_order() -> None:
    rotation = new_rotation("a", "b")

    assert [type(e).__name__ for e in rotation.pending_events] == ["Created"]
    assert meetings(rotation) == {"a": 0, "b": 0}
    assert [s.join_seq for s in rotation.standings()] == [0, 1]


def test_auto_assign_books_the_suggested_host() -> None:
    rotation = new_rotation("a", "b")

    host = book(rotation, "m1", 10)

    assert host == "a"
    assert rotation.members["a"]["meetings"] == 1
    assert rotation.members["a"]["last_assigned_at"] == at(10)
    event = last_event(rotation)
    assert type(event).__name__ == "MeetingBooked"
    assert (event.host_id, event.suggested_host_id, event.override) == ("a", "a", False)
    assert event.reason == TIE_JOIN_ORDER


def test_auto_assign_rotates_through_members() -> None:
    rotation = new_rotation("a", "b", "c")

    hosts = [book(rotation, f"m{i}", i) for i in range(1, 7)]

    assert hosts == ["a", "b", "c", "a", "b", "c"]
    assert last_event(rotation).reason == FEWEST_MEETINGS
    assert rotation.total_meetings == 6


def test_adding_a_member_resets_counts_but_keeps_last_assignment() -> None:
    rotation = new_rotation("a", "b")
    book(rotation, "m1", 1)
    book(rotation, "m2", 2)
    book(rotation, "m3", 3)

    rotation.add_member("c", at=at(4))

    assert meetings(rotation) == {"a": 0, "b": 0, "c": 0}
    assert rotation.members["a"]["last_assigned_at"] == at(3)
    assert rotation.members["b"]["last_assigned_at"] == at(2)
    assert rotation.members["c"]["last_assigned_at"] is None
    assert rotation.last_reset_at == at(4)
    assert book(rotation, "m4", 5) == "c"
    assert book(rotation, "m5", 6) == "b"


def test_override_to_another_member_is_recorded() -> None:
    rotation = new_rotation("a", "b")

    host = book(rotation, "m1", 1, host_id="b")

    event = last_event(rotation)
    assert host == "b"
    assert (event.override, event.suggested_host_id, event.reason) == (True, "a", OVERRIDE)
    assert [c["user_id"] for c in event.candidates] == ["a", "b"]
    assert event.candidates[0] == {
        "user_id": "a",
        "meetings": 0,
        "last_assigned_at": None,
        "available": True,
        "joined_at": T0,
        "join_seq": 0,
        "eligible": True,
        "why": None,
        "weight": 100,
        "priority": 2,
        "credits": 0,
        "held": 0,
        "cap": None,
        "capped": False,
    }
    assert meetings(rotation) == {"a": 0, "b": 1}


def test_choosing_the_suggested_host_explicitly_is_not_an_override() -> None:
    rotation = new_rotation("a", "b")

    book(rotation, "m1", 1, host_id="a")

    assert (last_event(rotation).override, last_event(rotation).reason) == (False, TIE_JOIN_ORDER)


def test_unavailable_member_is_never_auto_assigned_but_can_be_chosen() -> None:
    rotation = new_rotation("a", "b")
    rotation.toggle_availability("a", False)

    assert [book(rotation, f"m{i}", i) for i in range(1, 4)] == ["b", "b", "b"]

    assert book(rotation, "m4", 4, host_id="a") == "a"
    assert last_event(rotation).override is True
    assert meetings(rotation) == {"a": 1, "b": 3}


def test_made_available_again_member_is_auto_assigned() -> None:
    rotation = new_rotation("a", "b")
    rotation.toggle_availability("a", False)
    book(rotation, "m1", 1)

    rotation.toggle_availability("a", True)

    assert book(rotation, "m2", 2) == "a"


def test_renaming_and_removing() -> None:
    rotation = new_rotation("a", "b")

    rotation.rename("Support")
    rotation.remove_member("a")

    assert rotation.name == "Support"
    assert list(rotation.members) == ["b"]
    assert [type(e).__name__ for e in rotation.collect_events()] == [
        "Created",
        "Renamed",
        "MemberRemoved",
    ]


def test_auto_assign_without_available_member_fails() -> None:
    rotation = new_rotation("a")
    rotation.toggle_availability("a", False)

    with pytest.raises(NoAvailableMember) as raised:
        book(rotation, "m1", 1)

    assert raised.value.code == "no_available_member"
    assert type(last_event(rotation)).__name__ == "AvailabilityToggled"


def test_auto_assign_in_an_empty_rotation_fails() -> None:
    with pytest.raises(NoAvailableMember):
        book(new_rotation(), "m1", 1)


@pytest.mark.parametrize(
    ("action", "error", "code"),
    [
        (lambda r: r.add_member("a", at=at(1)), AlreadyMember, "already_member"),
        (lambda r: r.remove_member("z"), UnknownMember, "unknown_member"),
        (lambda r: r.toggle_availability("z", False), UnknownMember, "unknown_member"),
        (lambda r: book(r, "m1", 1, host_id="z"), UnknownMember, "unknown_member"),
    ],
    ids=["add-existing", "remove-unknown", "toggle-unknown", "book-unknown-host"],
)
def test_refused_commands_raise_coded_errors(
    action: Callable[[Rotation], object], error: type[RotationError], code: str
) -> None:
    rotation = new_rotation("a", "b")
    version = rotation.version

    with pytest.raises(error) as raised:
        action(rotation)

    assert raised.value.code == code
    assert rotation.version == version


@pytest.mark.parametrize(
    "action",
    [
        lambda r: r.rename("Other"),
        lambda r: r.add_member("c", at=at(1)),
        lambda r: r.remove_member("a"),
        lambda r: r.toggle_availability("a", False),
        lambda r: book(r, "m1", 1),
        lambda r: r.delete(),
    ],
    ids=["rename", "add", "remove", "toggle", "book", "delete"],
)
def test_deleted_rotation_refuses_every_command(action: Callable[[Rotation], object]) -> None:
    rotation = new_rotation("a", "b")
    rotation.delete()
    assert type(last_event(rotation)).__name__ == "Deleted"

    with pytest.raises(RotationDeleted) as raised:
        action(rotation)

    assert raised.value.code == "rotation_deleted"


def test_an_ineligible_user_cannot_join_but_a_member_can_become_ineligible() -> None:
    rotation = new_rotation("a", "b")
    with pytest.raises(IneligibleMember) as refused:
        rotation.add_member("c", at=T0, ineligible="no_seat")
    assert refused.value.code == "ineligible_member"
    suggestion = rotation.suggest(ineligible={"a": "no_calendar"})
    assert suggestion.host_id == "b"
    assert [(s.user_id, s.eligible, s.why) for s in suggestion.candidates] == [
        ("b", True, None),
        ("a", False, "no_calendar"),
    ]
    with pytest.raises(IneligibleMember):
        rotation.book_meeting("m", "a", {"type": "deal", "id": "1"}, None, T0, {"a": "no_seat"})
