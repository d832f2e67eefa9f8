"""The unit of work: what one transaction saves, and each command's changes kept apart.

A fetched batch of commands is stored in one transaction. Each command works in a scope of
its own on copies of the aggregates it touches; only an accepted command's copies (and its
meeting claims) replace what the unit of work holds. A rejected command leaves nothing
behind: not the rotation it was creating, not a team link, not a claim. Its receipt (the
reply a repeated command id gets) is the only thing of it that is stored.

A meeting's facts are those of its latest event (`meeting_event`): one this batch created
and has not saved yet, else the store's, found by the ledger's meeting index. A command that
adds an event about a meeting marks it (`mark_meeting`), so the index moves on with the save
and a later command of the batch sees that pending event.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from events.directory import (
    DirectoryUser,
    Team,
    TeamLinks,
    team_links_uuid,
    team_uuid,
    user_uuid,
)
from events.errors import DuplicateMeeting, RotationExists, UnknownRotation
from events.rotation import Rotation, rotation_uuid
from service.ledger import Claim, MeetingMark, Receipt

A = TypeVar("A", bound=Aggregate)


class WriteStore(Protocol):
    """What deciding a command reads from the store."""

    @property
    def directory_required(self) -> bool: ...

    def load(self, key: UUID) -> Aggregate | None:
        """A private copy of the stored aggregate, or None (a cached copy may be stale:
        then its save conflicts and the command is decided again on fresh state)."""
        ...

    def exists(self, key: UUID) -> bool: ...

    def find_user(self, user_id: str) -> DirectoryUser | None: ...

    def find_team(self, team_id: str) -> Team | None: ...

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool: ...

    def find_meeting_event(self, rotation_id: str, meeting_id: str) -> Rotation.Event | None:
        """The meeting's latest stored event (by the ledger's index), or None: never booked."""
        ...

    def ineligible_users(self, user_ids: list[str]) -> dict[str, str]: ...


class RetryAlone(Exception):
    """The batch's optimistic path cannot decide this (a repeated id): handle one by one."""


@dataclass
class UnitOfWork:
    """Aggregates, claims, meeting marks and receipts that one transaction will save."""

    store: WriteStore
    # Whether duplicates are looked up in the store (one by one) or left to the save's
    # unique keys (a batch: a duplicate fails the transaction, then each runs alone).
    check_store: bool
    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    claims: dict[tuple[str, str], Claim] = field(default_factory=dict)
    marks: dict[tuple[str, str], MeetingMark] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)
    command_ids: set[str] = field(default_factory=set)

    def begin(self, command_id: str, now: datetime) -> CommandScope:
        if command_id in self.command_ids:
            raise RetryAlone(command_id)
        self.command_ids.add(command_id)
        return CommandScope(self, now)

    def keep(self, scope: CommandScope) -> None:
        """An accepted command's changes become part of the transaction. What it only read
        is not: saving an unchanged copy would put it back into the cache as current."""
        self.aggregates.update(
            (key, aggregate) for key, aggregate in scope.touched.items() if aggregate.pending_events
        )
        self.claims.update(scope.claims)
        self.marks.update(scope.marks)


class CommandScope:
    """One command's reads and changes, on copies, until the command is accepted."""

    def __init__(self, work: UnitOfWork, now: datetime) -> None:
        self.work = work
        self.store = work.store
        self.now = now
        self.touched: dict[UUID, Aggregate] = {}
        self.claims: dict[tuple[str, str], Claim] = {}
        self.marks: dict[tuple[str, str], MeetingMark] = {}
        self.subject: Rotation | None = None  # the rotation the reply describes
        self.events_before = 0

    def _get(self, key: UUID) -> Aggregate | None:
        if key in self.touched:
            return self.touched[key]
        held = self.work.aggregates.get(key)
        found = copy.deepcopy(held) if held is not None else self.store.load(key)
        if found is not None:
            self.touched[key] = found
        return found

    def rotation(self, rotation_id: str) -> Rotation:
        """The rotation this command acts on."""
        found = self._get(rotation_uuid(rotation_id))
        if not isinstance(found, Rotation):
            raise UnknownRotation(f"no rotation {rotation_id!r}")
        if self.subject is None:
            self.subject, self.events_before = found, len(found.pending_events)
        return found

    def require_no_rotation(self, rotation_id: str) -> None:
        key = rotation_uuid(rotation_id)
        exists = key in self.work.aggregates or (self.work.check_store and self.store.exists(key))
        if exists:
            raise RotationExists(f"rotation {rotation_id!r} exists")

    def create_rotation(
        self, rotation_id: str, name: str, members: list[str], policy: dict[str, Any] | None
    ) -> Rotation:
        key = rotation_uuid(rotation_id)
        rotation = Rotation(
            rotation_id=rotation_id, name=name, members=members, at=self.now, policy=policy
        )
        self.touched[key] = self.subject = rotation
        return rotation

    def user(self, user_id: str) -> DirectoryUser | None:
        found = self._get(user_uuid(user_id))
        return found if isinstance(found, DirectoryUser) else None

    def team(self, team_id: str) -> Team | None:
        found = self._get(team_uuid(team_id))
        return found if isinstance(found, Team) else None

    def add(self, aggregate: Aggregate) -> None:
        """A new aggregate this command creates."""
        self.touched[aggregate.id] = aggregate

    def rotations_holding(self, team_id: str) -> list[str]:
        """The rotations a team is in (it has no links before its first)."""
        found = self._get(team_links_uuid(team_id))
        return list(found.rotations) if isinstance(found, TeamLinks) else []

    def team_links(self, team_id: str) -> TeamLinks:
        found = self._get(team_links_uuid(team_id))
        if isinstance(found, TeamLinks):
            return found
        links = TeamLinks(team_id=team_id)
        self.add(links)
        return links

    def require_new_meeting(self, rotation_id: str, meeting_id: str) -> None:
        """Meeting ids are unique per rotation."""
        key = (rotation_id, meeting_id)
        if key in self.work.claims:
            raise RetryAlone(meeting_id)  # decided one by one, where the store is asked
        if self.work.check_store and self.store.has_claim(rotation_id, meeting_id):
            raise DuplicateMeeting(f"meeting {meeting_id!r} is already booked in {rotation_id!r}")

    def claim_meeting(self, rotation_id: str, meeting_id: str, host_id: str, version: int) -> None:
        """Take the meeting id; `version` is the booking event's (the index starts there)."""
        self.claims[(rotation_id, meeting_id)] = Claim(rotation_id, meeting_id, host_id, version)

    def mark_meeting(self, rotation_id: str, meeting_id: str, event: Rotation.Event) -> None:
        """`event` (new in this command's rotation) is now the meeting's latest."""
        if event.originator_id != rotation_uuid(rotation_id):
            raise ValueError(f"{type(event).__name__} is not an event of {rotation_id!r}")
        key = (rotation_id, meeting_id)
        self.marks[key] = MeetingMark(rotation_id, meeting_id, event.originator_version)

    def meeting_event(self, rotation_id: str, meeting_id: str) -> Rotation.Event | None:
        """The meeting's latest event: the newest that this command or the batch's earlier
        accepted commands created (not saved yet), else the store's; None: never booked."""
        key = (rotation_id, meeting_id)
        pending = [
            found.version
            for found in (
                self.marks.get(key),
                self.claims.get(key),
                self.work.marks.get(key),
                self.work.claims.get(key),
            )
            if found is not None
        ]
        if not pending:
            return self.store.find_meeting_event(rotation_id, meeting_id)
        version = max(pending)
        rotation = self._get(rotation_uuid(rotation_id))
        events = rotation.pending_events if rotation is not None else []
        for event in reversed(events):
            if event.originator_version == version:
                assert isinstance(event, Rotation.Event)
                return event
        raise LookupError(f"meeting {meeting_id!r} marked at {version}, not a pending event")

    def pending(self) -> list[tuple[UUID, Aggregate.Event]]:
        """Every event this command created, with its aggregate's id (in saving order)."""
        return [(key, e) for key, agg in self.touched.items() for e in agg.pending_events]  # type: ignore[misc]

    def new_events(self) -> list[Rotation.Event]:
        """The events this command added to its rotation."""
        if self.subject is None:
            return []
        return list(self.subject.pending_events[self.events_before :])  # type: ignore[arg-type]
