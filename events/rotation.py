"""The Rotation aggregate: members, availability and bookings of one meeting rotation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, TypedDict
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from events.errors import (
    AlreadyMember,
    IneligibleMember,
    NoAvailableMember,
    RotationDeleted,
    UnknownMember,
)
from events.ranking import Standing, Suggestion, rank

ROTATION_NAMESPACE = uuid5(NAMESPACE_URL, "meeting-rotations/rotation")
RECORD_TYPES = ("contact", "company", "deal", "ticket")
OVERRIDE = "override"
DIRECT = "direct"
# Reason of a booking stored before decision records existed (MeetingBooked v1).
NOT_RECORDED = "not_recorded"


class MemberRecord(TypedDict):
    """One member's state; a plain dict so snapshots serialise without custom codecs."""

    user_id: str
    meetings: int
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    join_seq: int


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
    }


def team_source(team_id: str) -> str:
    return f"team:{team_id}"


class Rotation(Aggregate):
    """A meeting rotation: decides bookings on its own state, never on a lagging read model."""

    @staticmethod
    def create_id(rotation_id: str, **_: Any) -> UUID:
        return rotation_uuid(rotation_id)

    # -- event schemas -------------------------------------------------------------------
    # Every event states its schema version (eventsourcing stores `class_version` when it
    # is above 1 and calls `upcast_vN_vN+1` on older stored state before reconstructing).
    # Changing an event's fields means: bump its class_version and add the upcast.

    class Created(Aggregate.Created):
        """v1: rotation_id, name, members, at."""

        class_version = 1
        rotation_id: str
        name: str
        members: list[str]
        at: datetime

    class Renamed(Aggregate.Event):
        """v1: name."""

        class_version = 1
        name: str

    class MemberAdded(Aggregate.Event):
        """v1: user_id, at."""

        class_version = 1
        user_id: str
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
        """v3: each candidate says whether it was eligible, and why not (the directory).

        v2 added the decision record (suggested host, override, reason, candidates). v1 held
        the booking only: meeting_id and host_id, and possibly record, starts_at and at.
        Events stored by this code before versioning carry no class_version, so they read
        as v1 too; the upcasts only fill in what is missing.
        """

        class_version = 3
        meeting_id: str
        host_id: str
        suggested_host_id: str | None
        override: bool
        reason: str
        candidates: list[dict[str, Any]]
        record: dict[str, str]
        starts_at: datetime | None
        at: datetime

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
    def __init__(self, rotation_id: str, name: str, members: list[str], at: datetime) -> None:
        self.rotation_id = rotation_id
        self.name = name
        self.deleted = False
        self.members: dict[str, MemberRecord] = {}
        # Why each member is here: "direct" and/or "team:<id>"; it leaves when none is left.
        self.member_sources: dict[str, list[str]] = {}
        self.teams: dict[str, list[str]] = {}
        self.next_join_seq = 0
        self.total_meetings = 0
        self.last_reset_at: datetime | None = at if members else None
        for user_id in members:
            self._join(user_id, at)

    def __deepcopy__(self, memo: dict[int, Any]) -> Rotation:
        """A deep copy at a fraction of `copy.deepcopy`'s generic cost.

        The repository copies a cached rotation for every command and the read model copies
        what the write side stored; the generic copy cost more than deciding a booking.
        Member records hold immutable values only, and stored events are immutable.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.members = {user_id: record.copy() for user_id, record in self.members.items()}
        clone.member_sources = {k: list(v) for k, v in self.member_sources.items()}
        clone.teams = {k: list(v) for k, v in self.teams.items()}
        clone.__dict__["_pending_events"] = list(self.__dict__["_pending_events"])
        return clone

    # -- queries -------------------------------------------------------------------------

    def standings(self, ineligible: Mapping[str, str] | None = None) -> list[Standing]:
        """Each member's standing; `ineligible` maps user ids to why they cannot host."""
        why = ineligible or {}
        return [
            Standing(
                **record, eligible=record["user_id"] not in why, why=why.get(record["user_id"])
            )
            for record in self.members.values()
        ]

    def suggest(
        self,
        exclude: list[str] | tuple[str, ...] = (),
        ineligible: Mapping[str, str] | None = None,
    ) -> Suggestion:
        return rank(self.standings(ineligible), exclude)

    def sources_of(self, user_id: str) -> list[str]:
        return list(self.member_sources.get(user_id, [DIRECT]))

    # -- commands ------------------------------------------------------------------------

    def rename(self, name: str) -> None:
        self._require_live()
        self._renamed(name=name)

    def add_member(self, user_id: str, at: datetime, ineligible: str | None = None) -> None:
        """Add a member; `ineligible` is why the directory says they cannot host, if so."""
        self._require_live()
        if user_id in self.members:
            raise AlreadyMember(f"{user_id!r} is already a member of {self.rotation_id!r}")
        if ineligible is not None:
            raise IneligibleMember(f"{user_id!r} cannot be a member: {ineligible}")
        self._member_added(user_id=user_id, at=at)

    def add_team(self, team_id: str, members: list[str], at: datetime) -> None:
        """The team's members join with it (a reset, as any join); they leave with it."""
        self._require_live()
        if team_id in self.teams:
            raise AlreadyMember(f"team {team_id!r} is already in {self.rotation_id!r}")
        self._team_added(team_id=team_id, members=list(dict.fromkeys(members)), at=at)

    def remove_team(self, team_id: str) -> None:
        self._require_live()
        if team_id not in self.teams:
            raise UnknownMember(f"team {team_id!r} is not in {self.rotation_id!r}")
        self._team_removed(team_id=team_id)

    def team_changed(self, team_id: str, members: list[str], at: datetime) -> bool:
        """Follow a team's new member list; returns whether anything changed here."""
        if self.deleted or team_id not in self.teams:
            return False
        before = self.teams[team_id]
        joined = [u for u in dict.fromkeys(members) if u not in before]
        left = [u for u in before if u not in members]
        if not joined and not left:
            return False
        self._team_members_changed(team_id=team_id, joined=joined, left=left, at=at)
        return True

    def remove_member(self, user_id: str) -> None:
        self._require_member(user_id)
        self._member_removed(user_id=user_id)

    def toggle_availability(self, user_id: str, available: bool) -> None:
        self._require_member(user_id)
        self._availability_toggled(user_id=user_id, available=available)

    def book_meeting(
        self,
        meeting_id: str,
        host_id: str | None,
        record: dict[str, str],
        starts_at: datetime | None,
        at: datetime,
        ineligible: Mapping[str, str] | None = None,
    ) -> str:
        """Book a meeting; without a host the current suggestion hosts. Returns the host.

        An explicit host may be unavailable (an override) but never ineligible.
        """
        self._require_live()
        suggestion = self.suggest(ineligible=ineligible)
        if host_id is None:
            if suggestion.host_id is None:
                raise NoAvailableMember(f"no available member in {self.rotation_id!r}")
            host_id = suggestion.host_id
        elif host_id not in self.members:
            raise UnknownMember(f"{host_id!r} is not a member of {self.rotation_id!r}")
        elif ineligible and host_id in ineligible:
            raise IneligibleMember(f"{host_id!r} cannot host meetings: {ineligible[host_id]}")
        is_override = host_id != suggestion.host_id
        self._meeting_booked(
            meeting_id=meeting_id,
            host_id=host_id,
            suggested_host_id=suggestion.host_id,
            override=is_override,
            reason=OVERRIDE if is_override else suggestion.reason,
            candidates=[standing_to_dict(s) for s in suggestion.candidates],
            record=dict(record),
            starts_at=starts_at,
            at=at,
        )
        return host_id

    def delete(self) -> None:
        self._require_live()
        self._deleted()

    # -- events --------------------------------------------------------------------------

    @event(Renamed)
    def _renamed(self, name: str) -> None:
        self.name = name

    @event(MemberAdded)
    def _member_added(self, user_id: str, at: datetime) -> None:
        self._join(user_id, at)

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
    ) -> None:
        member = self.members[host_id]
        member["meetings"] += 1
        member["last_assigned_at"] = at
        self.total_meetings += 1

    @event(Deleted)
    def _deleted(self) -> None:
        self.deleted = True

    # -- helpers -------------------------------------------------------------------------

    def _add_source(self, user_id: str, source: str, at: datetime) -> None:
        if user_id not in self.members:
            self._join(user_id, at, source)
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

    def _join(self, user_id: str, at: datetime, source: str = DIRECT) -> None:
        """A join resets every member's count so distribution is even from now on."""
        if self.total_meetings:  # before the first booking every count is 0 already
            for record in self.members.values():
                record["meetings"] = 0
        self.members[user_id] = MemberRecord(
            user_id=user_id,
            meetings=0,
            last_assigned_at=None,
            available=True,
            joined_at=at,
            join_seq=self.next_join_seq,
        )
        self.member_sources[user_id] = [source]
        self.next_join_seq += 1
        self.last_reset_at = at

    def _require_live(self) -> None:
        if self.deleted:
            raise RotationDeleted(f"rotation {self.rotation_id!r} was deleted")

    def _require_member(self, user_id: str) -> None:
        self._require_live()
        if user_id not in self.members:
            raise UnknownMember(f"{user_id!r} is not a member of {self.rotation_id!r}")
