"""Audit answers from the events alone: what happened to a rotation, and why each host.

`audit_history` lists a rotation's events as entries an auditor can read. `explain_booking`
shows the decision record a booking stored and re-derives it: the rotation's events before
the booking are folded by `events.fold` (the aggregate's own mutators, as every reader
does), eligibility comes from the directory facts stored before the booking, and members are
ranked with the shared `events.ranking.rank`, so a stored record that the events do not
support is caught.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import takewhile
from typing import Any

from eventsourcing.domain import Aggregate
from pydantic_core import to_jsonable_python

from events.directory import DirectoryUser, ineligibility, user_uuid
from events.errors import UnknownRotation
from events.fold import Step, fold, fold_steps
from events.rotation import NOT_RECORDED, OVERRIDE, Rotation, rotation_uuid, standing_to_dict
from projections.directory_mode import ModeHistory, mode_name
from projections.ports import AuditSource, EventSource, history


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
    directory: str  # the directory mode re-derived under: the one in force when it was made
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


def _rotation_history(app: EventSource, rotation_id: str) -> Iterator[Step]:
    """The rotation's events folded one by one (`events.fold`), each with its position."""
    events, positions = history(app, rotation_uuid(rotation_id))
    if not events:
        raise UnknownRotation(f"no rotation {rotation_id!r}")
    return fold_steps(events, positions)


def audit_history(app: EventSource, rotation_id: str) -> list[AuditEntry]:
    """Every event of the rotation in order, with timestamp, version and global position.

    The events are folded as they are listed, so each entry can say who actually joined or
    left (a team's members, say) and whether the counts were reset (every join resets).
    """
    return [_entry(step) for step in _rotation_history(app, rotation_id)]


def _entry(step: Step) -> AuditEntry:
    event = step.event
    base: dict[str, Any] = {
        "position": step.position or 0,
        "version": event.originator_version,
        "timestamp": event.timestamp,
        "event": type(event).__name__,
        "joined": step.joined,
        "left": step.left,
        "reset": step.reset,
    }
    render = _RENDERERS.get(type(event))
    fields = render(event, _membership(step)) if render else {"summary": _generic_summary(event)}
    return AuditEntry(**base, **fields)


# Each renderer gives an entry's summary and the fields of its event kind; the membership
# change (already worded) comes from the fold, never from the event's own fields.
Fields = dict[str, Any]
_TeamEvent = Rotation.TeamAdded | Rotation.TeamRemoved | Rotation.TeamMembersChanged


def _created(event: Rotation.Created, _: str) -> Fields:
    members = tuple(event.members)
    summary = f"created {event.name!r} with {', '.join(members) or 'no members'}"
    return {"summary": summary, "name": event.name, "members": members}


def _renamed(event: Rotation.Renamed, _: str) -> Fields:
    return {"summary": f"renamed to {event.name!r}", "name": event.name}


def _member_added(event: Rotation.MemberAdded, changes: str) -> Fields:
    return {"summary": f"added {event.user_id}{changes}", "user_id": event.user_id}


def _member_removed(event: Rotation.MemberRemoved, _: str) -> Fields:
    return {"summary": f"removed {event.user_id}", "user_id": event.user_id}


def _availability(event: Rotation.AvailabilityToggled, _: str) -> Fields:
    state = "available" if event.available else "unavailable"
    return {
        "summary": f"{event.user_id} {state}",
        "user_id": event.user_id,
        "available": event.available,
    }


def _booked(event: Rotation.MeetingBooked, _: str) -> Fields:
    recorded = event.reason != NOT_RECORDED
    if not recorded:
        how = "no decision record (booked before records were kept)"
    elif event.override:
        how = f"override of suggested {event.suggested_host_id or 'nobody'}"
    else:
        how = f"as suggested ({event.reason})"
    return {
        "summary": f"meeting {event.meeting_id} hosted by {event.host_id}: {how}",
        "meeting_id": event.meeting_id,
        "host_id": event.host_id,
        "suggested_host_id": event.suggested_host_id if recorded else None,
        "override": event.override if recorded else None,
        "reason": event.reason,
    }


def _team(verb: str) -> Callable[[Any, str], Fields]:
    def render(event: _TeamEvent, changes: str) -> Fields:
        return {"summary": f"team {event.team_id} {verb}{changes}", "team_id": event.team_id}

    return render


def _deleted(_event: Rotation.Deleted, _: str) -> Fields:
    return {"summary": "deleted"}


_RENDERERS: dict[type[Any], Callable[[Any, str], Fields]] = {
    Rotation.Created: _created,
    Rotation.Renamed: _renamed,
    Rotation.MemberAdded: _member_added,
    Rotation.MemberRemoved: _member_removed,
    Rotation.AvailabilityToggled: _availability,
    Rotation.MeetingBooked: _booked,
    Rotation.TeamAdded: _team("added"),
    Rotation.TeamRemoved: _team("removed"),
    Rotation.TeamMembersChanged: _team("changed"),
    Rotation.Deleted: _deleted,
}


def _membership(step: Step) -> str:
    parts = []
    if step.joined:
        parts.append(f"joined: {', '.join(step.joined)}; every count reset to 0")
    if step.left:
        parts.append(f"left: {', '.join(step.left)}")
    return f" ({'; '.join(parts)})" if parts else ""


def _generic_summary(event: Aggregate.Event) -> str:
    """Events this module does not know yet still appear, with their fields."""
    hidden = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    fields = {k: v for k, v in vars(event).items() if k not in hidden}
    return ", ".join(f"{k}={v!r}" for k, v in fields.items()) or type(event).__name__


# -- explanations -------------------------------------------------------------------------


def explain_booking(app: AuditSource, rotation_id: str, meeting_id: str) -> Explanation:
    """The booking's stored decision record and its re-derivation from the events before."""
    for explanation in _explanations(app, rotation_id, meeting_id):
        return explanation
    raise MeetingNotFound(f"no meeting {meeting_id!r} booked in rotation {rotation_id!r}")


def explain_bookings(app: AuditSource, rotation_id: str) -> list[Explanation]:
    """Every booking of the rotation explained, in one pass over its events."""
    return list(_explanations(app, rotation_id, None))


def _explanations(
    app: AuditSource, rotation_id: str, meeting_id: str | None
) -> Iterator[Explanation]:
    """Fold the rotation's events; at each (matching) booking, rank the members before it."""
    directory = DirectoryHistory(app)
    before: Rotation | None = None
    for step in _rotation_history(app, rotation_id):
        booking = step.booking
        if before is not None and booking is not None and meeting_id in (None, booking.meeting_id):
            position = step.position or 0
            ineligible = directory.ineligible_before(list(before.members), position)
            mode = mode_name(directory.modes.required_before(position))
            yield _explain(rotation_id, before, ineligible, booking, position, mode)
        before = step.state


class DirectoryHistory:
    """Who could not host just before a global position, from the directory's events.

    Like `point_in_time.ineligible_as_of`, but cut by store position rather than by time:
    a decision saw exactly the facts stored before it, and positions never tie, where
    timestamps can. Each user's events are read once and folded per question.
    """

    def __init__(self, app: AuditSource) -> None:
        self.app = app
        self.modes = ModeHistory(app)
        self._events: dict[str, list[tuple[int, Aggregate.Event]]] = {}

    def ineligible_before(self, user_ids: list[str], position: int) -> dict[str, str]:
        if not self.modes.required_before(position):
            return {}
        why: dict[str, str] = {}
        for user_id in user_ids:
            earlier = takewhile(lambda entry: entry[0] < position, self._history(user_id))
            user: DirectoryUser | None = fold(event for _, event in earlier)
            reason = ineligibility(user)
            if reason is not None:
                why[user_id] = reason
        return why

    def _history(self, user_id: str) -> list[tuple[int, Aggregate.Event]]:
        if user_id not in self._events:
            events, positions = history(self.app, user_uuid(user_id))
            self._events[user_id] = list(zip(positions, events, strict=True))
        return self._events[user_id]


def _explain(
    rotation_id: str,
    before: Rotation,
    ineligible: dict[str, str],
    event: Rotation.MeetingBooked,
    position: int,
    directory: str,
) -> Explanation:
    suggestion = before.suggest(
        event.at,
        ineligible=ineligible,
        starts_at=event.starts_at,
        preferred_host_id=event.preferred_host_id,
    )
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
        directory=directory,
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
            found.append(
                f"candidate {i}: stored {describe_candidate(was)}; "
                f"re-derived {describe_candidate(now)}"
            )
    return tuple(found)


def describe_candidate(candidate: dict[str, Any] | None) -> str:
    """One readable line: who, how many meetings, when last, and whether they could host."""
    if candidate is None:
        return "(none)"
    if not candidate.get("available"):
        hosts = "unavailable"
    elif not candidate.get("eligible", True):
        hosts = f"ineligible ({candidate.get('why')})"
    else:
        hosts = "could host"
    last = candidate.get("last_assigned_at")
    when = last.isoformat() if isinstance(last, datetime) else "never" if last is None else last
    return (
        f"{candidate.get('user_id')} with {candidate.get('meetings')} meetings, "
        f"last assigned {when}, joined #{candidate.get('join_seq')}, {hosts}"
    )
