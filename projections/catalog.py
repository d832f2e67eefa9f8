"""What is in the store: every rotation, one rotation, its policy and member options, its
meetings, the directory's users and teams.

For the CLI's reading commands (no broker, no running service). Rotations come from the read
model's rows, with the log past its tracked position folded on in memory (nothing is written,
so reading never moves the view the service keeps); users and teams are folded from their
events in the log. Every fold is `events.fold`'s, so these answers read the events as the
write side does.

A rotation's meetings come from the read model's meetings table (found by rotation, and by
host, through its indexes), with the rotation's own events past its row applied on in memory
by the projector's `meeting_change`: the history is never read, only what the view has not
applied yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from events.directory import DirectoryUser, Team
from events.errors import UnknownRotation
from events.fold import aggregate_events, fold
from events.policy import DEFAULT_POLICY
from events.rotation import MemberRecord, Rotation, rotation_uuid
from projections.ports import EventSource, RotationsStore, ViewSource
from projections.replay import LIVE_TABLE, decode_row, read_rows, table_exists, tracked_position
from projections.rotation_view import meeting_change, reading_view
from projections.view_store import MEETING_STATUSES, MeetingRow, meetings_table

PAGE = 1_000
REASSIGNED = "reassigned"
RESCHEDULED = "rescheduled"
MEETING_FILTERS = (*MEETING_STATUSES, RESCHEDULED, REASSIGNED)
"""What `rotations meetings --status` takes: a status, or a meeting ever rescheduled or
reassigned (whatever its status now)."""


def event_topics(aggregate: type[Aggregate]) -> tuple[str, ...]:
    """The stored topics of an aggregate's events (its nested event classes)."""
    return tuple(
        get_topic(value)
        for value in vars(aggregate).values()
        if isinstance(value, type) and issubclass(value, Aggregate.Event)
    )


@dataclass(frozen=True)
class RotationSummary:
    """One line of `rotations list`."""

    rotation_id: str
    name: str
    members: int
    teams: int
    deleted: bool
    version: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rotation_id": self.rotation_id,
            "name": self.name,
            "members": self.members,
            "teams": self.teams,
            "deleted": self.deleted,
            "version": self.version,
        }


@dataclass(frozen=True)
class MemberState:
    """A member of a rotation as `rotations show` prints it."""

    user_id: str
    meetings: int
    available: bool
    last_assigned_at: str | None
    joined_at: str
    sources: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "meetings": self.meetings,
            "available": self.available,
            "last_assigned_at": self.last_assigned_at,
            "joined_at": self.joined_at,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class RotationDetail:
    """One rotation as it stands: name, members with their state, teams."""

    rotation_id: str
    name: str
    deleted: bool
    version: int
    members: tuple[MemberState, ...]
    teams: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "rotation_id": self.rotation_id,
            "name": self.name,
            "deleted": self.deleted,
            "version": self.version,
            "members": [m.to_json() for m in self.members],
            "teams": {team: list(members) for team, members in self.teams.items()},
        }


@dataclass(frozen=True)
class Directory:
    """The directory's users and teams as their events left them."""

    users: tuple[DirectoryUser, ...]
    teams: tuple[Team, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "users": [_user_json(u) for u in self.users],
            "teams": [
                {"team_id": t.team_id, "name": t.name, "members": t.members} for t in self.teams
            ],
        }


# -- rotations ----------------------------------------------------------------------------


def list_rotations(source: ViewSource) -> list[RotationSummary]:
    """Every rotation, deleted ones included, ordered by id."""
    rotations = current_rotations(source)
    return sorted((summary_of(r) for r in rotations.values()), key=lambda s: s.rotation_id)


def current_rotations(source: ViewSource) -> dict[UUID, Rotation]:
    """The view's rows, with the rotation events stored after its tracked position folded on."""
    # The position first: rows read after it are at least as far on (an event already in a
    # row is skipped below); read before it, an event between the two would be missed.
    after = tracked_position(source, LIVE_TABLE)
    rotations = {
        UUID(key): decode_row(source, row) for key, row in read_rows(source, LIVE_TABLE).items()
    }
    for notification in notifications(source, event_topics(Rotation), after):
        (event,) = aggregate_events([source.mapper.to_domain_event(notification)])
        current = rotations.get(event.originator_id)
        if current is not None and event.originator_version <= current.version:
            continue  # already in the row (the view moved on while we read)
        folded: Rotation | None = fold([event], current)
        if folded is not None:
            rotations[event.originator_id] = folded
    return rotations


def summary_of(rotation: Rotation) -> RotationSummary:
    return RotationSummary(
        rotation_id=rotation.rotation_id,
        name=rotation.name,
        members=len(rotation.members),
        teams=len(rotation.teams),
        deleted=rotation.deleted,
        version=rotation.version,
    )


def show_rotation(source: EventSource, rotation_id: str) -> RotationDetail:
    """A rotation folded from its events; UnknownRotation when it has none."""
    rotation: Rotation | None = fold(
        aggregate_events(source.events.get(rotation_uuid(rotation_id)))
    )
    if rotation is None:
        raise UnknownRotation(f"no rotation {rotation_id!r}")
    return detail_of(rotation)


def detail_of(rotation: Rotation) -> RotationDetail:
    members = tuple(
        _member_state(record, rotation.sources_of(user_id))
        for user_id, record in rotation.members.items()
    )
    return RotationDetail(
        rotation_id=rotation.rotation_id,
        name=rotation.name,
        deleted=rotation.deleted,
        version=rotation.version,
        members=members,
        teams={team: list(ids) for team, ids in rotation.teams.items()},
    )


def _member_state(record: MemberRecord, sources: list[str]) -> MemberState:
    last = record["last_assigned_at"]
    return MemberState(
        user_id=record["user_id"],
        meetings=record["meetings"],
        available=record["available"],
        last_assigned_at=last.isoformat() if last else None,
        joined_at=record["joined_at"].isoformat(),
        sources=tuple(sources),
    )


# -- one rotation from the read model: its policy and options, its meetings -------------


@dataclass(frozen=True)
class MemberOptions:
    """A member's options and where it stands now, as `rotations policy` prints it."""

    user_id: str
    weight: int
    priority: int
    cap: dict[str, Any] | None  # the cap in force
    cap_from: str | None  # "member" (its own), "policy", or None (no cap)
    credits: int  # that count now (in the current window, since the last reset)
    meetings: int  # that count now
    capped: bool
    available: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "weight": self.weight,
            "priority": self.priority,
            "cap": self.cap,
            "cap_from": self.cap_from,
            "credits": self.credits,
            "meetings": self.meetings,
            "capped": self.capped,
            "available": self.available,
        }


@dataclass(frozen=True)
class PolicyView:
    """A rotation's policy (every field), the window it counts in now, and every member's
    options."""

    rotation_id: str
    name: str
    deleted: bool
    version: int
    at: datetime
    policy: dict[str, Any]
    window: dict[str, datetime] | None  # the current window [start, end); None: since reset
    members: tuple[MemberOptions, ...]

    def defaults(self) -> list[str]:
        """The policy's fields left at their defaults (version 1's behaviour)."""
        return [name for name, value in DEFAULT_POLICY.items() if self.policy[name] == value]

    def to_json(self) -> dict[str, Any]:
        window = self.window
        return {
            "rotation_id": self.rotation_id,
            "name": self.name,
            "deleted": self.deleted,
            "version": self.version,
            "at": self.at.isoformat(),
            "policy": self.policy,
            "window": None if window is None else {k: v.isoformat() for k, v in window.items()},
            "members": [m.to_json() for m in self.members],
        }


@dataclass(frozen=True)
class MeetingsListing:
    """A rotation's meetings in booking order, as the read model has them."""

    rotation_id: str
    deleted: bool
    meetings: tuple[MeetingRow, ...]


def meeting_json(rotation_id: str, meeting: MeetingRow) -> dict[str, Any]:
    """One line of `rotations meetings --json`."""
    record = None
    if meeting.record_type is not None:
        record = {"type": meeting.record_type, "id": meeting.record_id}
    return {
        "rotation_id": rotation_id,
        "meeting_id": meeting.meeting_id,
        "host_id": meeting.host_id,
        "record": record,
        "booked_at": meeting.booked_at.isoformat(),
        "starts_at": meeting.starts_at.isoformat() if meeting.starts_at else None,
        "status": meeting.status,
        "reassigned": meeting.reassignments > 0,
        "reassignments": meeting.reassignments,
        "rescheduled": meeting.reschedules > 0,
        "reschedules": meeting.reschedules,
        "changed_at": meeting.changed_at.isoformat(),
    }


def current_rotation(source: RotationsStore, rotation_id: str) -> Rotation:
    """One rotation: its read-model row with its own later events folded on (UnknownRotation
    when it has neither)."""
    row_state, later = _row_and_later(source, rotation_id)
    rotation: Rotation | None = fold(later, row_state)
    if rotation is None:
        raise UnknownRotation(f"no rotation {rotation_id!r}")
    return rotation


def rotation_policy(source: RotationsStore, rotation_id: str, at: datetime) -> PolicyView:
    """The rotation's policy and its members' options, with credits and meetings as they
    count at `at` (its window and cap periods)."""
    rotation = current_rotation(source, rotation_id)
    context = rotation.context(at)
    members = tuple(
        MemberOptions(
            user_id=standing.user_id,
            weight=standing.weight,
            priority=standing.priority,
            cap=standing.cap,
            cap_from=_cap_from(rotation.members[standing.user_id], standing.cap),
            credits=standing.credits,
            meetings=standing.meetings,
            capped=standing.capped,
            available=standing.available,
        )
        for standing in rotation.standings(at, context=context)
    )
    return PolicyView(
        rotation_id=rotation.rotation_id,
        name=rotation.name,
        deleted=rotation.deleted,
        version=rotation.version,
        at=at,
        policy={**DEFAULT_POLICY, **rotation.policy},
        window=context.window_dict(),
        members=members,
    )


def _cap_from(record: MemberRecord, cap: dict[str, Any] | None) -> str | None:
    if record["cap"] is not None:
        return "member"
    return None if cap is None else "policy"


def rotation_meetings(
    source: RotationsStore,
    rotation_id: str,
    host_id: str | None = None,
    status: str | None = None,
) -> MeetingsListing:
    """The rotation's meetings (hosted by `host_id` now, if given; with `status`, one of
    `MEETING_FILTERS`, if given) in booking order; UnknownRotation when it has none.

    The rotation's row is read before its meetings, so the meeting rows are at least as far
    on as the row; the rotation's events after the row are applied on, each skipped where the
    meeting's row already has it.
    """
    if status is not None and status not in MEETING_FILTERS:
        raise ValueError(f"no meeting status {status!r}: one of {', '.join(MEETING_FILTERS)}")
    row_state, later = _row_and_later(source, rotation_id)
    if row_state is None and not later:
        raise UnknownRotation(f"no rotation {rotation_id!r}")
    key = str(rotation_uuid(rotation_id))
    changes = [c for c in (meeting_change(event, key) for event in later) if c is not None]
    rows: dict[str, MeetingRow] = {}
    if table_exists(source, meetings_table(LIVE_TABLE)):
        view = reading_view(source, LIVE_TABLE)
        rows = {m.meeting_id: m for m in view.get_meetings(key, host_id)}
        elsewhere = {c.meeting_id for c in changes} - rows.keys()
        if elsewhere and host_id is not None:  # changed since: their rows name another host
            rows.update(view.get_meetings_by_id(key, elsewhere))
    for change in changes:
        stored = rows.get(change.meeting_id)
        if stored is None or stored.version < change.version:
            rows[change.meeting_id] = change.applied_to(stored)
    now: Rotation | None = fold(later, row_state)
    deleted = now is not None and now.deleted
    chosen = (
        m
        for m in rows.values()
        if (host_id is None or m.host_id == host_id) and _has_status(m, status)
    )
    ordered = sorted(chosen, key=lambda m: (m.booked_version, m.meeting_id))
    return MeetingsListing(rotation_id=rotation_id, deleted=deleted, meetings=tuple(ordered))


def _has_status(meeting: MeetingRow, status: str | None) -> bool:
    if status is None:
        return True
    if status == RESCHEDULED:
        return meeting.reschedules > 0
    if status == REASSIGNED:
        return meeting.reassignments > 0
    return meeting.status == status


def _row_and_later(
    source: RotationsStore, rotation_id: str
) -> tuple[Rotation | None, list[Aggregate.Event]]:
    """The rotation as its read-model row has it (None: no row), and its events after it."""
    key = rotation_uuid(rotation_id)
    row = None
    if table_exists(source, LIVE_TABLE):
        row = reading_view(source, LIVE_TABLE).get_row(str(key))
    state = None if row is None else decode_row(source, row)
    after = None if state is None else state.version
    return state, list(aggregate_events(source.events.get(key, gt=after)))


# -- the directory ------------------------------------------------------------------------


def directory_listing(source: ViewSource) -> Directory:
    """Every user and team the directory described, each folded from its events."""
    topics = event_topics(DirectoryUser) + event_topics(Team)
    events: dict[UUID, list[Aggregate.Event]] = {}
    for notification in notifications(source, topics):
        (event,) = aggregate_events([source.mapper.to_domain_event(notification)])
        events.setdefault(event.originator_id, []).append(event)
    users: list[DirectoryUser] = []
    teams: list[Team] = []
    for stream in events.values():
        state: Aggregate | None = fold(stream)
        if isinstance(state, DirectoryUser):
            users.append(state)
        elif isinstance(state, Team):
            teams.append(state)
    return Directory(
        users=tuple(sorted(users, key=lambda u: u.user_id)),
        teams=tuple(sorted(teams, key=lambda t: t.team_id)),
    )


def _user_json(user: DirectoryUser) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "name": user.name,
        "seat": user.seat,
        "calendar_connected": user.calendar_connected,
        "calendar_sync": user.calendar_sync,
        "permissions": list(user.permissions),
        "deactivated": user.deactivated,
        "ineligible": user.ineligibility(),
    }


def notifications(
    source: ViewSource, topics: tuple[str, ...], after: int = 0
) -> Iterator[Notification]:
    """The log's notifications of these topics after a position, a page at a time."""
    start = after + 1
    while True:
        page = source.recorder.select_notifications(start=start, limit=PAGE, topics=topics)
        yield from page
        if len(page) < PAGE:
            return
        start = page[-1].id + 1
