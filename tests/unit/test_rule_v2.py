"""Version 2 of the rule on the aggregate itself: worked cases of the contract, and bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from events.errors import MeetingCancelled
from events.policy import HORIZON_SLOTS, SLOT
from events.ranking import (
    FEWEST_MEETINGS,
    PREFERRED_HOST,
    TIE_PRIORITY,
    Standing,
    fairness,
)
from events.rotation import LEVEL_JOIN, LEVEL_RETURN, Meeting, Rotation

T0 = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
RECORD = {"type": "deal", "id": "d-1"}


def rotation_with(members: list[str], **policy: Any) -> Rotation:
    return Rotation(rotation_id="r", name="R", members=members, at=T0, policy=policy or None)


def book(
    rotation: Rotation,
    meeting_id: str,
    at: datetime,
    host_id: str | None = None,
    starts_at: datetime | None = None,
    preferred: str | None = None,
) -> str:
    return rotation.book_meeting(
        meeting_id, host_id, RECORD, starts_at, at, preferred_host_id=preferred
    )


def facts(rotation: Rotation, meeting_id: str) -> Meeting:
    """The meeting's facts from its latest pending event (the index's job in the service)."""
    for event in reversed(rotation.pending_events):
        if getattr(event, "meeting_id", None) == meeting_id:
            found: Meeting = event.facts()  # type: ignore[attr-defined]
            return found
    raise LookupError(meeting_id)


def counts(rotation: Rotation, at: datetime, starts_at: datetime | None = None) -> dict[str, int]:
    return {s.user_id: s.meetings for s in rotation.standings(at, starts_at=starts_at)}


def test_a_weight_of_200_takes_twice_the_meetings_of_100() -> None:
    rotation = rotation_with(["a", "b"])
    rotation.set_member_options("a", {"weight": 200})

    hosts = [book(rotation, f"m{i}", T0 + timedelta(minutes=i)) for i in range(30)]

    assert (hosts.count("a"), hosts.count("b")) == (20, 10)


def test_equal_shares_go_to_the_higher_priority() -> None:
    rotation = rotation_with(["a", "b"])
    rotation.set_member_options("b", {"priority": 4})

    suggestion = rotation.suggest(T0)

    assert (suggestion.host_id, suggestion.reason) == ("b", TIE_PRIORITY)


def test_a_monthly_window_starts_again_at_the_zones_month_boundary() -> None:
    # 2024-01-31 20:30 UTC is already 1 February in Tokyo (UTC+9).
    rotation = rotation_with(["a", "b"], window="month", time_zone="Asia/Tokyo")
    january = T0  # 21:00 in Tokyo, 31 January
    book(rotation, "m1", january)
    book(rotation, "m2", january + timedelta(minutes=1))
    book(rotation, "m3", january + timedelta(minutes=2))

    february = datetime(2024, 1, 31, 15, 0, tzinfo=UTC)  # 00:00 on 1 February in Tokyo

    assert counts(rotation, january + timedelta(minutes=3)) == {"a": 2, "b": 1}
    assert counts(rotation, february) == {"a": 0, "b": 0}


def test_count_by_starts_at_places_a_meeting_in_the_window_of_its_start() -> None:
    rotation = rotation_with(["a", "b"], window="day", count_by="starts_at")
    tomorrow = T0 + timedelta(days=1)
    book(rotation, "m1", T0, starts_at=tomorrow)

    assert counts(rotation, T0) == {"a": 0, "b": 0}
    assert counts(rotation, T0, starts_at=tomorrow) == {"a": 1, "b": 0}
    # The meeting being decided starts tomorrow: b, with none tomorrow, goes first.
    assert book(rotation, "m2", T0, starts_at=tomorrow) == "b"


def test_a_capped_member_is_never_suggested_but_can_be_named() -> None:
    rotation = rotation_with(["a", "b"], cap={"meetings": 1, "per": "day"})
    rotation.set_member_options("a", {"weight": 1000})  # would take everything
    book(rotation, "m1", T0)

    standing = {s.user_id: s for s in rotation.standings(T0)}
    assert standing["a"].capped and not standing["b"].capped
    assert book(rotation, "m2", T0) == "b"
    assert book(rotation, "m3", T0, host_id="a") == "a"
    booked = rotation.pending_events[-1]
    assert (booked.override, booked.reason) == (True, "override")  # type: ignore[attr-defined]
    # Resets do not lift a cap: a newcomer's join resets the counts, not the cap.
    rotation.add_member("c", T0)
    assert {s.user_id for s in rotation.standings(T0) if s.capped} == {"a", "b"}
    # The next day the cap is lifted.
    assert not any(s.capped for s in rotation.standings(T0 + timedelta(days=1)))


def test_a_member_cap_of_null_returns_to_the_policys() -> None:
    rotation = rotation_with(["a"], cap={"meetings": 5, "per": "week"})
    rotation.set_member_options("a", {"cap": {"meetings": 1, "per": "day"}})
    book(rotation, "m1", T0)
    assert rotation.standings(T0)[0].capped

    rotation.set_member_options("a", {"cap": None})

    standing = rotation.standings(T0)[0]
    assert (standing.cap, standing.capped) == ({"meetings": 5, "per": "week"}, False)


def test_a_newcomer_is_levelled_instead_of_resetting_everyone() -> None:
    rotation = rotation_with(["a", "b"], on_join="level")
    for i in range(6):
        book(rotation, f"m{i}", T0)  # 3 each

    rotation.add_member("c", T0, options={"weight": 200})

    credit = rotation.pending_events[-1]
    assert isinstance(credit, Rotation.MemberCredited)
    assert (credit.user_id, credit.meetings, credit.kind) == ("c", 6, LEVEL_JOIN)
    assert credit.actor is None  # the service's, not a person's
    standings = {s.user_id: (s.meetings, s.credits) for s in rotation.standings(T0)}
    assert standings == {"a": (3, 0), "b": (3, 0), "c": (0, 6)}


def test_a_team_bringing_several_levels_each_against_those_there_before() -> None:
    rotation = rotation_with(["a"], on_join="level")
    book(rotation, "m1", T0)
    book(rotation, "m2", T0)

    rotation.add_team("t", ["x", "y"], T0)

    credits = [e for e in rotation.pending_events if isinstance(e, Rotation.MemberCredited)]
    assert [(e.user_id, e.meetings) for e in credits] == [("x", 2), ("y", 2)]


def test_a_return_is_levelled_up_to_the_least_loaded_member() -> None:
    rotation = rotation_with(["a", "b", "c"], on_return="level")
    rotation.toggle_availability("c", False, T0)
    for i in range(4):
        book(rotation, f"m{i}", T0)  # a and b: 2 each

    rotation.toggle_availability("c", True, T0)

    credit = rotation.pending_events[-1]
    assert isinstance(credit, Rotation.MemberCredited)
    assert (credit.user_id, credit.meetings, credit.kind) == ("c", 2, LEVEL_RETURN)


def test_a_credit_counts_until_the_next_reset_and_only_in_its_window() -> None:
    rotation = rotation_with(["a", "b"], window="day")
    rotation.credit_member("a", 2, "covered a colleague's demo", "boss", T0)

    today = {s.user_id: s.credits for s in rotation.standings(T0)}
    tomorrow = {s.user_id: s.credits for s in rotation.standings(T0 + timedelta(days=1))}
    assert today == {"a": 2, "b": 0} and tomorrow == {"a": 0, "b": 0}
    assert book(rotation, "m1", T0) == "b"

    rotation.add_member("c", T0)  # a reset: the credit no longer counts

    assert {s.user_id: s.credits for s in rotation.standings(T0)} == {"a": 0, "b": 0, "c": 0}


def test_credits_never_count_under_caps() -> None:
    rotation = rotation_with(["a"], cap={"meetings": 1, "per": "day"})
    rotation.credit_member("a", 5, "bonus", "boss", T0)

    assert not rotation.standings(T0)[0].capped


def test_a_preferred_host_who_can_host_is_chosen_and_is_no_override() -> None:
    rotation = rotation_with(["a", "b"])
    book(rotation, "m1", T0)  # a

    assert book(rotation, "m2", T0, preferred="a") == "a"
    booked = rotation.pending_events[-1]
    assert (booked.reason, booked.override) == (PREFERRED_HOST, False)  # type: ignore[attr-defined]

    rotation.toggle_availability("a", False, T0)
    assert book(rotation, "m3", T0, preferred="a") == "b"
    assert rotation.pending_events[-1].reason == FEWEST_MEETINGS  # type: ignore[attr-defined]


def test_a_cancelled_meeting_stops_counting_and_stays_cancelled() -> None:
    rotation = rotation_with(["a", "b"])
    book(rotation, "m1", T0)
    rotation.cancel_meeting(facts(rotation, "m1"), "customer cancelled", "kari", T0)

    assert counts(rotation, T0) == {"a": 0, "b": 0}
    with pytest.raises(MeetingCancelled):
        rotation.cancel_meeting(facts(rotation, "m1"), None, "kari", T0)
    with pytest.raises(MeetingCancelled):
        rotation.reassign_meeting(facts(rotation, "m1"), None, "kari", T0)


def test_a_reassigned_meeting_counts_for_its_new_host_in_its_original_window() -> None:
    rotation = rotation_with(["a", "b", "c"], window="day")
    book(rotation, "m1", T0)  # a
    next_day = T0 + timedelta(days=1)

    host = rotation.reassign_meeting(facts(rotation, "m1"), None, "kari", next_day)

    assert host == "b"
    assert counts(rotation, T0) == {"a": 0, "b": 1, "c": 0}
    assert counts(rotation, next_day) == {"a": 0, "b": 0, "c": 0}
    assert rotation.members["b"]["last_assigned_at"] == next_day


def test_a_rescheduled_meeting_moves_between_windows_by_its_start() -> None:
    rotation = rotation_with(["a", "b"], window="day", count_by="starts_at")
    later = T0 + timedelta(days=3)
    book(rotation, "m1", T0, starts_at=T0)

    rotation.reschedule_meeting(facts(rotation, "m1"), later, "kari", T0)

    assert counts(rotation, T0) == {"a": 0, "b": 0}
    assert counts(rotation, later) == {"a": 1, "b": 0}


def test_a_no_show_stops_counting_only_when_no_shows_do_not_count() -> None:
    rotation = rotation_with(["a", "b"])
    book(rotation, "m1", T0)
    assert rotation.mark_no_show(facts(rotation, "m1"), "kari", T0)
    assert not rotation.mark_no_show(facts(rotation, "m1"), "kari", T0)  # nothing new

    assert counts(rotation, T0) == {"a": 1, "b": 0}
    rotation.set_policy({"no_shows_count": False}, T0)
    assert counts(rotation, T0) == {"a": 0, "b": 0}


def test_cancelling_a_meeting_from_before_the_last_reset_changes_no_count() -> None:
    rotation = rotation_with(["a", "b"])
    book(rotation, "m1", T0)
    old = facts(rotation, "m1")
    rotation.add_member("c", T0)  # reset
    book(rotation, "m2", T0)

    rotation.cancel_meeting(old, None, "kari", T0)

    assert counts(rotation, T0) == {"a": 0, "b": 1, "c": 0}


def test_state_does_not_grow_with_past_windows() -> None:
    rotation = rotation_with(["a", "b"], window="day", cap={"meetings": 1000, "per": "month"})
    start = T0
    for day in range(200):
        for hour in range(4):
            book(rotation, f"m{day}-{hour}", start + timedelta(days=day, hours=hour * 3))

    horizon_days = HORIZON_SLOTS * SLOT / timedelta(days=1)
    for record in rotation.members.values():
        slots = record["booked"][0]
        assert len(slots) <= (horizon_days + 2) * 4
    assert rotation.total_meetings == 800


def test_fairness_is_exact_and_weighted() -> None:
    def standing(user_id: str, meetings: int, weight: int) -> Standing:
        return Standing(user_id, meetings, None, True, T0, 0, weight=weight)

    even = fairness([standing("a", 2, 200), standing("b", 1, 100)])
    skewed = fairness([standing("a", 0, 100), standing("b", 4, 100)])

    assert (even.meetings, even.spread, even.deviation) == (3, 1, Fraction(0))
    assert (skewed.meetings, skewed.spread, skewed.deviation) == (4, 4, Fraction(1))
    assert fairness([standing("a", 0, 100)]).spread is None
