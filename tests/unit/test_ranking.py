"""The ranking rule, through `rank()` alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from events.ranking import (
    FEWEST_MEETINGS,
    NO_AVAILABLE_MEMBER,
    TIE_JOIN_ORDER,
    TIE_LEAST_RECENT,
    Standing,
    rank,
)

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def member(
    user_id: str,
    meetings: int = 0,
    last: datetime | None = None,
    available: bool = True,
    join_seq: int = 0,
) -> Standing:
    return Standing(user_id, meetings, last, available, at(join_seq), join_seq)


def order(standings: list[Standing], exclude: tuple[str, ...] = ()) -> list[str]:
    return [s.user_id for s in rank(standings, exclude).candidates]


def test_fewest_meetings_wins() -> None:
    suggestion = rank([member("a", 3, join_seq=0), member("b", 1, at(5), join_seq=1)])

    assert (suggestion.host_id, suggestion.reason) == ("b", FEWEST_MEETINGS)


def test_single_eligible_member_wins_on_fewest_meetings() -> None:
    assert rank([member("a", 7)]).reason == FEWEST_MEETINGS


def test_tie_on_meetings_goes_to_least_recently_assigned() -> None:
    suggestion = rank([member("a", 2, at(30), join_seq=0), member("b", 2, at(10), join_seq=1)])

    assert (suggestion.host_id, suggestion.reason) == ("b", TIE_LEAST_RECENT)


def test_never_assigned_counts_as_least_recent() -> None:
    suggestion = rank([member("a", 0, at(1), join_seq=0), member("b", 0, None, join_seq=1)])

    assert (suggestion.host_id, suggestion.reason) == ("b", TIE_LEAST_RECENT)


def test_tie_on_meetings_and_recency_goes_to_earliest_join() -> None:
    suggestion = rank([member("a", 1, at(5), join_seq=2), member("b", 1, at(5), join_seq=1)])

    assert (suggestion.host_id, suggestion.reason) == ("b", TIE_JOIN_ORDER)


def test_full_tie_falls_back_to_user_id() -> None:
    assert order([member("b", join_seq=0), member("a", join_seq=0)]) == ["a", "b"]


def test_unavailable_member_is_never_suggested_and_listed_last() -> None:
    standings = [member("a", 0, available=False, join_seq=0), member("b", 5, at(1), join_seq=1)]

    suggestion = rank(standings)

    assert suggestion.host_id == "b"
    assert order(standings) == ["b", "a"]


def test_excluded_member_is_skipped() -> None:
    standings = [member("a", 0, join_seq=0), member("b", 1, at(1), join_seq=1)]

    assert rank(standings, exclude=("a",)).host_id == "b"
    assert order(standings, exclude=("a",)) == ["b", "a"]


def test_no_eligible_member_suggests_nobody() -> None:
    standings = [member("a", available=False, join_seq=0), member("b", join_seq=1)]

    suggestion = rank(standings, exclude=("b",))

    assert (suggestion.host_id, suggestion.reason) == (None, NO_AVAILABLE_MEMBER)
    assert sorted(order(standings, exclude=("b",))) == ["a", "b"]


def test_no_members_suggests_nobody() -> None:
    suggestion = rank([])

    assert (suggestion.host_id, suggestion.reason, suggestion.candidates) == (
        None,
        NO_AVAILABLE_MEMBER,
        (),
    )


def test_candidates_list_every_member_in_rank_order() -> None:
    standings = [
        member("d", 0, available=False, join_seq=0),
        member("c", 2, at(1), join_seq=1),
        member("b", 1, at(9), join_seq=2),
        member("a", 1, at(3), join_seq=3),
    ]

    assert order(standings) == ["a", "b", "c", "d"]


@st.composite
def standings(draw: st.DrawFn) -> list[Standing]:
    user_ids = draw(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8))
    return [
        member(
            user_id,
            meetings=draw(st.integers(0, 5)),
            last=draw(st.none() | st.integers(0, 10).map(at)),
            available=draw(st.booleans()),
            join_seq=seq,
        )
        for seq, user_id in enumerate(user_ids)
    ]


@given(standings(), st.sets(st.sampled_from("abcdefgh"), max_size=3))
def test_suggested_host_is_eligible_with_fewest_meetings(
    members: list[Standing], exclude: set[str]
) -> None:
    suggestion = rank(members, exclude)

    eligible = [s for s in members if s.available and s.user_id not in exclude]
    assert sorted(s.user_id for s in suggestion.candidates) == sorted(s.user_id for s in members)
    if not eligible:
        assert suggestion.host_id is None
        return
    host = next(s for s in eligible if s.user_id == suggestion.host_id)
    assert all(s.meetings >= host.meetings for s in eligible)


def test_least_recent_tie_break_is_exact_to_the_microsecond() -> None:
    far = datetime(9000, 1, 1, tzinfo=UTC)
    later = member("a", 0, far + timedelta(microseconds=1), join_seq=0)
    earlier = member("b", 0, far, join_seq=1)

    assert rank([later, earlier]).host_id == "b"
