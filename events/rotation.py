"""The Rotation aggregate: members, availability and bookings of one meeting rotation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from events.errors import (
    AlreadyMember,
    NoAvailableMember,
    RotationDeleted,
    UnknownMember,
)
from events.ranking import Standing, Suggestion, rank

ROTATION_NAMESPACE = uuid5(NAMESPACE_URL, "meeting-rotations/rotation")
RECORD_TYPES = ("contact", "company", "deal", "ticket")
OVERRIDE = "override"


class MemberRecord(TypedDict):
    """One member's state; a plain dict so snapshots serialise without custom codecs."""

    user_id: str
    meetings: int
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    join_seq: int


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
    }


class Rotation(Aggregate):
    """A meeting rotation: decides bookings on its own state, never on a lagging read model."""

    @staticmethod
    def create_id(rotation_id: str, **_: Any) -> UUID:
        return rotation_uuid(rotation_id)

    @event("Created")
    def __init__(self, rotation_id: str, name: str, members: list[str], at: datetime) -> None:
        self.rotation_id = rotation_id
        self.name = name
        self.deleted = False
        self.members: dict[str, MemberRecord] = {}
        self.next_join_seq = 0
        self.total_meetings = 0
        self.last_reset_at: datetime | None = at if members else None
        for user_id in members:
            self._join(user_id, at)

    # -- queries -------------------------------------------------------------------------

    def standings(self) -> list[Standing]:
        return [Standing(**record) for record in self.members.values()]

    def suggest(self, exclude: list[str] | tuple[str, ...] = ()) -> Suggestion:
        return rank(self.standings(), exclude)

    # -- commands ------------------------------------------------------------------------

    def rename(self, name: str) -> None:
        self._require_live()
        self._renamed(name=name)

    def add_member(self, user_id: str, at: datetime) -> None:
        self._require_live()
        if user_id in self.members:
            raise AlreadyMember(f"{user_id!r} is already a member of {self.rotation_id!r}")
        self._member_added(user_id=user_id, at=at)

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
    ) -> str:
        """Book a meeting; without a host the current suggestion hosts. Returns the host."""
        self._require_live()
        suggestion = self.suggest()
        if host_id is None:
            if suggestion.host_id is None:
                raise NoAvailableMember(f"no available member in {self.rotation_id!r}")
            host_id = suggestion.host_id
        elif host_id not in self.members:
            raise UnknownMember(f"{host_id!r} is not a member of {self.rotation_id!r}")
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

    @event("Renamed")
    def _renamed(self, name: str) -> None:
        self.name = name

    @event("MemberAdded")
    def _member_added(self, user_id: str, at: datetime) -> None:
        self._join(user_id, at)

    @event("MemberRemoved")
    def _member_removed(self, user_id: str) -> None:
        del self.members[user_id]

    @event("AvailabilityToggled")
    def _availability_toggled(self, user_id: str, available: bool) -> None:
        self.members[user_id]["available"] = available

    @event("MeetingBooked")
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

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True

    # -- helpers -------------------------------------------------------------------------

    def _join(self, user_id: str, at: datetime) -> None:
        """A join resets every member's count so distribution is even from now on."""
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
        self.next_join_seq += 1
        self.last_reset_at = at

    def _require_live(self) -> None:
        if self.deleted:
            raise RotationDeleted(f"rotation {self.rotation_id!r} was deleted")

    def _require_member(self, user_id: str) -> None:
        self._require_live()
        if user_id not in self.members:
            raise UnknownMember(f"{user_id!r} is not a member of {self.rotation_id!r}")
