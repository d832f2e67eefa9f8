"""A rotation's distribution policy and the calendar it counts in (contract v2).

Every window and cap period (a day, an ISO week, a month of the policy's time zone) begins
and ends on a whole quarter of an hour in UTC: every time zone in use today is offset from
UTC by a multiple of 15 minutes. So meetings and credits are kept per member as counts per
UTC quarter hour ("slots", see `events.tally`), and any period of any zone is a range of
slots: a later change of `time_zone`, `window` or `count_by` counts the recorded meetings as
if it had always been in force, without keeping the meetings themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

SLOT = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SLOTS_PER_DAY = 96
# Slots further back than this from the latest event are folded away: the longest period
# (a month of 31 days) of the furthest zone (14 h ahead) fits, with days to spare. A decision
# whose reference time (a meeting's start) lies further back counts only what is left.
HORIZON_SLOTS = 40 * SLOTS_PER_DAY

SINCE_RESET = "since_reset"
BOOKED_AT = "booked_at"
STARTS_AT = "starts_at"
RESET = "reset"
LEVEL = "level"

DEFAULT_POLICY: dict[str, Any] = {
    "on_join": RESET,
    "on_return": "none",
    "window": SINCE_RESET,
    "count_by": BOOKED_AT,
    "time_zone": "UTC",
    "cap": None,
    "no_shows_count": True,
}
"""Version 1's behaviour: a rotation that never sets a policy has this one."""


@dataclass(frozen=True)
class Cap:
    """At most `meetings` per day, week or month."""

    meetings: int
    per: str

    @classmethod
    def of(cls, value: dict[str, Any] | None) -> Cap | None:
        return None if value is None else cls(int(value["meetings"]), str(value["per"]))

    def as_dict(self) -> dict[str, Any]:
        return {"meetings": self.meetings, "per": self.per}


@dataclass(frozen=True)
class Policy:
    """The policy as stored (a plain dict in the aggregate), read once per decision."""

    on_join: str
    on_return: str
    window: str
    count_by: str
    time_zone: str
    cap: Cap | None
    no_shows_count: bool

    @classmethod
    def of(cls, stored: dict[str, Any]) -> Policy:
        value = {**DEFAULT_POLICY, **stored}
        return cls(
            on_join=value["on_join"],
            on_return=value["on_return"],
            window=value["window"],
            count_by=value["count_by"],
            time_zone=value["time_zone"],
            cap=Cap.of(value["cap"]),
            no_shows_count=bool(value["no_shows_count"]),
        )

    def reference(self, at: datetime, starts_at: datetime | None) -> datetime:
        """The time that places a decision in its window and cap period."""
        if self.count_by == STARTS_AT and starts_at is not None:
            return starts_at
        return at


def complete(policy: dict[str, Any] | None) -> dict[str, Any]:
    """A policy with every absent field at its default (SetPolicy replaces it whole)."""
    return {**DEFAULT_POLICY, **(policy or {})}


def slot_of(moment: datetime) -> int:
    """The UTC quarter hour a moment falls in (exact: no float seconds)."""
    return (moment - EPOCH) // SLOT


def slot_start(slot: int) -> datetime:
    return EPOCH + slot * SLOT


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_slots(per: str, reference: datetime, time_zone: str) -> tuple[int, int]:
    """The day, ISO week or month of `time_zone` containing `reference`, as slots [lo, hi)."""
    return _period_of_day(per, reference.astimezone(zone(time_zone)).date(), time_zone)


@lru_cache(maxsize=4096)
def _period_of_day(per: str, day: date, time_zone: str) -> tuple[int, int]:
    if per == "day":
        first, after = day, day + timedelta(days=1)
    elif per == "week":
        first = day - timedelta(days=day.weekday())  # Monday
        after = first + timedelta(days=7)
    elif per == "month":
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"no period {per!r}")
    tz = zone(time_zone)
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = datetime.combine(after, time(0), tzinfo=tz)
    return slot_of(start), slot_of(end)
