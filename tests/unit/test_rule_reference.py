"""The contract v2 rule's reference model (tests/reference/rule_v2.py), and production against it.

First the reference itself, on examples worked by hand from the contract's text; then random
histories applied both to the reference and to RotationsApplication, which must agree on every
host, every refusal and the final suggestion.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference.rule_v2 import Cap, Policy, Refused, RotationV1, RotationV2

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)  # a Monday
SECOND = timedelta(seconds=1)


def hosts_of(rotation: RotationV2, count: int, at: datetime = T0) -> list[str]:
    """Book `count` meetings one second apart; who hosted each."""
    return [rotation.book(f"m{len(rotation.meetings)}", at + n * SECOND) for n in range(count)]


def by_user(rotation: RotationV2, at: datetime, **ask: object) -> dict[str, tuple[int, int, bool]]:
    """(meetings, credits, capped) of each candidate."""
    decided = rotation.suggest(at, **ask)  # type: ignore[arg-type]
    return {s.user_id: (s.meetings, s.credits, s.capped) for s in decided.candidates}


# -- the reference, by hand ------------------------------------------------------------------


def test_weight_200_gets_twice_the_meetings_of_weight_100() -> None:
    rotation = RotationV2.create(T0)
    rotation.add_member("a", T0, weight=200)
    rotation.add_member("b", T0)
    hosts = hosts_of(rotation, 30, T0 + SECOND)
    # 1/200 < 1/100: a; then 2/200 = 1/100, b never assigned: b; then 2/200 < 2/100: a ...
    assert hosts[:3] == ["a", "b", "a"]
    assert (hosts.count("a"), hosts.count("b")) == (20, 10)
    assert rotation.fairness(T0 + 40 * SECOND).deviation == 0


def test_reasons_follow_the_first_two_who_can_host() -> None:
    rotation = RotationV2.create(T0, ["a", "b"])
    assert rotation.suggest(T0).reason == "tie_join_order"  # same instant: user id
    rotation.set_member_options("b", priority=4)
    assert (rotation.suggest(T0).host_id, rotation.suggest(T0).reason) == ("b", "tie_priority")
    rotation.set_member_options("b", priority=2)
    rotation.book("m1", T0, host_id="a")
    assert (rotation.suggest(T0).host_id, rotation.suggest(T0).reason) == ("b", "fewest_meetings")
    rotation.book("m2", T0 + SECOND, host_id="b")
    assert (rotation.suggest(T0).host_id, rotation.suggest(T0).reason) == ("a", "tie_least_recent")
    rotation.toggle("b", False, T0)
    assert rotation.suggest(T0).reason == "fewest_meetings"  # one who can host
    rotation.toggle("a", False, T0)
    assert rotation.suggest(T0).host_id is None
    with pytest.raises(Refused, match="no_available_member"):
        rotation.book("m3", T0)


def test_a_monthly_window_restarts_at_the_zones_month_boundary() -> None:
    policy = Policy(window="month", time_zone="Asia/Kolkata")
    # 2024-03-31 22:30 IST; the month ends at 18:30 UTC.
    late_march = datetime(2024, 3, 31, 17, tzinfo=UTC)
    rotation = RotationV2.create(late_march, ["a", "b"], policy)
    rotation.book("m1", late_march, host_id="a")
    rotation.book("m2", late_march, host_id="a")
    before = datetime(2024, 3, 31, 18, 29, tzinfo=UTC)
    after = datetime(2024, 3, 31, 18, 31, tzinfo=UTC)
    assert by_user(rotation, before)["a"] == (2, 0, False)
    assert by_user(rotation, after)["a"] == (0, 0, False)
    # In UTC it is still March: the change applies to every later decision, nothing resets.
    rotation.set_policy(Policy(window="month"))
    assert by_user(rotation, after)["a"] == (2, 0, False)


def test_a_week_window_starts_on_monday_and_dst_does_not_move_it() -> None:
    policy = Policy(window="week", time_zone="America/New_York")
    saturday = datetime(2024, 3, 9, 12, tzinfo=UTC)  # DST starts Sunday 2024-03-10
    rotation = RotationV2.create(saturday, ["a", "b"], policy)
    rotation.book("m1", saturday, host_id="a")
    sunday_late = datetime(2024, 3, 11, 3, 59, tzinfo=UTC)  # 23:59 EDT Sunday
    monday = datetime(2024, 3, 11, 4, 1, tzinfo=UTC)  # 00:01 EDT Monday
    assert by_user(rotation, sunday_late)["a"][0] == 1
    assert by_user(rotation, monday)["a"][0] == 0


def test_count_by_starts_at_places_meetings_and_decisions_by_their_start() -> None:
    policy = Policy(window="day", count_by="starts_at")
    rotation = RotationV2.create(T0, ["a", "b"], policy)
    tomorrow = T0 + timedelta(days=1)
    assert rotation.book("m1", T0, starts_at=tomorrow) == "a"
    assert by_user(rotation, T0)["a"][0] == 0
    assert by_user(rotation, T0, starts_at=tomorrow)["a"][0] == 1
    assert rotation.book("m2", T0, starts_at=tomorrow) == "b"
    rotation.reschedule("m1", T0)  # back to today: a's tomorrow is empty again
    assert by_user(rotation, T0, starts_at=tomorrow) == {"a": (0, 0, False), "b": (1, 0, False)}


def test_a_cap_stops_a_member_until_its_period_ends() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(cap=Cap(1, "day")))
    rotation.set_member_options("b", cap=Cap(2, "day"))
    assert hosts_of(rotation, 3) == ["a", "b", "b"]
    assert by_user(rotation, T0) == {"a": (1, 0, True), "b": (2, 0, True)}
    with pytest.raises(Refused, match="no_available_member"):
        rotation.book("m9", T0)
    assert rotation.book("m9", T0, host_id="a") == "a"  # by name: an override
    rotation.credit("b", -5, "caps ignore credits", T0)
    assert by_user(rotation, T0)["b"] == (2, -5, True)
    assert rotation.book("m10", T0 + timedelta(days=1)) == "b"  # a new day: b at (2 - 5 + 1) / 100
    rotation.set_member_options("b", cap=None)  # back to the policy's cap: 1
    rotation.cancel("m0")
    assert by_user(rotation, T0)["a"] == (1, 0, True)  # m9 still counts


def test_no_shows_count_for_caps_but_not_for_fairness_when_switched_off() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(cap=Cap(1, "day"), no_shows_count=False))
    rotation.book("m1", T0, host_id="a")
    rotation.mark_no_show("m1")
    rotation.mark_no_show("m1")
    assert by_user(rotation, T0)["a"] == (0, 0, True)


def test_a_newcomer_is_levelled_with_the_least_loaded_other() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(on_join="level"))
    for n in range(3):
        rotation.book(f"a{n}", T0, host_id="a")
    for n in range(5):
        rotation.book(f"b{n}", T0, host_id="b")
    rotation.add_member("c", T0, weight=200)
    rotation.add_member("d", T0)  # levels against a (3/100), b and c (6/200)
    assert by_user(rotation, T0) == {
        "a": (3, 0, False),
        "b": (5, 0, False),
        "c": (0, 6, False),
        "d": (0, 3, False),
    }
    rotation.toggle("a", False, T0)
    rotation.add_member("e", T0)  # a is away: c, d at 3/100 are the lowest
    assert by_user(rotation, T0)["e"] == (0, 3, False)


def test_a_join_with_reset_clears_counts_and_credits() -> None:
    rotation = RotationV2.create(T0, ["a"])
    rotation.book("m1", T0)
    rotation.credit("a", 4, "manual", T0)
    rotation.add_member("b", T0 + SECOND)
    assert by_user(rotation, T0 + SECOND) == {"a": (0, 0, False), "b": (0, 0, False)}
    # The last assignment survives the reset: a was assigned, b never.
    assert rotation.suggest(T0 + SECOND).host_id == "b"


def test_a_returning_member_is_levelled_only_under_on_return_level() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(on_return="level"))
    rotation.toggle("a", False, T0)
    hosts_of(rotation, 4)
    rotation.toggle("a", True, T0)
    assert by_user(rotation, T0)["a"] == (0, 4, False)
    rotation.toggle("a", True, T0)  # already on: nothing more
    assert by_user(rotation, T0)["a"] == (0, 4, False)
    rotation.set_policy(Policy())
    rotation.toggle("b", False, T0)
    rotation.toggle("b", True, T0)
    assert by_user(rotation, T0)["b"] == (4, 0, False)


def test_a_credit_counts_in_the_window_it_was_given_until_a_reset() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(window="day", on_join="none"))
    rotation.credit("a", 2, "yesterday's calls", T0)
    assert hosts_of(rotation, 3) == ["b", "b", "a"]  # a's (2 + 1) / 100 ties b's at two
    tomorrow = T0 + timedelta(days=1)
    assert by_user(rotation, tomorrow) == {"a": (0, 0, False), "b": (0, 0, False)}
    rotation.add_member("c", T0)  # on_join none: nothing resets
    assert by_user(rotation, T0)["a"] == (1, 2, False)
    rotation.set_policy(Policy(window="day"))
    rotation.add_member("d", T0)  # reset
    assert by_user(rotation, T0)["a"] == (0, 0, False)


def test_preferred_host_is_chosen_when_it_can_host() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(cap=Cap(2, "week")))
    rotation.book("m1", T0, host_id="a")
    decided = rotation.suggest(T0, preferred_host_id="a")
    assert (decided.host_id, decided.reason) == ("a", "preferred_host")
    assert rotation.book("m2", T0, preferred_host_id="a") == "a"
    assert rotation.suggest(T0, preferred_host_id="a").host_id == "b"  # a capped
    assert rotation.suggest(T0, preferred_host_id="zz").reason == "fewest_meetings"


def test_reassign_moves_the_count_and_the_last_assignment() -> None:
    rotation = RotationV2.create(T0, ["a", "b", "c"], Policy(window="day"))
    rotation.book("m1", T0, host_id="a")
    rotation.book("m2", T0 + SECOND, host_id="b")
    later = T0 + timedelta(days=1)
    # Among the others (b, c): c has fewer meetings today.
    assert rotation.reassign("m1", T0 + 2 * SECOND) == "c"
    assert by_user(rotation, T0) == {"a": (0, 0, False), "b": (1, 0, False), "c": (1, 0, False)}
    assert by_user(rotation, later)["c"] == (0, 0, False)  # still in the booking's window
    # a was assigned at T0 (still its last), b at T0+1, c at T0+2.
    assert rotation.suggest(later).host_id == "a"
    assert rotation.reassign("m1", later, host_id="a") == "a"
    assert rotation.suggest(later).host_id == "b"
    rotation.cancel("m1")
    for refused in (
        lambda: rotation.cancel("m1"),
        lambda: rotation.reassign("m1", later),
        lambda: rotation.reschedule("m1", later),
        lambda: rotation.mark_no_show("m1"),
    ):
        with pytest.raises(Refused, match="meeting_cancelled"):
            refused()
    with pytest.raises(Refused, match="unknown_meeting"):
        rotation.cancel("m404")
    with pytest.raises(Refused, match="duplicate_meeting"):
        rotation.book("m1", later)


def test_fairness_is_exact() -> None:
    rotation = RotationV2.create(T0, ["a", "b", "c"])
    rotation.set_member_options("a", weight=200)
    rotation.book("m1", T0, host_id="a")
    rotation.credit("b", 2, "manual", T0)
    rotation.toggle("c", False, T0)
    fairness = rotation.fairness(T0)
    # total 3 over weights 200 + 100: a's share 2, b's 1; |1 - 2| + |2 - 1| = 2, over 3.
    assert (fairness.meetings, fairness.spread, fairness.deviation) == (3, 1, Fraction(2, 3))
    rotation.toggle("b", False, T0)
    assert rotation.fairness(T0).spread is None


def test_a_removed_member_starts_again_when_it_rejoins() -> None:
    rotation = RotationV2.create(T0, ["a", "b"], Policy(on_join="none"))
    rotation.book("m1", T0, host_id="b")
    rotation.remove_member("b")
    rotation.add_member("b", T0 + SECOND)
    decided = rotation.suggest(T0 + SECOND)
    assert [(s.user_id, s.meetings, s.last_assigned_at) for s in decided.candidates] == [
        ("a", 0, None),
        ("b", 0, None),
    ]


# -- the reference against itself: default policy and options are version 1 ---------------

V1_USERS = ["u0", "u1", "u2", "u3"]
v1_operations = st.lists(
    st.tuples(
        st.sampled_from(["book", "book", "book", "host", "add", "remove", "toggle", "toggle"]),
        st.sampled_from(V1_USERS),
        st.booleans(),
        st.sampled_from([0, 0, 1, 3600]),
    ),
    max_size=60,
)


def attempt(apply: Callable[[], object]) -> object:
    """What an operation answered: its result, or the refusal's code."""
    try:
        return apply()
    except Refused as refused:
        return refused.code


def apply_v1(
    v1: RotationV1, v2: RotationV2, op: tuple[str, str, bool, int], n: int, at: datetime
) -> tuple[object, object]:
    """One v1 operation on both models: what each answered."""
    kind, user_id, flag, _ = op
    meeting = f"m{n}"
    if kind == "book":
        return attempt(lambda: v1.book(meeting, at)), attempt(lambda: v2.book(meeting, at))
    if kind == "host":
        first = attempt(lambda: v1.book(meeting, at, host_id=user_id))
        return first, attempt(lambda: v2.book(meeting, at, host_id=user_id))
    if kind == "add":
        return attempt(lambda: v1.join(user_id, at)), attempt(lambda: v2.add_member(user_id, at))
    if kind == "remove":
        return attempt(lambda: v1.leave(user_id)), attempt(lambda: v2.remove_member(user_id))
    first = attempt(lambda: v1.set_available(user_id, flag))
    return first, attempt(lambda: v2.toggle(user_id, flag, at))


@settings(max_examples=200, derandomize=True)
@given(ops=v1_operations, initial=st.lists(st.sampled_from(V1_USERS), unique=True))
def test_reference_v2_with_defaults_is_reference_v1(
    ops: list[tuple[str, str, bool, int]], initial: list[str]
) -> None:
    at = T0
    v1 = RotationV1()
    for user_id in initial:
        v1.join(user_id, at)
    v2 = RotationV2.create(at, initial)
    for n, op in enumerate(ops):
        at += timedelta(seconds=op[3])
        first, second = apply_v1(v1, v2, op, n, at)
        assert first == second, (n, op)
        decided = v2.suggest(at)
        assert v1.pick() == (decided.host_id, decided.reason)
        meetings = {s.user_id: s.meetings for s in decided.candidates}
        assert meetings == {u: m.meetings for u, m in v1.members.items()}
