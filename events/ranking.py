"""The one ranking rule (contract v2), shared by every decision and every answer.

Auto-assign, suggestions, reassignment, point-in-time answers, the audit and the report all
rank through `rank`. Shares are compared exactly (`Fraction`), never as floats. With every
weight at its default and no credits, holds, caps or priorities, the order is version 1's:
fewest meetings, then oldest last assignment, then earliest joined, then user id (members
who joined at the same instant, say with their team, tie on user id).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from math import lcm
from typing import Any

FEWEST_MEETINGS = "fewest_meetings"
TIE_PRIORITY = "tie_priority"
TIE_LEAST_RECENT = "tie_least_recent"
TIE_JOIN_ORDER = "tie_join_order"
PREFERRED_HOST = "preferred_host"
HELD = "held"
NO_AVAILABLE_MEMBER = "no_available_member"
DEFAULT_WEIGHT = 100
DEFAULT_PRIORITY = 2


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one member stands at one decision: what counts now, and what it may take."""

    user_id: str
    meetings: int  # meetings that count in the current window
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    join_seq: int
    eligible: bool = True
    why: str | None = None
    weight: int = DEFAULT_WEIGHT
    priority: int = DEFAULT_PRIORITY
    credits: int = 0
    held: int = 0
    cap: dict[str, Any] | None = None  # the cap in force ({"meetings", "per"}), if any
    capped: bool = False

    @property
    def can_host(self) -> bool:
        """Available, eligible and not capped: the only members ever suggested or
        auto-assigned (exclusions are the request's, see `rank`)."""
        return self.available and self.eligible and not self.capped

    @property
    def share(self) -> Fraction:
        """What the rule compares: (meetings + credits + held + 1) / weight."""
        return Fraction(self.meetings + self.credits + self.held + 1, self.weight)

    @property
    def level_share(self) -> Fraction:
        """What levelling compares: (meetings + credits) / weight, holds left out."""
        return Fraction(self.meetings + self.credits, self.weight)


@dataclass(frozen=True)
class Suggestion:
    """The suggested host, why, and every member in suggestion order."""

    host_id: str | None
    reason: str
    candidates: tuple[Standing, ...]


OrderKey = tuple[int, int, bool, datetime | None, datetime, str]


def _order_keys(standings: list[Standing]) -> dict[str, OrderKey]:
    """Each member's place in the rule's order, in integers.

    Shares `(meetings + credits + held + 1) / weight` are compared exactly as multiples of
    `1 / lcm(weights)`: the same order as `Standing.share` (a Fraction), without a Fraction
    per comparison (sorting by Fractions cost more than the rest of a decision). Never
    assigned counts as oldest: (False, None) sorts before every (True, timestamp).
    """
    scale = lcm(*(s.weight for s in standings)) if standings else 1
    return {
        s.user_id: (
            (s.meetings + s.credits + s.held + 1) * (scale // s.weight),
            -s.priority,
            s.last_assigned_at is not None,
            s.last_assigned_at,
            s.joined_at,
            s.user_id,
        )
        for s in standings
    }


def rank(
    standings: Iterable[Standing],
    exclude: Collection[str] = (),
    preferred_host_id: str | None = None,
) -> Suggestion:
    """Rank members by the rule; those who cannot host (unavailable, ineligible, capped or
    excluded) are listed after the others and never suggested. A preferred host who can
    host is chosen (and listed first) whatever its rank."""
    members = list(standings)
    keys = _order_keys(members)
    ordered = sorted(members, key=lambda s: keys[s.user_id])
    hosts = [s for s in ordered if s.can_host and s.user_id not in exclude]
    others = [s for s in ordered if not (s.can_host and s.user_id not in exclude)]
    if not hosts:
        return Suggestion(None, NO_AVAILABLE_MEMBER, tuple(others))
    preferred = next((s for s in hosts if s.user_id == preferred_host_id), None)
    if preferred is not None:
        rest = [s for s in hosts if s is not preferred]
        return Suggestion(preferred.user_id, PREFERRED_HOST, (preferred, *rest, *others))
    return Suggestion(hosts[0].user_id, _reason(hosts, keys), tuple(hosts + others))


def _reason(hosts: list[Standing], keys: dict[str, OrderKey]) -> str:
    if len(hosts) == 1:
        return FEWEST_MEETINGS
    first, second = keys[hosts[0].user_id], keys[hosts[1].user_id]
    if first[0] != second[0]:
        return FEWEST_MEETINGS
    if first[1] != second[1]:
        return TIE_PRIORITY
    if first[3] != second[3]:
        return TIE_LEAST_RECENT
    return TIE_JOIN_ORDER


@dataclass(frozen=True)
class Fairness:
    """How evenly meetings (and credits) sit across the members who could take them."""

    meetings: int
    spread: int | None
    deviation: Fraction


def fairness(standings: Iterable[Standing]) -> Fairness:
    """The contract's fairness summary over the available and eligible members.

    `deviation` is the sum of each member's distance from its weighted fair share, divided
    by the total (0 when the total is 0; by its magnitude if credits took it below 0).
    """
    counted = [s for s in standings if s.available and s.eligible]
    loads = [s.meetings + s.credits for s in counted]
    total = sum(loads)
    spread = max(loads) - min(loads) if len(loads) >= 2 else None
    weights = sum(s.weight for s in counted)
    if total == 0 or weights == 0:
        return Fairness(total, spread, Fraction(0))
    distance = sum(
        (
            abs(load - Fraction(total * s.weight, weights))
            for load, s in zip(loads, counted, strict=True)
        ),
        Fraction(0),
    )
    return Fairness(total, spread, distance / abs(total))


def level_credit(newcomer: Standing, others: Iterable[Standing]) -> int:
    """The levelling credit: `floor(s * weight) - (meetings + credits)` when positive, with
    `s` the lowest share among the other members who are available and eligible."""
    shares = [s.level_share for s in others if s.available and s.eligible]
    if not shares:
        return 0
    credit = (min(shares) * newcomer.weight).__floor__() - (newcomer.meetings + newcomer.credits)
    return max(credit, 0)
