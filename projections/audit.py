"""Audit answers from the events alone: what happened to a rotation, and why each host.

`audit_history` lists a rotation's events as entries an auditor can read. `explain_booking`
shows the decision record a booking stored and re-derives it: the rotation's events before
the booking are folded with the aggregate's own mutators (as `projections.point_in_time`
does), eligibility comes from the directory facts stored before the booking, and members are
ranked with the shared `events.ranking.rank`, so a stored record that the events do not
support is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from events.directory import DirectoryUser, user_uuid
from events.errors import UnknownRotation
from events.ranking import rank
from events.rotation import NOT_RECORDED, OVERRIDE, Rotation, rotation_uuid, standing_to_dict
from projections.positions import positions_of


class MeetingNotFound(LookupError):
    """The rotation has no booking with that meeting id."""


@dataclass(frozen=True)
class AuditEntry:
    """One event of a rotation, flattened for tables and JSON lines."""

    position: int
    version: int
    timestamp: datetime
    event: str
    summary: str
    user_id: str | None = None
    name: str | None = None
    members: tuple[str, ...] | None = None
    available: bool | None = None
    team_id: str | None = None
    joined: tuple[str, ...] = ()  # members who joined with this event (each join resets)
    left: tuple[str, ...] = ()
    meeting_id: str | None = None
    host_id: str | None = None
    suggested_host_id: str | None = None
    override: bool | None = None
    reason: str | None = None
    reset: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable_python(self)
        return data


@dataclass(frozen=True)
class Decision:
    """Who the ranking suggested when a meeting was booked, and why."""

    suggested_host_id: str | None
    override: bool
    reason: str
    candidates: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Explanation:
    """A booking's stored decision record next to the one its prior events re-derive."""

    rotation_id: str
    meeting_id: str
    position: int
    version: int
    timestamp: datetime
    host_id: str
    record: dict[str, str]
    starts_at: datetime | None
    at: datetime
    stored: Decision | None  # None: booked before decision records were stored (v1 event)
    derived: Decision
    differences: tuple[str, ...] = field(default=())

    @property
    def matches(self) -> bool | None:
        """True when stored == re-derived; None when there is no stored record to check."""
        if self.stored is None:
            return None
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable_python(self)
        data["matches"] = self.matches
        return data


# -- history ----------------------------------------------------------------------------


def _events_and_positions(app: Any, rotation_id: str) -> tuple[list[Any], list[int]]:
    """The rotation's events in order, and the global position of each."""
    events = list(app.events.get(rotation_uuid(rotation_id)))
    if not events:
        raise UnknownRotation(f"no rotation {rotation_id!r}")
    positions = positions_of(
        app.recorder,
        events[0].originator_id,
        events[0].originator_version,
        events[-1].originator_version,
    )
    return events, positions


def audit_history(app: Any, rotation_id: str) -> list[AuditEntry]:
    """Every event of the rotation in order, with timestamp, version and global position.

    The events are folded as they are listed, so each entry can say who actually joined or
    left (a team's members, say) and whether the counts were reset (every join resets).
    """
    events, positions = _events_and_positions(app, rotation_id)
    entries = []
    rotation: Rotation | None = None
    for event, position in zip(events, positions, strict=True):
        before = list(rotation.members) if rotation else []
        rotation = event.mutate(rotation)
        after = list(rotation.members) if rotation else []
        joined = tuple(u for u in after if u not in before)
        left = tuple(u for u in before if u not in after)
        entries.append(_entry(event, position, joined, left))
    return entries


def _entry(event: Any, position: int, joined: tuple[str, ...], left: tuple[str, ...]) -> AuditEntry:
    base: dict[str, Any] = {
        "position": position,
        "version": event.originator_version,
        "timestamp": event.timestamp,
        "event": type(event).__name__,
        "joined": joined,
        "left": left,
        "reset": bool(joined),
    }
    changes = _membership(joined, left)
    if isinstance(event, Rotation.Created):
        members = tuple(event.members)
        return AuditEntry(
            **base,
            summary=f"created {event.name!r} with {', '.join(members) or 'no members'}",
            name=event.name,
            members=members,
        )
    if isinstance(event, Rotation.Renamed):
        return AuditEntry(**base, summary=f"renamed to {event.name!r}", name=event.name)
    if isinstance(event, Rotation.MemberAdded):
        return AuditEntry(**base, summary=f"added {event.user_id}{changes}", user_id=event.user_id)
    if isinstance(event, Rotation.MemberRemoved):
        return AuditEntry(**base, summary=f"removed {event.user_id}", user_id=event.user_id)
    if isinstance(event, Rotation.AvailabilityToggled):
        state = "available" if event.available else "unavailable"
        return AuditEntry(
            **base,
            summary=f"{event.user_id} {state}",
            user_id=event.user_id,
            available=event.available,
        )
    if isinstance(event, Rotation.MeetingBooked):
        return _booking_entry(event, base)
    if isinstance(event, Rotation.Deleted):
        return AuditEntry(**base, summary="deleted")
    team_id = getattr(event, "team_id", None)
    if team_id is not None:  # TeamAdded, TeamRemoved, TeamMembersChanged
        verb = {"TeamAdded": "added", "TeamRemoved": "removed"}.get(base["event"], "changed")
        return AuditEntry(**base, summary=f"team {team_id} {verb}{changes}", team_id=team_id)
    return AuditEntry(**base, summary=_generic_summary(event))


def _membership(joined: tuple[str, ...], left: tuple[str, ...]) -> str:
    parts = []
    if joined:
        parts.append(f"joined: {', '.join(joined)}; every count reset to 0")
    if left:
        parts.append(f"left: {', '.join(left)}")
    return f" ({'; '.join(parts)})" if parts else ""


def _booking_entry(event: Any, base: dict[str, Any]) -> AuditEntry:
    recorded = event.reason != NOT_RECORDED
    if not recorded:
        how = "no decision record (booked before records were kept)"
    elif event.override:
        how = f"override of suggested {event.suggested_host_id or 'nobody'}"
    else:
        how = f"as suggested ({event.reason})"
    return AuditEntry(
        **base,
        summary=f"meeting {event.meeting_id} hosted by {event.host_id}: {how}",
        meeting_id=event.meeting_id,
        host_id=event.host_id,
        suggested_host_id=event.suggested_host_id if recorded else None,
        override=event.override if recorded else None,
        reason=event.reason,
    )


def _generic_summary(event: Any) -> str:
    """Events this module does not know yet still appear, with their fields."""
    hidden = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    fields = {k: v for k, v in vars(event).items() if k not in hidden}
    return ", ".join(f"{k}={v!r}" for k, v in fields.items()) or type(event).__name__


# -- explanations -------------------------------------------------------------------------


def explain_booking(app: Any, rotation_id: str, meeting_id: str) -> Explanation:
    """The booking's stored decision record and its re-derivation from the events before."""
    for explanation in _explanations(app, rotation_id, meeting_id):
        return explanation
    raise MeetingNotFound(f"no meeting {meeting_id!r} booked in rotation {rotation_id!r}")


def explain_bookings(app: Any, rotation_id: str) -> list[Explanation]:
    """Every booking of the rotation explained, in one pass over its events."""
    return list(_explanations(app, rotation_id, None))


def _explanations(app: Any, rotation_id: str, meeting_id: str | None) -> Iterator[Explanation]:
    """Fold the rotation's events; before each (matching) booking, rank the members."""
    events, positions = _events_and_positions(app, rotation_id)
    directory = DirectoryHistory(app)
    rotation: Rotation | None = None
    for event, position in zip(events, positions, strict=True):
        wanted = meeting_id is None or getattr(event, "meeting_id", None) == meeting_id
        if rotation is not None and isinstance(event, Rotation.MeetingBooked) and wanted:
            ineligible = directory.ineligible_before(list(rotation.members), position)
            yield _explain(rotation_id, rotation, ineligible, event, position)
        rotation = event.mutate(rotation)


class DirectoryHistory:
    """Who could not host just before a global position, from the directory's events.

    Like `point_in_time.ineligible_as_of`, but cut by store position rather than by time:
    a decision saw exactly the facts stored before it, and positions never tie, where
    timestamps can. Each user's events are read once and folded per question.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.required = bool(getattr(app, "directory_required", False))
        self._events: dict[str, list[tuple[int, Any]]] = {}

    def ineligible_before(self, user_ids: list[str], position: int) -> dict[str, str]:
        if not self.required:
            return {}
        why: dict[str, str] = {}
        for user_id in user_ids:
            user: DirectoryUser | None = None
            for at, event in self._history(user_id):
                if at >= position:
                    break
                user = event.mutate(user)
            reason = "unknown_user" if user is None else user.ineligibility()
            if reason is not None:
                why[user_id] = reason
        return why

    def _history(self, user_id: str) -> list[tuple[int, Any]]:
        if user_id not in self._events:
            events = list(self.app.events.get(user_uuid(user_id)))
            found = (
                positions_of(
                    self.app.recorder,
                    user_uuid(user_id),
                    events[0].originator_version,
                    events[-1].originator_version,
                )
                if events
                else []
            )
            self._events[user_id] = list(zip(found, events, strict=True))
        return self._events[user_id]


def _explain(
    rotation_id: str,
    before: Rotation,
    ineligible: dict[str, str],
    event: Rotation.MeetingBooked,
    position: int,
) -> Explanation:
    suggestion = rank(before.standings(ineligible))
    override = event.host_id != suggestion.host_id
    derived = Decision(
        suggested_host_id=suggestion.host_id,
        override=override,
        reason=OVERRIDE if override else suggestion.reason,
        candidates=tuple(standing_to_dict(s) for s in suggestion.candidates),
    )
    stored: Decision | None = None
    if event.reason != NOT_RECORDED:
        stored = Decision(
            suggested_host_id=event.suggested_host_id,
            override=event.override,
            reason=event.reason,
            candidates=tuple(dict(c) for c in event.candidates),
        )
    return Explanation(
        rotation_id=rotation_id,
        meeting_id=event.meeting_id,
        position=position,
        version=event.originator_version,
        timestamp=event.timestamp,
        host_id=event.host_id,
        record=dict(event.record),
        starts_at=event.starts_at,
        at=event.at,
        stored=stored,
        derived=derived,
        differences=_differences(stored, derived) if stored else (),
    )


def _differences(stored: Decision, derived: Decision) -> tuple[str, ...]:
    found: list[str] = []
    for name in ("suggested_host_id", "override", "reason"):
        was, now = getattr(stored, name), getattr(derived, name)
        if was != now:
            found.append(f"{name}: stored {was!r}, re-derived {now!r}")
    if len(stored.candidates) != len(derived.candidates):
        found.append(
            f"candidates: stored {len(stored.candidates)}, re-derived {len(derived.candidates)}"
        )
    pairs = zip(stored.candidates, derived.candidates, strict=False)
    for i, (was, now) in enumerate(pairs, start=1):
        if was != now:
            found.append(f"candidate {i}: stored {was!r}, re-derived {now!r}")
    return tuple(found)
