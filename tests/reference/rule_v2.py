"""Reference models of one rotation under wire contract version 2 (and version 1).

Written from /work/shared/CONTRACT.md alone ("Distribution policy", "Member options",
"The rule, version 2", "Meeting lifecycle", "Suggestion reply, version 2"; no holds, no
directory: every member is eligible), to check the production rule against. It is meant to
be obviously correct rather than fast: every meeting, credit, assignment and reset is kept in
a list, and every count is worked out again from those lists each time it is asked for.
Numbers are ints and `Fraction`s only, never floats.

Time: each operation takes `at`, the decision moment (the application's clock). Every accepted
operation also takes the next number of an event sequence; "before/after" between operations
(resets, joins, credits, assignments) is that order, never a comparison of timestamps, so
operations at the same instant are still ordered.

Choices where the contract leaves room (compare them with production's):
1. Resets. A reset is a point in the event sequence. A meeting counts only when it was
   *booked* after the last reset (a reassignment keeps the booking's place: the meeting
   "counts for the new host, in the same window as before"); a credit counts only when it was
   given after the last reset. A join with `on_join: reset` is a reset, also the very first
   member's; nothing else resets (SetPolicy, removals, toggles do not).
2. Windows and caps. An instant is placed in a window or cap period by its local calendar day,
   ISO week (Monday first: `isocalendar()` year and week) or month in the policy's
   `time_zone`, so boundaries are local midnights (DST changes included). A meeting is placed
   by `starts_at` under `count_by: starts_at` when it has one, else by its booking time; a
   rescheduled meeting by its new `starts_at`; a reassigned one where it was before. A credit
   is placed by the moment it was given, whatever `count_by`. `since_reset` is one window.
3. Reference time. The meeting's `starts_at` when `count_by` is `starts_at` and one is given
   (a booking's or suggestion's `starts_at`; for ReassignMeeting the meeting's current
   `starts_at`), else the decision moment. Levelling (join, return) uses the decision moment.
4. Caps. A member's cap is its own when set, else the policy's. The cap count is the member's
   actual meetings placed (by `count_by`) in the cap period containing the reference time:
   cancelled ones excluded, no-shows included (whatever `no_shows_count`), resets and credits
   ignored. Capped when the count is at least `cap.meetings`.
5. Membership. A removed member's history leaves with it: a member who joins again starts a
   new membership, and only meetings given to it (booked or reassigned to it), credits given
   to it and assignments made during the current membership count for it (as version 1's
   production forgets a re-added member's last assignment). Its `joined_at` is the new join.
6. Order among those who can host: lowest `Fraction(meetings + credits + 1, weight)`, then
   higher priority, then oldest last assignment (never assigned first; the last assignment is
   the decision moment of the member's last booking or reassignment to it, and neither
   cancelling nor reassigning away changes it), then earliest `joined_at` (a timestamp: two
   members joining at the same instant, e.g. in one CreateRotation, tie), then user id.
7. Reasons, from the first two who can host (as version 1 did): their ranking fractions differ
   -> `fewest_meetings`; else priorities differ -> `tie_priority`; else last assignments
   differ -> `tie_least_recent`; else `tie_join_order` (joined_at or user id decided). Only one
   can host -> `fewest_meetings`; none -> host None, `no_available_member`. A preferred host
   who can host -> `preferred_host` (even when the rule would have chosen it anyway); a
   preferred host who cannot host (unavailable, capped, excluded or not a member) is ignored.
8. Levelling (on_join `level`; on_return `level` when a toggle turns an *unavailable* member
   on, an available=true toggle of an available member does nothing): `s` is the lowest
   `(meetings + credits) / weight` among the other available members at the decision moment;
   with none there is no credit; else the credit `floor(s * weight) - (meetings + credits)`
   when positive, given at that moment (so it counts in the window containing it).
9. Commands: an explicit `host_id` (BookMeeting, ReassignMeeting) must be a member, else
   `unknown_member`; it may be unavailable or capped (an override). A meeting id taken before
   (cancelled ones too) is `duplicate_meeting`. Cancel, reschedule, reassign and no-show of a
   meeting this rotation never booked are `unknown_meeting`, of a cancelled meeting
   `meeting_cancelled`. MarkNoShow twice is accepted. A reassigned no-show stays a no-show.
   Reassigning to the current host by name is accepted and counts as a new assignment (its
   last assignment moves). A booking with both `host_id` and `preferred_host_id`: the name
   decides. Not modelled: teams, holds, the directory.
10. Fairness (suggestion reply v2), over the available members (excluded and capped ones
   included): `meetings` = total of meetings + credits, `spread` = max - min (None with fewer
   than two), `deviation` = sum |v - total * weight / sum of weights| / total (0 when the total
   is 0; taken literally also when a negative credit makes the total negative, where
   production divides by |total|).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Literal
from zoneinfo import ZoneInfo

Per = Literal["day", "week", "month"]


class Refused(Exception):
    """The command is rejected with this contract error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Cap:
    meetings: int
    per: Per


@dataclass(frozen=True)
class Policy:
    on_join: Literal["reset", "level", "none"] = "reset"
    on_return: Literal["none", "level"] = "none"
    window: Literal["since_reset", "day", "week", "month"] = "since_reset"
    count_by: Literal["booked_at", "starts_at"] = "booked_at"
    time_zone: str = "UTC"
    cap: Cap | None = None
    no_shows_count: bool = True


def period(at: datetime, per: str, time_zone: str) -> tuple[int, ...]:
    """The local calendar day, ISO week or month that contains `at` (one for since_reset)."""
    local = at.astimezone(ZoneInfo(time_zone))
    if per == "day":
        return (local.year, local.month, local.day)
    if per == "week":
        iso = local.isocalendar()
        return (iso.year, iso.week)
    if per == "month":
        return (local.year, local.month)
    assert per == "since_reset", per
    return ()


@dataclass
class Member:
    user_id: str
    joined_at: datetime
    join_seq: int
    weight: int = 100
    priority: int = 2
    cap: Cap | None = None  # None: the policy's cap
    available: bool = True


@dataclass
class Meeting:
    meeting_id: str
    host_id: str
    booked_at: datetime
    booked_seq: int
    starts_at: datetime | None
    assigned_seq: int  # when the current host was given it (booking or reassignment)
    cancelled: bool = False
    no_show: bool = False


@dataclass(frozen=True)
class Credit:
    user_id: str
    meetings: int
    given_at: datetime
    seq: int
    reason: str


@dataclass(frozen=True)
class Assignment:
    user_id: str
    at: datetime
    seq: int


@dataclass(frozen=True)
class Standing:
    """One candidate of a decision, as the suggestion reply v2 shows it."""

    user_id: str
    meetings: int
    credits: int
    weight: int
    priority: int
    cap: Cap | None  # the cap in force: the member's own, else the policy's
    capped: bool
    available: bool
    can_host: bool
    last_assigned_at: datetime | None
    joined_at: datetime

    def rank(self) -> tuple[object, ...]:
        last = (0,) if self.last_assigned_at is None else (1, self.last_assigned_at)
        return (
            Fraction(self.meetings + self.credits + 1, self.weight),
            -self.priority,
            last,
            self.joined_at,
            self.user_id,
        )


@dataclass(frozen=True)
class Decision:
    host_id: str | None
    reason: str
    candidates: tuple[Standing, ...]


@dataclass(frozen=True)
class Fairness:
    meetings: int
    spread: int | None
    deviation: Fraction


UNSET: object = object()


def reason_between(first: Standing, second: Standing) -> str:
    """Why the first who can host beat the second (version 1's way, with priority)."""
    a, b = first.rank(), second.rank()
    if a[0] != b[0]:
        return "fewest_meetings"
    if a[1] != b[1]:
        return "tie_priority"
    if a[2] != b[2]:
        return "tie_least_recent"
    return "tie_join_order"


@dataclass
class RotationV2:
    """One rotation: create it, then apply operations in order with their decision moments."""

    created_at: datetime
    policy: Policy = field(default_factory=Policy)
    members: dict[str, Member] = field(default_factory=dict)
    meetings: list[Meeting] = field(default_factory=list)
    credits: list[Credit] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)
    seq: int = 0

    @classmethod
    def create(
        cls, at: datetime, members: list[str] | tuple[str, ...] = (), policy: Policy | None = None
    ) -> RotationV2:
        rotation = cls(created_at=at, policy=policy or Policy())
        for user_id in members:
            rotation.add_member(user_id, at)
        return rotation

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    # -- counting ------------------------------------------------------------------------

    def last_reset(self) -> int:
        return max(self.resets, default=0)

    def placed_at(self, meeting: Meeting) -> datetime:
        if self.policy.count_by == "starts_at" and meeting.starts_at is not None:
            return meeting.starts_at
        return meeting.booked_at

    def reference_time(self, at: datetime, starts_at: datetime | None) -> datetime:
        if self.policy.count_by == "starts_at" and starts_at is not None:
            return starts_at
        return at

    def same_window(self, when: datetime, reference: datetime) -> bool:
        zone, window = self.policy.time_zone, self.policy.window
        return period(when, window, zone) == period(reference, window, zone)

    def hosted(self, member: Member) -> list[Meeting]:
        """The member's meetings of its current membership, cancelled ones left out."""
        return [
            m
            for m in self.meetings
            if m.host_id == member.user_id and m.assigned_seq > member.join_seq and not m.cancelled
        ]

    def meetings_of(self, member: Member, reference: datetime) -> int:
        return len(
            [
                m
                for m in self.hosted(member)
                if m.booked_seq > self.last_reset()
                and (self.policy.no_shows_count or not m.no_show)
                and self.same_window(self.placed_at(m), reference)
            ]
        )

    def credits_of(self, member: Member, reference: datetime) -> int:
        return sum(
            c.meetings
            for c in self.credits
            if c.user_id == member.user_id
            and c.seq > member.join_seq
            and c.seq > self.last_reset()
            and self.same_window(c.given_at, reference)
        )

    def cap_of(self, member: Member) -> Cap | None:
        return member.cap if member.cap is not None else self.policy.cap

    def capped(self, member: Member, reference: datetime) -> bool:
        cap = self.cap_of(member)
        if cap is None:
            return False
        zone = self.policy.time_zone
        here = period(reference, cap.per, zone)
        mine = self.hosted(member)
        placed = [m for m in mine if period(self.placed_at(m), cap.per, zone) == here]
        return len(placed) >= cap.meetings

    def last_assigned(self, member: Member) -> datetime | None:
        mine = [
            a for a in self.assignments if a.user_id == member.user_id and a.seq > member.join_seq
        ]
        return mine[-1].at if mine else None

    def share(self, member: Member, reference: datetime) -> Fraction:
        """The levelling share: (meetings + credits) / weight."""
        total = self.meetings_of(member, reference) + self.credits_of(member, reference)
        return Fraction(total, member.weight)

    # -- deciding ------------------------------------------------------------------------

    def standing(self, member: Member, reference: datetime, exclude: tuple[str, ...]) -> Standing:
        capped = self.capped(member, reference)
        return Standing(
            user_id=member.user_id,
            meetings=self.meetings_of(member, reference),
            credits=self.credits_of(member, reference),
            weight=member.weight,
            priority=member.priority,
            cap=self.cap_of(member),
            capped=capped,
            available=member.available,
            can_host=member.available and member.user_id not in exclude and not capped,
            last_assigned_at=self.last_assigned(member),
            joined_at=member.joined_at,
        )

    def suggest(
        self,
        at: datetime,
        exclude: Sequence[str] = (),
        starts_at: datetime | None = None,
        preferred_host_id: str | None = None,
    ) -> Decision:
        reference = self.reference_time(at, starts_at)
        standings = [self.standing(m, reference, tuple(exclude)) for m in self.members.values()]
        hosts = sorted((s for s in standings if s.can_host), key=Standing.rank)
        others = sorted(
            (s for s in standings if not s.can_host), key=lambda s: (not s.available, s.rank())
        )
        candidates = tuple(hosts + others)
        if not hosts:
            return Decision(None, "no_available_member", candidates)
        if preferred_host_id in [s.user_id for s in hosts]:
            return Decision(preferred_host_id, "preferred_host", candidates)
        reason = "fewest_meetings" if len(hosts) == 1 else reason_between(hosts[0], hosts[1])
        return Decision(hosts[0].user_id, reason, candidates)

    def fairness(self, at: datetime, starts_at: datetime | None = None) -> Fairness:
        reference = self.reference_time(at, starts_at)
        present = [m for m in self.members.values() if m.available]
        loads = [self.meetings_of(m, reference) + self.credits_of(m, reference) for m in present]
        total = sum(loads)
        spread = max(loads) - min(loads) if len(loads) >= 2 else None
        weights = sum(m.weight for m in present)
        if total == 0:
            return Fairness(total, spread, Fraction(0))
        pairs = zip(loads, present, strict=True)
        gaps = [abs(load - Fraction(total * m.weight, weights)) for load, m in pairs]
        # Divided by the total's magnitude: the contract's "by the total" would make a
        # negative total (credits taken back) give a negative deviation (docs/decisions.md).
        return Fairness(total, spread, sum(gaps, Fraction(0)) / abs(total))

    def level(self, member: Member, at: datetime) -> int:
        """Credit `member` up to the least-loaded other available member; the credit given."""
        others = [m for m in self.members.values() if m.available and m is not member]
        if not others:
            return 0
        lowest = min(self.share(m, at) for m in others)
        own = self.meetings_of(member, at) + self.credits_of(member, at)
        credit = math.floor(lowest * member.weight) - own
        if credit <= 0:
            return 0
        self.credits.append(Credit(member.user_id, credit, at, self._next(), "level"))
        return credit

    # -- commands ------------------------------------------------------------------------

    def member(self, user_id: str) -> Member:
        if user_id not in self.members:
            raise Refused("unknown_member")
        return self.members[user_id]

    def find_meeting(self, meeting_id: str) -> Meeting:
        found = [m for m in self.meetings if m.meeting_id == meeting_id]
        if not found:
            raise Refused("unknown_meeting")
        if found[0].cancelled:
            raise Refused("meeting_cancelled")
        return found[0]

    def set_policy(self, policy: Policy) -> None:
        self.policy = policy
        self._next()

    def add_member(
        self,
        user_id: str,
        at: datetime,
        weight: int | None = None,
        priority: int | None = None,
        cap: Cap | None = None,
    ) -> None:
        if user_id in self.members:
            raise Refused("already_member")
        member = Member(user_id, at, self._next(), cap=cap)
        member.weight = 100 if weight is None else weight
        member.priority = 2 if priority is None else priority
        self.members[user_id] = member
        if self.policy.on_join == "reset":
            self.resets.append(member.join_seq)
        elif self.policy.on_join == "level":
            self.level(member, at)

    def set_member_options(
        self, user_id: str, weight: object = UNSET, priority: object = UNSET, cap: object = UNSET
    ) -> None:
        member = self.member(user_id)
        if isinstance(weight, int):
            member.weight = weight
        if isinstance(priority, int):
            member.priority = priority
        if cap is None or isinstance(cap, Cap):
            member.cap = cap
        self._next()

    def remove_member(self, user_id: str) -> None:
        self.member(user_id)
        del self.members[user_id]
        self._next()

    def toggle(self, user_id: str, available: bool, at: datetime) -> None:
        member = self.member(user_id)
        returning = available and not member.available
        member.available = available
        self._next()
        if returning and self.policy.on_return == "level":
            self.level(member, at)

    def credit(self, user_id: str, meetings: int, reason: str, at: datetime) -> None:
        self.member(user_id)
        self.credits.append(Credit(user_id, meetings, at, self._next(), reason))

    def book(
        self,
        meeting_id: str,
        at: datetime,
        host_id: str | None = None,
        starts_at: datetime | None = None,
        preferred_host_id: str | None = None,
    ) -> str:
        if any(m.meeting_id == meeting_id for m in self.meetings):
            raise Refused("duplicate_meeting")
        if host_id is not None:
            self.member(host_id)
            host = host_id
        else:
            decided = self.suggest(at, starts_at=starts_at, preferred_host_id=preferred_host_id)
            if decided.host_id is None:
                raise Refused("no_available_member")
            host = decided.host_id
        seq = self._next()
        self.meetings.append(Meeting(meeting_id, host, at, seq, starts_at, seq))
        self.assignments.append(Assignment(host, at, seq))
        return host

    def cancel(self, meeting_id: str) -> None:
        self.find_meeting(meeting_id).cancelled = True
        self._next()

    def reschedule(self, meeting_id: str, starts_at: datetime) -> None:
        self.find_meeting(meeting_id).starts_at = starts_at
        self._next()

    def mark_no_show(self, meeting_id: str) -> None:
        self.find_meeting(meeting_id).no_show = True
        self._next()

    def reassign(self, meeting_id: str, at: datetime, host_id: str | None = None) -> str:
        meeting = self.find_meeting(meeting_id)
        if host_id is not None:
            self.member(host_id)
            host = host_id
        else:
            decided = self.suggest(at, exclude=(meeting.host_id,), starts_at=meeting.starts_at)
            if decided.host_id is None:
                raise Refused("no_available_member")
            host = decided.host_id
        seq = self._next()
        meeting.host_id = host
        meeting.assigned_seq = seq
        self.assignments.append(Assignment(host, at, seq))
        return host


# -- version 1 -----------------------------------------------------------------------------


@dataclass
class V1Member:
    joined_at: datetime
    available: bool = True
    meetings: int = 0
    last_assigned_at: datetime | None = None


@dataclass
class RotationV1:
    """Contract version 1: fewest meetings since the last reset (every join resets), then
    oldest last assignment (never first), then earliest joined, then user id. Counters, not
    lists: a second, differently built model."""

    members: dict[str, V1Member] = field(default_factory=dict)
    booked: set[str] = field(default_factory=set)

    def join(self, user_id: str, at: datetime) -> None:
        if user_id in self.members:
            raise Refused("already_member")
        for member in self.members.values():
            member.meetings = 0
        self.members[user_id] = V1Member(at)

    def leave(self, user_id: str) -> None:
        if self.members.pop(user_id, None) is None:
            raise Refused("unknown_member")

    def set_available(self, user_id: str, available: bool) -> None:
        if user_id not in self.members:
            raise Refused("unknown_member")
        self.members[user_id].available = available

    def order(self, exclude: Sequence[str] = ()) -> list[tuple[tuple[object, ...], str]]:
        """(key, user id) of those who may host, best first."""
        keys = []
        for user_id, m in self.members.items():
            if m.available and user_id not in exclude:
                last = [] if m.last_assigned_at is None else [m.last_assigned_at]
                keys.append(((m.meetings, (len(last), last), m.joined_at, user_id), user_id))
        return sorted(keys)

    def pick(self, exclude: Sequence[str] = ()) -> tuple[str | None, str]:
        ranked = self.order(exclude)
        if not ranked:
            return None, "no_available_member"
        if len(ranked) == 1:
            return ranked[0][1], "fewest_meetings"
        (a, user_id), (b, _) = ranked[0], ranked[1]
        if a[0] != b[0]:
            return user_id, "fewest_meetings"
        if a[1] != b[1]:
            return user_id, "tie_least_recent"
        return user_id, "tie_join_order"

    def book(self, meeting_id: str, at: datetime, host_id: str | None = None) -> str:
        if meeting_id in self.booked:
            raise Refused("duplicate_meeting")
        if host_id is None:
            host_id = self.pick()[0]
            if host_id is None:
                raise Refused("no_available_member")
        elif host_id not in self.members:
            raise Refused("unknown_member")
        self.booked.add(meeting_id)
        self.members[host_id].meetings += 1
        self.members[host_id].last_assigned_at = at
        return host_id
