"""Holds on the aggregate itself: a hold counts as a meeting of its member in every other
decision and under its cap until it expires, is booked or is released (contract v2)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from events.errors import HoldExpired, NoAvailableMember, UnknownHold
from events.ranking import HELD
from events.rotation import Rotation

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
RECORD = {"type": "deal", "id": "d-1"}


def rotation_of(members: list[str], cap: int | None = None) -> Rotation:
    policy = None if cap is None else {"cap": {"meetings": cap, "per": "day"}}
    return Rotation(rotation_id="r", name="R", members=members, at=T0, policy=policy)


def held(rotation: Rotation, at: datetime) -> dict[str, int]:
    return {s.user_id: s.held for s in rotation.standings(at)}


def test_holds_spread_like_bookings_and_count_until_they_expire() -> None:
    rotation = rotation_of(["a", "b", "c"])
    hosts = [rotation.hold_host(f"h{i}", 60, T0 + timedelta(seconds=i)) for i in range(6)]
    assert sorted(hosts) == ["a", "a", "b", "b", "c", "c"]
    assert held(rotation, T0 + timedelta(seconds=10)) == {"a": 2, "b": 2, "c": 2}
    # h0 (taken at T0 for 60 s) has expired a minute on; h5 (T0 + 5 s) still holds.
    assert sum(held(rotation, T0 + timedelta(seconds=60)).values()) == 5
    assert held(rotation, T0 + timedelta(seconds=65)) == {"a": 0, "b": 0, "c": 0}


def test_a_booking_of_a_hold_books_its_member_even_if_the_ranking_moved() -> None:
    rotation = rotation_of(["a", "b"])
    assert rotation.hold_host("h1", 120, T0) == "a"
    rotation.toggle_availability("a", False)
    at = T0 + timedelta(seconds=30)
    assert rotation.book_meeting("m1", None, RECORD, None, at, hold_id="h1") == "a"
    booked = rotation.pending_events[-1]
    assert isinstance(booked, Rotation.MeetingBooked)
    assert (booked.reason, booked.override, booked.hold_id) == (HELD, False, "h1")
    assert rotation.holds == {}
    with pytest.raises(UnknownHold):
        rotation.book_meeting("m2", None, RECORD, None, at, hold_id="h1")


def test_a_hold_booked_for_someone_else_is_an_override_and_ends() -> None:
    rotation = rotation_of(["a", "b"])
    rotation.hold_host("h1", 120, T0)
    host = rotation.book_meeting("m1", "b", RECORD, None, T0, hold_id="h1")
    booked = rotation.pending_events[-1]
    assert isinstance(booked, Rotation.MeetingBooked)
    assert (host, booked.override, booked.reason) == ("b", True, "override")
    assert rotation.holds == {}


def test_an_expired_hold_cannot_be_booked_or_released() -> None:
    rotation = rotation_of(["a", "b"])
    rotation.hold_host("h1", 1, T0)
    later = T0 + timedelta(seconds=1)
    with pytest.raises(HoldExpired):
        rotation.book_meeting("m1", None, RECORD, None, later, hold_id="h1")
    with pytest.raises(HoldExpired):
        rotation.release_hold("h1", None, later)


def test_a_released_hold_stops_counting() -> None:
    rotation = rotation_of(["a", "b"])
    rotation.hold_host("h1", 120, T0)
    assert rotation.release_hold("h1", "kari", T0) == "a"
    assert held(rotation, T0) == {"a": 0, "b": 0}
    assert rotation.hold_host("h2", 120, T0) == "a"


def test_holds_count_under_caps() -> None:
    rotation = rotation_of(["a", "b"], cap=1)
    rotation.hold_host("h1", 600, T0)
    rotation.hold_host("h2", 600, T0)
    assert {s.user_id for s in rotation.standings(T0) if s.capped} == {"a", "b"}
    with pytest.raises(NoAvailableMember):
        rotation.hold_host("h3", 600, T0)
    # Booking a hold does not count the hold it books: the member is not capped by itself.
    assert rotation.book_meeting("m1", None, RECORD, None, T0, hold_id="h1") == "a"


def test_the_hold_being_booked_is_not_counted_in_the_booking_decision() -> None:
    rotation = rotation_of(["a", "b"])
    rotation.hold_host("h1", 120, T0)
    rotation.book_meeting("m1", None, RECORD, None, T0, hold_id="h1")
    booked = rotation.pending_events[-1]
    assert isinstance(booked, Rotation.MeetingBooked)
    assert {c["user_id"]: c["held"] for c in booked.candidates} == {"a": 0, "b": 0}


def test_expired_holds_are_forgotten_so_state_stays_small() -> None:
    rotation = rotation_of(["a", "b"])
    for i in range(100):
        rotation.hold_host(f"h{i}", 1, T0 + timedelta(seconds=2 * i))
    assert len(rotation.holds) == 1


def test_a_member_who_left_and_came_back_holds_nothing() -> None:
    rotation = rotation_of(["a", "b"])
    rotation.hold_host("h1", 600, T0)
    rotation.remove_member("a")
    rotation.add_member("a", at=T0)
    assert held(rotation, T0) == {"a": 0, "b": 0}


def test_holds_survive_the_copies_the_repository_makes() -> None:
    rotation = rotation_of(["a", "b"])
    rotation.hold_host("h1", 600, T0)
    clone = copy.deepcopy(rotation)
    clone.release_hold("h1", None, T0)
    assert set(rotation.holds) == {"h1"} and clone.holds == {}
