"""The one ranking rule, shared by auto-assign (write side) and suggestions (read side)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

FEWEST_MEETINGS = "fewest_meetings"
TIE_LEAST_RECENT = "tie_least_recent"
TIE_JOIN_ORDER = "tie_join_order"
NO_AVAILABLE_MEMBER = "no_available_member"


@dataclass(frozen=True)
class Standing:
    """Where one member stands in a rotation at some instant."""

    user_id: str
    meetings: int
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    join_seq: int
    eligible: bool = True
    why: str | None = None

    @property
    def can_host(self) -> bool:
        """Available and eligible: the only members ever suggested or auto-assigned."""
        return self.available and self.eligible


@dataclass(frozen=True)
class Suggestion:
    """The suggested host, why, and every member in suggestion order."""

    host_id: str | None
    reason: str
    candidates: tuple[Standing, ...]


def _order_key(standing: Standing) -> tuple[int, bool, datetime | None, int, str]:
    # Never assigned counts as oldest: (False, None) sorts before every (True, timestamp).
    assigned = standing.last_assigned_at is not None
    return (
        standing.meetings,
        assigned,
        standing.last_assigned_at,
        standing.join_seq,
        standing.user_id,
    )


def rank(standings: Iterable[Standing], exclude: Collection[str] = ()) -> Suggestion:
    """Rank members: fewest meetings, then oldest last assignment, then join order, then id.

    Unavailable, ineligible and excluded members are listed after the others and never
    suggested.
    """
    ordered = sorted(standings, key=_order_key)
    eligible = [s for s in ordered if s.can_host and s.user_id not in exclude]
    others = [s for s in ordered if not (s.can_host and s.user_id not in exclude)]
    candidates = tuple(eligible + others)
    if not eligible:
        return Suggestion(None, NO_AVAILABLE_MEMBER, candidates)
    return Suggestion(eligible[0].user_id, _reason(eligible), candidates)


def _reason(eligible: list[Standing]) -> str:
    if len(eligible) == 1:
        return FEWEST_MEETINGS
    first, second = eligible[0], eligible[1]
    if first.meetings != second.meetings:
        return FEWEST_MEETINGS
    if first.last_assigned_at != second.last_assigned_at:
        return TIE_LEAST_RECENT
    return TIE_JOIN_ORDER
