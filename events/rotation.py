"""The Rotation aggregate: members, policy, availability and meetings of one rotation.

State stays bounded however long the history: per member, what counts since the last reset
(totals, and counts per UTC quarter hour for windows, see `events.policy`) and what counts
under caps (counts per quarter hour, resets ignored), each folded away past the horizon. The
meetings themselves are not kept: a lifecycle event carries the facts of its meeting (found
by id through the ledger's index beside the events), and its mutator takes back what the
meeting counted from where it was counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypedDict, cast
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from events import tally
from events.errors import (
    AlreadyMember,
    HoldExpired,
    IneligibleMember,
    MeetingCancelled,
    NoAvailableMember,
    RotationDeleted,
    UnknownHold,
    UnknownMember,
)
from events.policy import (
    DEFAULT_POLICY,
    HORIZON_SLOTS,
    LEVEL,
    RESET,
    SINCE_RESET,
    SLOTS_PER_DAY,
    STARTS_AT,
    Policy,
    complete,
    period_slots,
    slot_of,
    slot_start,
)
from events.ranking import (
    DEFAULT_PRIORITY,
    DEFAULT_WEIGHT,
    HELD,
    Standing,
    Suggestion,
    level_credit,
    rank,
)

ROTATION_NAMESPACE = uuid5(NAMESPACE_URL, "meeting-rotations/rotation")
RECORD_TYPES = ("contact", "company", "deal", "ticket")
OVERRIDE = "override"
DIRECT = "direct"
# Reason of a booking stored before decision records existed (MeetingBooked v1).
NOT_RECORDED = "not_recorded"
# Kinds of credit: given by a manager, or by the service when levelling.
MANUAL = "manual"
LEVEL_JOIN = "level_join"
LEVEL_RETURN = "level_return"

SINCE_RESET_TALLIES = ("booked", "started", "booked_ns", "started_ns", "credited")
CAP_TALLIES = ("cap_booked", "cap_started")
TALLIES = SINCE_RESET_TALLIES + CAP_TALLIES


class MemberRecord(TypedDict):
    """One member's state; plain values so snapshots serialise without custom codecs."""

    user_id: str
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    join_seq: int
    joined_version: int  # the event that made this record (a rejoin makes a new one)
    weight: int
    priority: int
    cap: dict[str, Any] | None  # the member's own cap; None: the policy's
    # Since the last reset: meetings that count (no-shows included), no-shows, credits.
    meetings: int
    no_shows: int
    credits: int
    # The same per UTC quarter hour (by booking time, by start), for windows.
    booked: tally.Tally
    started: tally.Tally
    booked_ns: tally.Tally
    started_ns: tally.Tally
    credited: tally.Tally
    # Every meeting, resets ignored (caps), by booking time and by start.
    cap_booked: tally.Tally
    cap_started: tally.Tally


class Meeting(TypedDict):
    """A meeting's facts as its latest event leaves them."""

    meeting_id: str
    host_id: str
    record: dict[str, str]
    booked_at: datetime
    booked_version: int  # "booked after the last reset" compares versions, not clocks
    assigned_version: int  # when its current host was given it
    starts_at: datetime | None
    no_show: bool
    cancelled: bool


class Hold(TypedDict):
    """An active hold: one more meeting of its member until it expires, is booked or is
    released (the rotation keeps only these; the claim row keeps the hold id taken)."""

    hold_id: str
    host_id: str
    expires_at: datetime
    version: int  # the HostHeld event (a member who left and came back since holds nothing)


@dataclass(frozen=True)
class Context:
    """What places a decision: the policy, the reference time, the window (slots), the
    moment of the decision (holds expire against it) and a hold being booked (not counted)."""

    policy: Policy
    reference: datetime
    window: tuple[int, int] | None  # None: every meeting since the last reset
    at: datetime | None = None
    booking_hold: str | None = None
    periods: dict[str, tuple[int, int]] = field(default_factory=dict, compare=False)

    def period(self, per: str) -> tuple[int, int]:
        """The cap period (day, week or month) containing the reference time, as slots."""
        if per not in self.periods:
            self.periods[per] = period_slots(per, self.reference, self.policy.time_zone)
        return self.periods[per]

    def window_dict(self) -> dict[str, datetime] | None:
        if self.window is None:
            return None
        return {"start": slot_start(self.window[0]), "end": slot_start(self.window[1])}


@lru_cache(maxsize=100_000)  # asked for every member of every booking
def rotation_uuid(rotation_id: str) -> UUID:
    """Aggregate id of a rotation: stable, derived from the client's rotation id."""
    return uuid5(ROTATION_NAMESPACE, rotation_id)


def standing_to_dict(standing: Standing) -> dict[str, Any]:
    """A standing as stored in a decision record."""
    return {
        "user_id": standing.user_id,
        "meetings": standing.meetings,
        "last_assigned_at": standing.last_assigned_at,
        "available": standing.available,
        "joined_at": standing.joined_at,
        "join_seq": standing.join_seq,
        "eligible": standing.eligible,
        "why": standing.why,
        "weight": standing.weight,
        "priority": standing.priority,
        "credits": standing.credits,
        "held": standing.held,
        "cap": standing.cap,
        "capped": standing.capped,
    }


def team_source(team_id: str) -> str:
    return f"team:{team_id}"


def new_member(
    user_id: str, at: datetime, join_seq: int, version: int, options: Mapping[str, Any]
) -> MemberRecord:
    return MemberRecord(
        user_id=user_id,
        last_assigned_at=None,
        available=True,
        joined_at=at,
        join_seq=join_seq,
        joined_version=version,
        weight=options.get("weight") or DEFAULT_WEIGHT,
        priority=DEFAULT_PRIORITY if options.get("priority") is None else options["priority"],
        cap=options.get("cap"),
        meetings=0,
        no_shows=0,
        credits=0,
        booked=tally.EMPTY,
        started=tally.EMPTY,
        booked_ns=tally.EMPTY,
        started_ns=tally.EMPTY,
        credited=tally.EMPTY,
        cap_booked=tally.EMPTY,
        cap_started=tally.EMPTY,
    )


def _decision_fields(
    suggestion: Suggestion, context: Context, preferred_host_id: str | None
) -> dict[str, Any]:
    return {
        "suggested_host_id": suggestion.host_id,
        "candidates": [standing_to_dict(s) for s in suggestion.candidates],
        "policy": _policy_dict(context.policy),
        "reference_at": context.reference,
        "window": context.window_dict(),
        "preferred_host_id": preferred_host_id,
    }


def _policy_dict(policy: Policy) -> dict[str, Any]:
    return {
        "on_join": policy.on_join,
        "on_return": policy.on_return,
        "window": policy.window,
        "count_by": policy.count_by,
        "time_zone": policy.time_zone,
        "cap": None if policy.cap is None else policy.cap.as_dict(),
        "no_shows_count": policy.no_shows_count,
    }


def _upcast_decision_v3_v4(state: dict[str, Any]) -> None:
    """Before version 2 of the rule: default options, no credits, holds or caps."""
    for candidate in state["candidates"]:
        candidate.setdefault("weight", DEFAULT_WEIGHT)
        candidate.setdefault("priority", DEFAULT_PRIORITY)
        candidate.setdefault("credits", 0)
        candidate.setdefault("held", 0)
        candidate.setdefault("cap", None)
        candidate.setdefault("capped", False)
    state.setdefault("policy", dict(DEFAULT_POLICY))
    state.setdefault("reference_at", state["at"])
    state.setdefault("window", None)
    state.setdefault("preferred_host_id", None)


class Rotation(Aggregate):
    """A meeting rotation: decides bookings on its own state, never on a lagging read model."""

    # v2: members carry options, credits and tallies; the rotation its policy. Snapshots
    # taken before (v1) read with default options and empty tallies: windows and caps
    # count from the upgrade on (rebuild the read model and drop snapshots to recount).
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("policy", dict(DEFAULT_POLICY))
        state.setdefault("reset_version", state.get("_version", 0))
        state.setdefault("pruned_below", 0)
        for record in state["members"].values():
            record.setdefault("joined_version", 0)
            record.setdefault("weight", DEFAULT_WEIGHT)
            record.setdefault("priority", DEFAULT_PRIORITY)
            record.setdefault("cap", None)
            record.setdefault("no_shows", 0)
            record.setdefault("credits", 0)
            for name in TALLIES:
                record.setdefault(name, tally.EMPTY)

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """v3: active holds (none before holds existed)."""
        state.setdefault("holds", {})

    @staticmethod
    def create_id(rotation_id: str, **_: Any) -> UUID:
        return rotation_uuid(rotation_id)

    # -- event schemas -------------------------------------------------------------------
    # Every event states its schema version (eventsourcing stores `class_version` when it
    # is above 1 and calls `upcast_vN_vN+1` on older stored state before reconstructing).
    # Changing an event's fields means: bump its class_version and add the upcast.

    class Created(Aggregate.Created):
        """v2: the policy. v1: rotation_id, name, members, at."""

        class_version = 2
        rotation_id: str
        name: str
        members: list[str]
        at: datetime
        policy: dict[str, Any] | None  # None: every field at its default

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("policy", None)

    class Renamed(Aggregate.Event):
        """v1: name."""

        class_version = 1
        name: str

    class PolicySet(Aggregate.Event):
        """v1: the whole policy (every field), at."""

        class_version = 1
        policy: dict[str, Any]
        at: datetime

    class MemberAdded(Aggregate.Event):
        """v2: the member's options (weight, priority, cap; None where not given).
        v1: user_id, at."""

        class_version = 2
        user_id: str
        at: datetime
        options: dict[str, Any]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("options", {})

    class MemberOptionsSet(Aggregate.Event):
        """v1: user_id, options (only the fields given; a cap of None is the policy's)."""

        class_version = 1
        user_id: str
        options: dict[str, Any]

    class MemberCredited(Aggregate.Event):
        """v1: user_id, meetings (may be negative), reason, kind (manual or levelling),
        actor (who gave it; None for the service's levelling), at."""

        class_version = 1
        user_id: str
        meetings: int
        reason: str
        kind: str
        actor: str | None
        at: datetime

    class MemberRemoved(Aggregate.Event):
        """v1: user_id."""

        class_version = 1
        user_id: str

    class AvailabilityToggled(Aggregate.Event):
        """v1: user_id, available."""

        class_version = 1
        user_id: str
        available: bool

    class MeetingBooked(Aggregate.Event):
        """v5: hold_id, the hold it booked (None: none).
        v4: the decision record says what decided it under version 2 of the rule: the
        policy, the reference time and window, the preferred host, and each candidate's
        weight, priority, credits, holds, cap and whether it was capped.

        v3: each candidate says whether it was eligible, and why not (the directory). v2
        added the decision record (suggested host, override, reason, candidates). v1 held
        the booking only: meeting_id and host_id, and possibly record, starts_at and at.
        Events stored by this code before versioning carry no class_version, so they read
        as v1 too; the upcasts only fill in what is missing.
        """

        class_version = 5
        meeting_id: str
        host_id: str
        suggested_host_id: str | None
        override: bool
        reason: str
        candidates: list[dict[str, Any]]
        record: dict[str, str]
        starts_at: datetime | None
        at: datetime
        policy: dict[str, Any]
        reference_at: datetime
        window: dict[str, datetime] | None
        preferred_host_id: str | None
        hold_id: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """No decision record: say so (reason "not_recorded") instead of inventing one."""
            state.setdefault("suggested_host_id", None)
            state.setdefault("override", False)
            state.setdefault("reason", NOT_RECORDED)
            state.setdefault("candidates", [])
            state.setdefault("record", {})
            state.setdefault("starts_at", None)
            state.setdefault("at", state["timestamp"])

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Before directory facts every member could host: eligible, no reason not to."""
            for candidate in state["candidates"]:
                candidate.setdefault("eligible", True)
                candidate.setdefault("why", None)

        upcast_v3_v4 = staticmethod(_upcast_decision_v3_v4)

        @staticmethod
        def upcast_v4_v5(state: dict[str, Any]) -> None:
            state.setdefault("hold_id", None)

        def facts(self) -> Meeting:
            return Meeting(
                meeting_id=self.meeting_id,
                host_id=self.host_id,
                record=dict(self.record),
                booked_at=self.at,
                booked_version=self.originator_version,
                assigned_version=self.originator_version,
                starts_at=self.starts_at,
                no_show=False,
                cancelled=False,
            )

    class MeetingCancelled(Aggregate.Event):
        """v1: meeting_id, meeting (its facts before), reason, actor, at."""

        class_version = 1
        meeting_id: str
        meeting: dict[str, Any]
        reason: str | None
        actor: str | None
        at: datetime

        def facts(self) -> Meeting:
            return _with(self.meeting, cancelled=True)

    class MeetingRescheduled(Aggregate.Event):
        """v1: meeting_id, meeting (its facts before), starts_at (the new start), actor, at."""

        class_version = 1
        meeting_id: str
        meeting: dict[str, Any]
        starts_at: datetime
        actor: str | None
        at: datetime

        def facts(self) -> Meeting:
            return _with(self.meeting, starts_at=self.starts_at)

    class MeetingReassigned(Aggregate.Event):
        """v1: meeting_id, meeting (facts before), host_id (the new host), a decision record
        as a booking's (suggested host among the others, override, reason, candidates,
        policy, reference time, window), actor, at."""

        class_version = 1
        meeting_id: str
        meeting: dict[str, Any]
        host_id: str
        suggested_host_id: str | None
        override: bool
        reason: str
        candidates: list[dict[str, Any]]
        policy: dict[str, Any]
        reference_at: datetime
        window: dict[str, datetime] | None
        preferred_host_id: str | None
        actor: str | None
        at: datetime

        def facts(self) -> Meeting:
            return _with(
                self.meeting, host_id=self.host_id, assigned_version=self.originator_version
            )

    class MeetingMarkedNoShow(Aggregate.Event):
        """v1: meeting_id, meeting (its facts before), actor, at."""

        class_version = 1
        meeting_id: str
        meeting: dict[str, Any]
        actor: str | None
        at: datetime

        def facts(self) -> Meeting:
            return _with(self.meeting, no_show=True)

    class HostHeld(Aggregate.Event):
        """v1: hold_id, host_id, seconds, expires_at, what was asked (exclude, starts_at,
        preferred host), a decision record as an auto-assigned booking's (suggested host,
        reason, candidates, policy, reference time, window), actor, at."""

        class_version = 1
        hold_id: str
        host_id: str
        seconds: int
        expires_at: datetime
        exclude: list[str]
        starts_at: datetime | None
        suggested_host_id: str | None
        reason: str
        candidates: list[dict[str, Any]]
        policy: dict[str, Any]
        reference_at: datetime
        window: dict[str, datetime] | None
        preferred_host_id: str | None
        actor: str | None
        at: datetime

    class HoldReleased(Aggregate.Event):
        """v1: hold_id, host_id, actor, at."""

        class_version = 1
        hold_id: str
        host_id: str
        actor: str | None
        at: datetime

    class TeamAdded(Aggregate.Event):
        """v1: team_id, members (the team's members then), at."""

        class_version = 1
        team_id: str
        members: list[str]
        at: datetime

    class TeamRemoved(Aggregate.Event):
        """v1: team_id."""

        class_version = 1
        team_id: str

    class TeamMembersChanged(Aggregate.Event):
        """v1: team_id, joined and left (user ids), at."""

        class_version = 1
        team_id: str
        joined: list[str]
        left: list[str]
        at: datetime

    class Deleted(Aggregate.Event):
        """v1: no fields."""

        class_version = 1

    @event(Created)
    def __init__(
        self,
        rotation_id: str,
        name: str,
        members: list[str],
        at: datetime,
        policy: dict[str, Any] | None = None,
    ) -> None:
        self.rotation_id = rotation_id
        self.name = name
        self.deleted = False
        self.policy: dict[str, Any] = complete(policy)
        self.members: dict[str, MemberRecord] = {}
        # Why each member is here: "direct" and/or "team:<id>"; it leaves when none is left.
        self.member_sources: dict[str, list[str]] = {}
        self.teams: dict[str, list[str]] = {}
        self.next_join_seq = 0
        self.total_meetings = 0
        self.last_reset_at: datetime | None = None
        self.reset_version = 0  # the event of the last reset (meetings after it count)
        self.pruned_below = slot_of(at) - HORIZON_SLOTS
        self.holds: dict[str, Hold] = {}  # active ones only; values are never changed in place
        for user_id in members:
            self._join(user_id, at, self.version)

    def __deepcopy__(self, memo: dict[int, Any]) -> Rotation:
        """A deep copy at a fraction of `copy.deepcopy`'s generic cost.

        The repository copies a cached rotation for every command and the read model copies
        what the write side stored; the generic copy cost more than deciding a booking.
        Member records hold immutable values and tallies (lists of ints, copied here); the
        policy and stored events are never changed in place.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.members = {user_id: _copy_record(r) for user_id, r in self.members.items()}
        clone.member_sources = {k: list(v) for k, v in self.member_sources.items()}
        clone.teams = {k: list(v) for k, v in self.teams.items()}
        clone.policy = dict(self.policy)
        clone.holds = dict(self.holds)
        clone.__dict__["_pending_events"] = list(self.__dict__["_pending_events"])
        return clone

    # -- queries -------------------------------------------------------------------------

    def context(self, at: datetime, starts_at: datetime | None = None) -> Context:
        """The policy, reference time and window of a decision at `at`."""
        policy = Policy.of(self.policy)
        reference = policy.reference(at, starts_at)
        window = (
            None
            if policy.window == SINCE_RESET
            else period_slots(policy.window, reference, policy.time_zone)
        )
        return Context(policy, reference, window, at)

    def standings(
        self,
        at: datetime | None = None,
        ineligible: Mapping[str, str] | None = None,
        starts_at: datetime | None = None,
        context: Context | None = None,
    ) -> list[Standing]:
        """Each member's standing at a decision at `at` (for a meeting starting at
        `starts_at`); `ineligible` maps user ids to why they cannot host."""
        why = ineligible or {}
        ctx = context or self.context(at or self.modified_on, starts_at)
        held = self._held(ctx)
        return [
            self._standing(r, ctx, why.get(r["user_id"]), held.get(r["user_id"], 0))
            for r in self.members.values()
        ]

    def _held(self, ctx: Context) -> dict[str, int]:
        """Active holds per member at the decision: not expired at its moment, not the hold
        it books, and taken by the member's current record."""
        held: dict[str, int] = {}
        for hold in self.holds.values():
            record = self.members.get(hold["host_id"])
            if (
                record is None
                or hold["version"] < record["joined_version"]
                or hold["hold_id"] == ctx.booking_hold
                or (ctx.at is not None and hold["expires_at"] <= ctx.at)
            ):
                continue
            held[hold["host_id"]] = held.get(hold["host_id"], 0) + 1
        return held

    def active_hold(self, hold_id: str, at: datetime) -> Hold:
        """The hold, active at `at`; `unknown_hold` if the rotation has none by that id
        (never held, booked, released, or folded away after expiring), `hold_expired`."""
        hold = self.holds.get(hold_id)
        if hold is None:
            raise UnknownHold(f"no active hold {hold_id!r} in {self.rotation_id!r}")
        if hold["expires_at"] <= at:
            raise HoldExpired(f"hold {hold_id!r} expired at {hold['expires_at'].isoformat()}")
        return hold

    def _standing(
        self, record: MemberRecord, ctx: Context, why: str | None, held: int = 0
    ) -> Standing:
        policy = ctx.policy
        by_start = policy.count_by == STARTS_AT
        if ctx.window is None:
            meetings = record["meetings"] - (0 if policy.no_shows_count else record["no_shows"])
            credits = record["credits"]
        else:
            lo, hi = ctx.window
            meetings = tally.total(record["started" if by_start else "booked"], lo, hi)
            if not policy.no_shows_count:
                no_shows = record["started_ns" if by_start else "booked_ns"]
                meetings -= tally.total(no_shows, lo, hi)
            credits = tally.total(record["credited"], lo, hi)
        cap = record["cap"] if record["cap"] is not None else _cap_dict(policy)
        capped = False
        if cap is not None:
            lo, hi = ctx.period(cap["per"])
            used = tally.total(record["cap_started" if by_start else "cap_booked"], lo, hi)
            capped = used + held >= cap["meetings"]
        return Standing(
            user_id=record["user_id"],
            meetings=meetings,
            last_assigned_at=record["last_assigned_at"],
            available=record["available"],
            joined_at=record["joined_at"],
            join_seq=record["join_seq"],
            eligible=why is None,
            why=why,
            weight=record["weight"],
            priority=record["priority"],
            credits=credits,
            held=held,
            cap=cap,
            capped=capped,
        )

    def suggest(
        self,
        at: datetime | None = None,
        exclude: list[str] | tuple[str, ...] = (),
        ineligible: Mapping[str, str] | None = None,
        starts_at: datetime | None = None,
        preferred_host_id: str | None = None,
        booking_hold: str | None = None,
    ) -> Suggestion:
        """The rule's choice at `at` (by default the time of the rotation's last event);
        `booking_hold`: the hold a booking ends, which does not count in its decision."""
        context = replace(
            self.context(at or self.modified_on, starts_at), booking_hold=booking_hold
        )
        return rank(self.standings(None, ineligible, context=context), exclude, preferred_host_id)

    @property
    def levels_joins(self) -> bool:
        """Whether joins are levelled (then who else can host matters to a join)."""
        return Policy.of(self.policy).on_join == LEVEL

    def sources_of(self, user_id: str) -> list[str]:
        return list(self.member_sources.get(user_id, [DIRECT]))

    # -- commands ------------------------------------------------------------------------

    def rename(self, name: str) -> None:
        self.require_live()
        self._renamed(name=name)

    def set_policy(self, policy: dict[str, Any], at: datetime) -> None:
        """Replace the policy whole; counting fields apply from now as if always in force."""
        self.require_live()
        self._policy_set(policy=complete(policy), at=at)

    def add_member(
        self,
        user_id: str,
        at: datetime,
        ineligible: str | None = None,
        options: Mapping[str, Any] | None = None,
        others_ineligible: Mapping[str, str] | None = None,
    ) -> None:
        """Add a member; `ineligible` is why the directory says they cannot host, if so;
        `others_ineligible` who of the others cannot (levelling compares with the rest)."""
        self.require_live()
        if user_id in self.members:
            raise AlreadyMember(f"{user_id!r} is already a member of {self.rotation_id!r}")
        if ineligible is not None:
            raise IneligibleMember(f"{user_id!r} cannot be a member: {ineligible}")
        before = self.standings(at, others_ineligible)
        self._member_added(user_id=user_id, at=at, options=dict(options or {}))
        self._level_joiners([user_id], before, at)

    def set_member_options(self, user_id: str, options: Mapping[str, Any]) -> None:
        self._require_member(user_id)
        self._member_options_set(user_id=user_id, options=dict(options))

    def credit_member(
        self, user_id: str, meetings: int, reason: str, actor: str | None, at: datetime
    ) -> None:
        self._require_member(user_id)
        self._member_credited(
            user_id=user_id, meetings=meetings, reason=reason, kind=MANUAL, actor=actor, at=at
        )

    def add_team(
        self,
        team_id: str,
        members: list[str],
        at: datetime,
        ineligible: Mapping[str, str] | None = None,
    ) -> None:
        """The team's members join with it (as any join); they leave with it."""
        self.require_live()
        if team_id in self.teams:
            raise AlreadyMember(f"team {team_id!r} is already in {self.rotation_id!r}")
        before = self.standings(at, ineligible)
        first = self.next_join_seq
        self._team_added(team_id=team_id, members=list(dict.fromkeys(members)), at=at)
        self._level_joiners(self._joined_since(first), before, at)

    def remove_team(self, team_id: str) -> None:
        self.require_live()
        if team_id not in self.teams:
            raise UnknownMember(f"team {team_id!r} is not in {self.rotation_id!r}")
        self._team_removed(team_id=team_id)

    def team_changed(
        self,
        team_id: str,
        members: list[str],
        at: datetime,
        ineligible: Mapping[str, str] | None = None,
    ) -> bool:
        """Follow a team's new member list; returns whether anything changed here."""
        if self.deleted or team_id not in self.teams:
            return False
        before_members = self.teams[team_id]
        joined = [u for u in dict.fromkeys(members) if u not in before_members]
        left = [u for u in before_members if u not in members]
        if not joined and not left:
            return False
        before = self.standings(at, ineligible)
        first = self.next_join_seq
        self._team_members_changed(team_id=team_id, joined=joined, left=left, at=at)
        self._level_joiners(self._joined_since(first), before, at)
        return True

    def remove_member(self, user_id: str) -> None:
        self._require_member(user_id)
        self._member_removed(user_id=user_id)

    def toggle_availability(
        self,
        user_id: str,
        available: bool,
        at: datetime | None = None,
        ineligible: Mapping[str, str] | None = None,
    ) -> None:
        """Turn a member on or off; with `on_return: level` a return is levelled."""
        self._require_member(user_id)
        returning = available and not self.members[user_id]["available"]
        self._availability_toggled(user_id=user_id, available=available)
        if returning and at is not None and Policy.of(self.policy).on_return == LEVEL:
            standings = {s.user_id: s for s in self.standings(at, ineligible)}
            member = standings.pop(user_id)
            self._give_level_credit(member, list(standings.values()), LEVEL_RETURN, at)

    def book_meeting(
        self,
        meeting_id: str,
        host_id: str | None,
        record: dict[str, str],
        starts_at: datetime | None,
        at: datetime,
        ineligible: Mapping[str, str] | None = None,
        preferred_host_id: str | None = None,
        hold_id: str | None = None,
    ) -> str:
        """Book a meeting; without a host the current suggestion hosts. Returns the host.

        An explicit host may be unavailable or capped (an override) but never ineligible.
        With a hold: its member hosts (reason `held`, not an override), or, named, another
        (an override); either way the hold ends.
        """
        self.require_live()
        held_host = self.active_hold(hold_id, at)["host_id"] if hold_id is not None else None
        host_id, suggestion, context = self._decide(
            host_id or held_host, at, starts_at, ineligible, (), preferred_host_id, hold_id
        )
        if held_host is not None:
            is_override = host_id != held_host
            reason = OVERRIDE if is_override else HELD
        else:
            is_override = host_id != suggestion.host_id
            reason = OVERRIDE if is_override else suggestion.reason
        self._meeting_booked(
            meeting_id=meeting_id,
            host_id=host_id,
            override=is_override,
            reason=reason,
            record=dict(record),
            starts_at=starts_at,
            at=at,
            hold_id=hold_id,
            **_decision_fields(suggestion, context, preferred_host_id),
        )
        return host_id

    def hold_host(
        self,
        hold_id: str,
        seconds: int,
        at: datetime,
        exclude: list[str] | tuple[str, ...] = (),
        starts_at: datetime | None = None,
        ineligible: Mapping[str, str] | None = None,
        preferred_host_id: str | None = None,
        actor: str | None = None,
    ) -> str:
        """Decide as an auto-assigned booking would, and hold that member for `seconds`."""
        self.require_live()
        host_id, suggestion, context = self._decide(
            None, at, starts_at, ineligible, tuple(exclude), preferred_host_id
        )
        self._host_held(
            hold_id=hold_id,
            host_id=host_id,
            seconds=seconds,
            expires_at=at + timedelta(seconds=seconds),
            exclude=list(exclude),
            starts_at=starts_at,
            reason=suggestion.reason,
            actor=actor,
            at=at,
            **_decision_fields(suggestion, context, preferred_host_id),
        )
        return host_id

    def release_hold(self, hold_id: str, actor: str | None, at: datetime) -> str:
        """End an active hold; returns its member."""
        self.require_live()
        hold = self.active_hold(hold_id, at)
        self._hold_released(hold_id=hold_id, host_id=hold["host_id"], actor=actor, at=at)
        return hold["host_id"]

    def cancel_meeting(
        self, meeting: Meeting, reason: str | None, actor: str | None, at: datetime
    ) -> None:
        self._require_open(meeting)
        self._meeting_cancelled(
            meeting_id=meeting["meeting_id"],
            meeting=dict(meeting),
            reason=reason,
            actor=actor,
            at=at,
        )

    def reschedule_meeting(
        self, meeting: Meeting, starts_at: datetime, actor: str | None, at: datetime
    ) -> None:
        self._require_open(meeting)
        self._meeting_rescheduled(
            meeting_id=meeting["meeting_id"],
            meeting=dict(meeting),
            starts_at=starts_at,
            actor=actor,
            at=at,
        )

    def reassign_meeting(
        self,
        meeting: Meeting,
        host_id: str | None,
        actor: str | None,
        at: datetime,
        ineligible: Mapping[str, str] | None = None,
    ) -> str:
        """Move a meeting to `host_id`, or to the current suggestion among the others."""
        self._require_open(meeting)
        current = meeting["host_id"]
        host_id, suggestion, context = self._decide(
            host_id, at, meeting["starts_at"], ineligible, (current,), None
        )
        is_override = host_id != suggestion.host_id
        self._meeting_reassigned(
            meeting_id=meeting["meeting_id"],
            meeting=dict(meeting),
            host_id=host_id,
            override=is_override,
            reason=OVERRIDE if is_override else suggestion.reason,
            actor=actor,
            at=at,
            **_decision_fields(suggestion, context, None),
        )
        return host_id

    def mark_no_show(self, meeting: Meeting, actor: str | None, at: datetime) -> bool:
        """Mark a meeting a no-show; returns False (and records nothing) if it was already."""
        self._require_open(meeting)
        if meeting["no_show"]:
            return False
        self._meeting_marked_no_show(
            meeting_id=meeting["meeting_id"], meeting=dict(meeting), actor=actor, at=at
        )
        return True

    def delete(self) -> None:
        self.require_live()
        self._deleted()

    # -- events --------------------------------------------------------------------------

    @event(Renamed)
    def _renamed(self, name: str) -> None:
        self.name = name

    @event(PolicySet)
    def _policy_set(self, policy: dict[str, Any], at: datetime) -> None:
        self.policy = policy

    @event(MemberAdded)
    def _member_added(self, user_id: str, at: datetime, options: dict[str, Any]) -> None:
        self._join(user_id, at, self.version + 1, DIRECT, options)

    @event(MemberOptionsSet)
    def _member_options_set(self, user_id: str, options: dict[str, Any]) -> None:
        record = self.members[user_id]
        if "weight" in options:
            record["weight"] = options["weight"] or DEFAULT_WEIGHT
        if "priority" in options:
            priority = options["priority"]
            record["priority"] = DEFAULT_PRIORITY if priority is None else priority
        if "cap" in options:
            record["cap"] = options["cap"]

    @event(MemberCredited)
    def _member_credited(
        self, user_id: str, meetings: int, reason: str, kind: str, actor: str | None, at: datetime
    ) -> None:
        record = self.members[user_id]
        record["credits"] += meetings
        record["credited"] = tally.add(record["credited"], slot_of(at), meetings)
        self._advance(at)

    @event(MemberRemoved)
    def _member_removed(self, user_id: str) -> None:
        del self.members[user_id]
        self.member_sources.pop(user_id, None)

    @event(TeamAdded)
    def _team_added(self, team_id: str, members: list[str], at: datetime) -> None:
        self.teams[team_id] = list(members)
        for user_id in members:
            self._add_source(user_id, team_source(team_id), at)

    @event(TeamRemoved)
    def _team_removed(self, team_id: str) -> None:
        for user_id in self.teams.pop(team_id):
            self._drop_source(user_id, team_source(team_id))

    @event(TeamMembersChanged)
    def _team_members_changed(
        self, team_id: str, joined: list[str], left: list[str], at: datetime
    ) -> None:
        members = self.teams[team_id]
        for user_id in joined:
            members.append(user_id)
            self._add_source(user_id, team_source(team_id), at)
        for user_id in left:
            members.remove(user_id)
            self._drop_source(user_id, team_source(team_id))

    @event(AvailabilityToggled)
    def _availability_toggled(self, user_id: str, available: bool) -> None:
        self.members[user_id]["available"] = available

    @event(MeetingBooked)
    def _meeting_booked(
        self,
        meeting_id: str,
        host_id: str,
        suggested_host_id: str | None,
        override: bool,
        reason: str,
        candidates: list[dict[str, Any]],
        record: dict[str, str],
        starts_at: datetime | None,
        at: datetime,
        policy: dict[str, Any],
        reference_at: datetime,
        window: dict[str, datetime] | None,
        preferred_host_id: str | None,
        hold_id: str | None = None,
    ) -> None:
        version = self.version + 1
        if hold_id is not None:
            self.holds.pop(hold_id, None)
        self._expire_holds(at)
        member = self.members[host_id]
        member["last_assigned_at"] = at
        self._count(
            Meeting(
                meeting_id=meeting_id,
                host_id=host_id,
                record=record,
                booked_at=at,
                booked_version=version,
                assigned_version=version,
                starts_at=starts_at,
                no_show=False,
                cancelled=False,
            ),
            +1,
        )
        self.total_meetings += 1
        self._advance(at)

    @event(MeetingCancelled)
    def _meeting_cancelled(
        self,
        meeting_id: str,
        meeting: dict[str, Any],
        reason: str | None,
        actor: str | None,
        at: datetime,
    ) -> None:
        self._count(meeting, -1)

    @event(MeetingRescheduled)
    def _meeting_rescheduled(
        self,
        meeting_id: str,
        meeting: dict[str, Any],
        starts_at: datetime,
        actor: str | None,
        at: datetime,
    ) -> None:
        self._count(meeting, -1)
        self._count(_with(meeting, starts_at=starts_at), +1)

    @event(MeetingReassigned)
    def _meeting_reassigned(
        self,
        meeting_id: str,
        meeting: dict[str, Any],
        host_id: str,
        suggested_host_id: str | None,
        override: bool,
        reason: str,
        candidates: list[dict[str, Any]],
        policy: dict[str, Any],
        reference_at: datetime,
        window: dict[str, datetime] | None,
        preferred_host_id: str | None,
        actor: str | None,
        at: datetime,
    ) -> None:
        self._count(meeting, -1)
        self._count(_with(meeting, host_id=host_id, assigned_version=self.version + 1), +1)
        self.members[host_id]["last_assigned_at"] = at
        self._advance(at)

    @event(MeetingMarkedNoShow)
    def _meeting_marked_no_show(
        self, meeting_id: str, meeting: dict[str, Any], actor: str | None, at: datetime
    ) -> None:
        self._count_no_show(meeting)

    @event(HostHeld)
    def _host_held(
        self,
        hold_id: str,
        host_id: str,
        seconds: int,
        expires_at: datetime,
        exclude: list[str],
        starts_at: datetime | None,
        suggested_host_id: str | None,
        reason: str,
        candidates: list[dict[str, Any]],
        policy: dict[str, Any],
        reference_at: datetime,
        window: dict[str, datetime] | None,
        preferred_host_id: str | None,
        actor: str | None,
        at: datetime,
    ) -> None:
        self._expire_holds(at)
        self.holds = {
            **self.holds,
            hold_id: Hold(
                hold_id=hold_id, host_id=host_id, expires_at=expires_at, version=self.version + 1
            ),
        }

    @event(HoldReleased)
    def _hold_released(self, hold_id: str, host_id: str, actor: str | None, at: datetime) -> None:
        self.holds = {k: v for k, v in self.holds.items() if k != hold_id}
        self._expire_holds(at)

    def _expire_holds(self, at: datetime) -> None:
        """Forget holds expired by `at` (an event's time): state stays as small as the holds
        active at once. Decisions ignore expired holds before then (`_held`)."""
        if any(h["expires_at"] <= at for h in self.holds.values()):
            self.holds = {k: h for k, h in self.holds.items() if h["expires_at"] > at}

    @event(Deleted)
    def _deleted(self) -> None:
        self.deleted = True

    # -- helpers -------------------------------------------------------------------------

    def _decide(
        self,
        host_id: str | None,
        at: datetime,
        starts_at: datetime | None,
        ineligible: Mapping[str, str] | None,
        exclude: tuple[str, ...],
        preferred_host_id: str | None,
        booking_hold: str | None = None,
    ) -> tuple[str, Suggestion, Context]:
        """Who hosts: the one named (checked), or the rule's choice."""
        context = replace(self.context(at, starts_at), booking_hold=booking_hold)
        standings = self.standings(at, ineligible, starts_at, context)
        suggestion = rank(standings, exclude, preferred_host_id)
        if host_id is None:
            if suggestion.host_id is None:
                raise NoAvailableMember(f"no available member in {self.rotation_id!r}")
            return suggestion.host_id, suggestion, context
        if host_id not in self.members:
            raise UnknownMember(f"{host_id!r} is not a member of {self.rotation_id!r}")
        if ineligible and host_id in ineligible:
            raise IneligibleMember(f"{host_id!r} cannot host meetings: {ineligible[host_id]}")
        return host_id, suggestion, context

    def _count(self, meeting: Mapping[str, Any], sign: int) -> None:
        """Count a meeting for its host (+1), or take it back (-1), where it counts: since
        the last reset if it was booked after it, and under caps; nothing if the host's
        record is newer than the assignment (it left and came back since)."""
        member = self.members.get(meeting["host_id"])
        if member is None or meeting["assigned_version"] < member["joined_version"]:
            return
        if meeting["cancelled"]:
            return
        booked = slot_of(meeting["booked_at"])
        started = slot_of(meeting["starts_at"] or meeting["booked_at"])
        since_reset = meeting["booked_version"] > self.reset_version
        change = _put if sign > 0 else _take
        if since_reset:
            member["meetings"] += sign
            change(member, "booked", booked)
            change(member, "started", started)
            if meeting["no_show"]:
                member["no_shows"] += sign
                change(member, "booked_ns", booked)
                change(member, "started_ns", started)
        change(member, "cap_booked", booked)
        change(member, "cap_started", started)

    def _count_no_show(self, meeting: Mapping[str, Any]) -> None:
        member = self.members.get(meeting["host_id"])
        if member is None or meeting["assigned_version"] < member["joined_version"]:
            return
        if meeting["booked_version"] > self.reset_version:
            member["no_shows"] += 1
            _put(member, "booked_ns", slot_of(meeting["booked_at"]))
            _put(member, "started_ns", slot_of(meeting["starts_at"] or meeting["booked_at"]))

    def _advance(self, at: datetime) -> None:
        """Fold away what lies past the horizon, at most once a day of event time."""
        horizon = slot_of(at) - HORIZON_SLOTS
        if horizon < self.pruned_below + SLOTS_PER_DAY:
            return
        for record in self.members.values():
            for name in TALLIES:
                record[name] = tally.prune(record[name], horizon)  # type: ignore[literal-required]
        self.pruned_below = horizon

    def _level_joiners(self, joiners: list[str], before: list[Standing], at: datetime) -> None:
        """With `on_join: level`, each newcomer is levelled against those there before."""
        if not joiners or Policy.of(self.policy).on_join != LEVEL:
            return
        now = {s.user_id: s for s in self.standings(at)}
        for user_id in joiners:
            self._give_level_credit(now[user_id], before, LEVEL_JOIN, at)

    def _give_level_credit(
        self, member: Standing, others: list[Standing], kind: str, at: datetime
    ) -> None:
        credit = level_credit(member, others)
        if credit > 0:
            reason = "levelled on join" if kind == LEVEL_JOIN else "levelled on return"
            self._member_credited(
                user_id=member.user_id, meetings=credit, reason=reason, kind=kind, actor=None, at=at
            )

    def _joined_since(self, first_join_seq: int) -> list[str]:
        return [m for m, r in self.members.items() if r["join_seq"] >= first_join_seq]

    def _add_source(self, user_id: str, source: str, at: datetime) -> None:
        if user_id not in self.members:
            self._join(user_id, at, self.version + 1, source)
        elif source not in self.sources_of(user_id):
            self.member_sources[user_id] = [*self.sources_of(user_id), source]

    def _drop_source(self, user_id: str, source: str) -> None:
        """A member stays while anything (a direct add, another team) still holds it."""
        if user_id not in self.members:
            return
        remaining = [s for s in self.sources_of(user_id) if s != source]
        if remaining:
            self.member_sources[user_id] = remaining
        else:
            del self.members[user_id]
            self.member_sources.pop(user_id, None)

    def _join(
        self,
        user_id: str,
        at: datetime,
        version: int,
        source: str = DIRECT,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """A join with `on_join: reset` (the default) resets every member's count."""
        if Policy.of(self.policy).on_join == RESET:
            for record in self.members.values():
                _reset(record)
            self.last_reset_at = at
            self.reset_version = version
        self.members[user_id] = new_member(user_id, at, self.next_join_seq, version, options or {})
        self.member_sources[user_id] = [source]
        self.next_join_seq += 1

    def require_live(self) -> None:
        """Commands on a deleted rotation are refused first, whatever else is wrong."""
        if self.deleted:
            raise RotationDeleted(f"rotation {self.rotation_id!r} was deleted")

    def _require_member(self, user_id: str) -> None:
        self.require_live()
        if user_id not in self.members:
            raise UnknownMember(f"{user_id!r} is not a member of {self.rotation_id!r}")

    def _require_open(self, meeting: Meeting) -> None:
        self.require_live()
        if meeting["cancelled"]:
            raise MeetingCancelled(f"meeting {meeting['meeting_id']!r} was cancelled")


def _with(facts: Mapping[str, Any], **changes: Any) -> Meeting:
    """A meeting's facts with some changed (what a lifecycle event leaves)."""
    return cast(Meeting, {**facts, **changes})


def _put(record: MemberRecord, name: str, slot: int) -> None:
    record[name] = tally.add(record[name], slot, 1)  # type: ignore[literal-required]


def _take(record: MemberRecord, name: str, slot: int) -> None:
    record[name] = tally.take(record[name], slot)  # type: ignore[literal-required]


def _cap_dict(policy: Policy) -> dict[str, Any] | None:
    return None if policy.cap is None else policy.cap.as_dict()


def _reset(record: MemberRecord) -> None:
    """What counts since the last reset goes back to zero; caps keep counting."""
    record["meetings"] = record["no_shows"] = record["credits"] = 0
    for name in SINCE_RESET_TALLIES:
        record[name] = tally.EMPTY  # type: ignore[literal-required]


def _copy_record(record: MemberRecord) -> MemberRecord:
    """Tallies are immutable (`events.tally`): the copy shares them."""
    return record.copy()
