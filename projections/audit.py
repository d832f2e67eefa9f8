"""Audit answers from the events alone: what happened to a rotation, and why each host.

`audit_history` lists a rotation's events as entries an auditor can read: who joined and
whether counts were reset, policy and option changes (what changed), credits (manual ones
with who gave them and why, levelling ones as the service's), and the meeting lifecycle.

`explain_booking` shows the decision record a booking stored and re-derives it; a
reassignment's record is explained the same way, and `explain_meeting` gives a meeting's
whole life (booked, rescheduled, reassigned, cancelled or no-show) with one explanation per
decision. The rotation's events before a decision are folded by `events.fold` (the
aggregate's own mutators, as every reader does), eligibility comes from the directory facts
stored before it, and members are ranked by the aggregate's own `Rotation.suggest` with the
decision's inputs (its time, the meeting's start, the preferred host, the host a
reassignment moves away from), so a stored record that the events do not support is caught,
field by field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from itertools import takewhile
from typing import Any

from eventsourcing.domain import Aggregate
from pydantic_core import to_jsonable_python

from events.directory import DirectoryUser, ineligibility, user_uuid
from events.errors import UnknownRotation
from events.fold import Step, fold, fold_steps
from events.policy import DEFAULT_POLICY, Policy, complete
from events.ranking import HELD, Standing
from events.rotation import (
    LEVEL_JOIN,
    LEVEL_RETURN,
    MANUAL,
    NOT_RECORDED,
    OVERRIDE,
    MemberRecord,
    Rotation,
    rotation_uuid,
    standing_to_dict,
)
from projections.directory_mode import ModeHistory, mode_name
from projections.ports import AuditSource, EventSource, history

# What an explanation explains, and the kinds of a meeting's life.
BOOKED = "booked"
RESCHEDULED = "rescheduled"
REASSIGNED = "reassigned"
CANCELLED = "cancelled"
NO_SHOW = "no_show"
SERVICE = "the service"  # who gives levelling credits

Decided = Rotation.MeetingBooked | Rotation.MeetingReassigned
Lifecycle = (
    Rotation.MeetingCancelled
    | Rotation.MeetingRescheduled
    | Rotation.MeetingReassigned
    | Rotation.MeetingMarkedNoShow
)
_KINDS: dict[type[Any], str] = {
    Rotation.MeetingBooked: BOOKED,
    Rotation.MeetingRescheduled: RESCHEDULED,
    Rotation.MeetingReassigned: REASSIGNED,
    Rotation.MeetingCancelled: CANCELLED,
    Rotation.MeetingMarkedNoShow: NO_SHOW,
}


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
    joined: tuple[str, ...] = ()  # members who joined with this event
    left: tuple[str, ...] = ()
    meeting_id: str | None = None
    host_id: str | None = None  # bookings: the host; lifecycle events: the host after it
    suggested_host_id: str | None = None
    override: bool | None = None
    # The decision's reason (bookings, reassignments), or the reason given (credits,
    # cancellations).
    reason: str | None = None
    reset: bool = False
    actor: str | None = None  # who gave a credit or changed a meeting (None: the service)
    policy: dict[str, Any] | None = None  # the whole policy a creation or SetPolicy left
    changes: tuple[str, ...] = ()  # what a policy or options change changed, field by field
    options: dict[str, Any] | None = None  # the options given (MemberAdded, MemberOptionsSet)
    credit: int | None = None  # meetings credited (negative: taken back)
    credit_kind: str | None = None  # manual, level_join or level_return
    previous_host_id: str | None = None  # reassignments: the host it moved away from
    starts_at: datetime | None = None  # bookings and reschedules: the (new) start
    previous_starts_at: datetime | None = None  # reschedules: the start before
    hold_id: str | None = None  # holds, and bookings of a hold
    expires_at: datetime | None = None  # holds: when it stops counting

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable_python(self)
        return data


@dataclass(frozen=True)
class Decision:
    """What decided a host: the suggestion, why, every candidate's standing, and the inputs
    that placed the decision (policy, reference time, window, preferred host)."""

    suggested_host_id: str | None
    override: bool
    reason: str
    candidates: tuple[dict[str, Any], ...]
    policy: dict[str, Any]
    reference_at: datetime
    window: dict[str, datetime] | None
    preferred_host_id: str | None


@dataclass(frozen=True)
class Explanation:
    """A decision's stored record (a booking's or a reassignment's) next to the one its
    prior events re-derive."""

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
    kind: str = BOOKED  # or "reassigned"
    previous_host_id: str | None = None  # reassignments: the host it moved away from
    actor: str | None = None  # reassignments: who asked for it

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


@dataclass(frozen=True)
class LifeEntry:
    """One event of a meeting's life; a decision (booked, reassigned) with its explanation."""

    kind: str  # booked, rescheduled, reassigned, cancelled, no_show
    entry: AuditEntry  # the event as the audit lists it
    host_id: str  # the meeting's host after the event
    starts_at: datetime | None  # its start after the event
    explanation: Explanation | None = None


@dataclass(frozen=True)
class MeetingLife:
    """A meeting's whole life in order, each decision explained."""

    rotation_id: str
    meeting_id: str
    entries: tuple[LifeEntry, ...]

    @property
    def explanations(self) -> tuple[Explanation, ...]:
        return tuple(e.explanation for e in self.entries if e.explanation is not None)

    @property
    def matches(self) -> bool | None:
        """False when any stored record is not re-derived; None when none could be checked."""
        verdicts = [x.matches for x in self.explanations if x.matches is not None]
        if not verdicts:
            return None
        return all(verdicts)

    @property
    def differences(self) -> tuple[str, ...]:
        return tuple(
            f"{x.kind} (version {x.version}): {d}" for x in self.explanations for d in x.differences
        )

    @property
    def status(self) -> str:
        """cancelled, no_show or booked (it stands), from its last event."""
        kinds = [e.kind for e in self.entries]
        if CANCELLED in kinds:
            return CANCELLED
        return NO_SHOW if NO_SHOW in kinds else BOOKED

    @property
    def host_id(self) -> str:
        return self.entries[-1].host_id

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable_python(self)
        for entry, explained in zip(data["entries"], self.entries, strict=True):
            if explained.explanation is not None:
                entry["explanation"]["matches"] = explained.explanation.matches
        data.update(matches=self.matches, status=self.status, host_id=self.host_id)
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
    left (a team's members, say), whether the counts were reset, and what a policy or
    options change changed.
    """
    return [entry for _, entry in audit_entries(_rotation_history(app, rotation_id))]


def audit_entries(steps: Iterable[Step]) -> Iterator[tuple[Step, AuditEntry]]:
    """Each folded step with its audit entry (the report words its table with these)."""
    before: Rotation | None = None
    for step in steps:
        yield step, entry_of(step, before)
        before = step.state


@dataclass(frozen=True)
class _Seen:
    """What a renderer may read besides its event: the fold's states around it."""

    step: Step
    before: Rotation | None

    @property
    def membership(self) -> str:
        """The membership change, worded from the fold (never from the event's fields)."""
        parts = []
        if self.step.joined:
            joined = ", ".join(self.step.joined)
            if self.step.reset:
                parts.append(f"joined: {joined}; every count reset to 0")
            else:
                on_join = self.step.state.policy.get("on_join", DEFAULT_POLICY["on_join"])
                parts.append(f"joined: {joined}; no reset (on_join {on_join})")
        if self.step.left:
            parts.append(f"left: {', '.join(self.step.left)}")
        return f" ({'; '.join(parts)})" if parts else ""


def entry_of(step: Step, before: Rotation | None) -> AuditEntry:
    """The audit entry of one folded step; `before` is the state the event found."""
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
    seen = _Seen(step, before)
    fields = render(event, seen) if render else {"summary": _generic_summary(event)}
    return AuditEntry(**base, **fields)


# Each renderer gives an entry's summary and the fields of its event kind; the membership
# change and what a change changed come from the fold's states, never the event's fields.
Fields = dict[str, Any]
_TeamEvent = Rotation.TeamAdded | Rotation.TeamRemoved | Rotation.TeamMembersChanged


def describe_cap(cap: Mapping[str, Any] | None) -> str:
    return "none" if cap is None else f"{cap['meetings']}/{cap['per']}"


def _policy_value(name: str, value: Any) -> str:
    if name == "cap":
        return describe_cap(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def policy_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """Each policy field that differs, as `field old → new` (absent fields at defaults)."""
    was, now = complete(dict(before)), complete(dict(after))
    return tuple(
        f"{name} {_policy_value(name, was[name])} → {_policy_value(name, now[name])}"
        for name in DEFAULT_POLICY
        if was[name] != now[name]
    )


def describe_policy(policy: Mapping[str, Any]) -> str:
    """The whole policy on one line."""
    value = complete(dict(policy))
    return ", ".join(f"{name} {_policy_value(name, value[name])}" for name in DEFAULT_POLICY)


def _created(event: Rotation.Created, seen: _Seen) -> Fields:
    members = tuple(event.members)
    summary = f"created {event.name!r} with {', '.join(members) or 'no members'}"
    changed = policy_changes(DEFAULT_POLICY, event.policy or {})
    if changed:
        summary += f"; policy: {'; '.join(changed)}"
    return {
        "summary": summary,
        "name": event.name,
        "members": members,
        "policy": seen.step.state.policy,
        "changes": changed,
    }


def _renamed(event: Rotation.Renamed, _: _Seen) -> Fields:
    return {"summary": f"renamed to {event.name!r}", "name": event.name}


def _policy_set(event: Rotation.PolicySet, seen: _Seen) -> Fields:
    was = seen.before.policy if seen.before is not None else DEFAULT_POLICY
    changed = policy_changes(was, event.policy)
    what = "; ".join(changed) if changed else "unchanged"
    return {"summary": f"policy set: {what}", "policy": dict(event.policy), "changes": changed}


def _options_given(options: Mapping[str, Any]) -> str:
    given = [f"{name} {_option(name, value)}" for name, value in options.items() if value]
    return f" with {', '.join(given)}" if given else ""


def _option(name: str, value: Any) -> str:
    return describe_cap(value) if name == "cap" else str(value)


def _member_added(event: Rotation.MemberAdded, seen: _Seen) -> Fields:
    options = dict(event.options)
    return {
        "summary": f"added {event.user_id}{_options_given(options)}{seen.membership}",
        "user_id": event.user_id,
        "options": options,
    }


def _member_option(record: MemberRecord, policy: Mapping[str, Any], name: str) -> str:
    if name != "cap":
        return str(record[name])  # type: ignore[literal-required]
    if record["cap"] is None:
        return f"{describe_cap(complete(dict(policy))['cap'])} (the policy's)"
    return describe_cap(record["cap"])


def _member_options_set(event: Rotation.MemberOptionsSet, seen: _Seen) -> Fields:
    after = seen.step.state
    now = after.members[event.user_id]
    was = seen.before.members[event.user_id] if seen.before is not None else now
    policy_was = seen.before.policy if seen.before is not None else after.policy
    changed = []
    for name in ("weight", "priority", "cap"):
        if name not in event.options:
            continue
        old, new = _member_option(was, policy_was, name), _member_option(now, after.policy, name)
        changed.append(f"{name} {old} → {new}" if old != new else f"{name} {new}, unchanged")
    return {
        "summary": f"options of {event.user_id}: {'; '.join(changed) or 'none given'}",
        "user_id": event.user_id,
        "options": dict(event.options),
        "changes": tuple(changed),
    }


def _meetings(n: int) -> str:
    return f"{n:+d} meeting{'' if abs(n) == 1 else 's'}"


def _member_credited(event: Rotation.MemberCredited, _: _Seen) -> Fields:
    if event.kind in (LEVEL_JOIN, LEVEL_RETURN):
        on = "join" if event.kind == LEVEL_JOIN else "return"
        summary = (
            f"{event.user_id} levelled on {on} by {SERVICE}: credited {_meetings(event.meetings)}"
        )
    else:
        by = event.actor or "unknown"
        verb = "credited" if event.meetings > 0 else "credit taken back from"
        kind = "" if event.kind == MANUAL else f" ({event.kind})"
        summary = (
            f"{verb} {event.user_id} {_meetings(event.meetings)} by {by}{kind}: {event.reason!r}"
        )
    return {
        "summary": summary,
        "user_id": event.user_id,
        "credit": event.meetings,
        "credit_kind": event.kind,
        "reason": event.reason,
        "actor": event.actor,
    }


def _member_removed(event: Rotation.MemberRemoved, _: _Seen) -> Fields:
    return {"summary": f"removed {event.user_id}", "user_id": event.user_id}


def _availability(event: Rotation.AvailabilityToggled, _: _Seen) -> Fields:
    state = "available" if event.available else "unavailable"
    return {
        "summary": f"{event.user_id} {state}",
        "user_id": event.user_id,
        "available": event.available,
    }


def _how(event: Decided) -> str:
    if event.reason == NOT_RECORDED:
        return "no decision record (booked before records were kept)"
    if event.override:
        return f"override of suggested {event.suggested_host_id or 'nobody'}"
    if event.reason == HELD:
        return f"the held member (the rule now suggests {event.suggested_host_id or 'nobody'})"
    return f"as suggested ({event.reason})"


def _decision_fields(event: Decided) -> Fields:
    recorded = event.reason != NOT_RECORDED
    return {
        "meeting_id": event.meeting_id,
        "host_id": event.host_id,
        "suggested_host_id": event.suggested_host_id if recorded else None,
        "override": event.override if recorded else None,
        "reason": event.reason,
    }


def _booked(event: Rotation.MeetingBooked, _: _Seen) -> Fields:
    preferred = event.preferred_host_id
    asked = f" (preferred {preferred})" if preferred and preferred != event.host_id else ""
    if event.hold_id is not None:
        asked += f" (hold {event.hold_id})"
    return {
        "summary": f"meeting {event.meeting_id} hosted by {event.host_id}: {_how(event)}{asked}",
        "starts_at": event.starts_at,
        "hold_id": event.hold_id,
        **_decision_fields(event),
    }


def _by(actor: str | None) -> str:
    return f" by {actor}" if actor else ""


def _cancelled(event: Rotation.MeetingCancelled, _: _Seen) -> Fields:
    host = event.meeting["host_id"]
    why = repr(event.reason) if event.reason else "no reason given"
    return {
        "summary": f"meeting {event.meeting_id} of {host} cancelled{_by(event.actor)}: {why}",
        "meeting_id": event.meeting_id,
        "host_id": host,
        "reason": event.reason,
        "actor": event.actor,
    }


def _when(value: datetime | None) -> str:
    return "unset" if value is None else value.isoformat()


def _rescheduled(event: Rotation.MeetingRescheduled, _: _Seen) -> Fields:
    host, was = event.meeting["host_id"], event.meeting["starts_at"]
    return {
        "summary": (
            f"meeting {event.meeting_id} of {host} rescheduled{_by(event.actor)}: "
            f"starts {_when(was)} → {_when(event.starts_at)}"
        ),
        "meeting_id": event.meeting_id,
        "host_id": host,
        "actor": event.actor,
        "starts_at": event.starts_at,
        "previous_starts_at": was,
    }


def _reassigned(event: Rotation.MeetingReassigned, _: _Seen) -> Fields:
    was = event.meeting["host_id"]
    return {
        "summary": (
            f"meeting {event.meeting_id} reassigned{_by(event.actor)} from {was} to "
            f"{event.host_id}: {_how(event)}"
        ),
        "actor": event.actor,
        "previous_host_id": was,
        **_decision_fields(event),
    }


def _no_show(event: Rotation.MeetingMarkedNoShow, seen: _Seen) -> Fields:
    host = event.meeting["host_id"]
    policy = Policy.of(seen.step.state.policy)
    counts = "still counts (no_shows_count yes)" if policy.no_shows_count else "stops counting"
    return {
        "summary": f"meeting {event.meeting_id} of {host} marked a no-show{_by(event.actor)}: "
        f"{counts}",
        "meeting_id": event.meeting_id,
        "host_id": host,
        "actor": event.actor,
    }


def _held(event: Rotation.HostHeld, _: _Seen) -> Fields:
    preferred = event.preferred_host_id
    asked = f" (preferred {preferred})" if preferred and preferred != event.host_id else ""
    return {
        "summary": (
            f"hold {event.hold_id} of {event.host_id}{_by(event.actor)} until "
            f"{event.expires_at.isoformat()}: as suggested ({event.reason}){asked}"
        ),
        "host_id": event.host_id,
        "suggested_host_id": event.suggested_host_id,
        "override": False,
        "reason": event.reason,
        "actor": event.actor,
        "starts_at": event.starts_at,
        "hold_id": event.hold_id,
        "expires_at": event.expires_at,
    }


def _hold_released(event: Rotation.HoldReleased, _: _Seen) -> Fields:
    return {
        "summary": f"hold {event.hold_id} of {event.host_id} released{_by(event.actor)}",
        "hold_id": event.hold_id,
        "host_id": event.host_id,
        "actor": event.actor,
    }


def _team(verb: str) -> Callable[[Any, _Seen], Fields]:
    def render(event: _TeamEvent, seen: _Seen) -> Fields:
        return {
            "summary": f"team {event.team_id} {verb}{seen.membership}",
            "team_id": event.team_id,
        }

    return render


def _deleted(_event: Rotation.Deleted, _: _Seen) -> Fields:
    return {"summary": "deleted"}


_RENDERERS: dict[type[Any], Callable[[Any, _Seen], Fields]] = {
    Rotation.Created: _created,
    Rotation.Renamed: _renamed,
    Rotation.PolicySet: _policy_set,
    Rotation.MemberAdded: _member_added,
    Rotation.MemberOptionsSet: _member_options_set,
    Rotation.MemberCredited: _member_credited,
    Rotation.MemberRemoved: _member_removed,
    Rotation.AvailabilityToggled: _availability,
    Rotation.MeetingBooked: _booked,
    Rotation.MeetingCancelled: _cancelled,
    Rotation.MeetingRescheduled: _rescheduled,
    Rotation.MeetingReassigned: _reassigned,
    Rotation.MeetingMarkedNoShow: _no_show,
    Rotation.HostHeld: _held,
    Rotation.HoldReleased: _hold_released,
    Rotation.TeamAdded: _team("added"),
    Rotation.TeamRemoved: _team("removed"),
    Rotation.TeamMembersChanged: _team("changed"),
    Rotation.Deleted: _deleted,
}


def _generic_summary(event: Aggregate.Event) -> str:
    """Events this module does not know yet still appear, with their fields."""
    hidden = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    fields = {k: v for k, v in vars(event).items() if k not in hidden}
    return ", ".join(f"{k}={v!r}" for k, v in fields.items()) or type(event).__name__


# -- explanations -------------------------------------------------------------------------


def explain_booking(app: AuditSource, rotation_id: str, meeting_id: str) -> Explanation:
    """The booking's stored decision record and its re-derivation from the events before."""
    for explanation in _explanations(app, rotation_id, meeting_id):
        if explanation.kind == BOOKED:
            return explanation
    raise MeetingNotFound(f"no meeting {meeting_id!r} booked in rotation {rotation_id!r}")


def explain_bookings(app: AuditSource, rotation_id: str) -> list[Explanation]:
    """Every decision record of the rotation explained, in one pass over its events: each
    booking's, and each reassignment's (`kind` says which)."""
    return list(_explanations(app, rotation_id, None))


def explain_meeting(app: AuditSource, rotation_id: str, meeting_id: str) -> MeetingLife:
    """A meeting's whole life in order: booked, rescheduled, reassigned, cancelled or
    no-show; each decision (the booking, each reassignment) with its explanation."""
    entries = tuple(_life(app, rotation_id, meeting_id))
    if not entries:
        raise MeetingNotFound(f"no meeting {meeting_id!r} booked in rotation {rotation_id!r}")
    return MeetingLife(rotation_id=rotation_id, meeting_id=meeting_id, entries=entries)


def _explanations(
    app: AuditSource, rotation_id: str, meeting_id: str | None
) -> Iterator[Explanation]:
    for _, _, explanation in _meeting_steps(app, rotation_id, meeting_id):
        if explanation is not None:
            yield explanation


def _life(app: AuditSource, rotation_id: str, meeting_id: str) -> Iterator[LifeEntry]:
    for step, before, explanation in _meeting_steps(app, rotation_id, meeting_id):
        facts = step.event.facts()  # type: ignore[attr-defined]
        yield LifeEntry(
            kind=_KINDS[type(step.event)],
            entry=entry_of(step, before),
            host_id=facts["host_id"],
            starts_at=facts["starts_at"],
            explanation=explanation,
        )


def _meeting_steps(
    app: AuditSource, rotation_id: str, meeting_id: str | None
) -> Iterator[tuple[Step, Rotation | None, Explanation | None]]:
    """Fold the rotation's events; yield each event of the meeting (every decision when
    `meeting_id` is None) with the state before it, a decision with its explanation."""
    directory = DirectoryHistory(app)
    before: Rotation | None = None
    for step in _rotation_history(app, rotation_id):
        event = step.event
        if type(event) in _KINDS and meeting_id in (None, getattr(event, "meeting_id", None)):
            explanation = None
            if before is not None and isinstance(event, Decided):
                position = step.position or 0
                ineligible = directory.ineligible_before(list(before.members), position)
                mode = mode_name(directory.modes.required_before(position))
                explanation = _explain(rotation_id, before, ineligible, event, position, mode)
            if explanation is not None or meeting_id is not None:
                yield step, before, explanation
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
    event: Decided,
    position: int,
    directory: str,
) -> Explanation:
    """Re-derive with the decision's own inputs: a booking at its time for its start and
    preferred host; a reassignment at its time for the meeting's start, its host excluded."""
    if isinstance(event, Rotation.MeetingReassigned):
        kind, starts_at, record = REASSIGNED, event.meeting["starts_at"], event.meeting["record"]
        exclude: tuple[str, ...] = (event.meeting["host_id"],)
        previous: str | None = event.meeting["host_id"]
        actor = event.actor
    else:
        kind, starts_at, record, exclude = BOOKED, event.starts_at, event.record, ()
        previous = actor = None
    hold_id = event.hold_id if isinstance(event, Rotation.MeetingBooked) else None
    suggestion = before.suggest(
        event.at,
        exclude=exclude,
        ineligible=ineligible,
        starts_at=starts_at,
        preferred_host_id=event.preferred_host_id,
        booking_hold=hold_id,
    )
    context = before.context(event.at, starts_at)
    held = before.holds.get(hold_id) if hold_id is not None else None
    chosen = held["host_id"] if held is not None else suggestion.host_id
    override = event.host_id != chosen
    derived = Decision(
        suggested_host_id=suggestion.host_id,
        override=override,
        reason=OVERRIDE if override else HELD if held is not None else suggestion.reason,
        candidates=tuple(standing_to_dict(s) for s in suggestion.candidates),
        policy=asdict(context.policy),
        reference_at=context.reference,
        window=context.window_dict(),
        preferred_host_id=event.preferred_host_id,
    )
    stored: Decision | None = None
    if event.reason != NOT_RECORDED:
        stored = Decision(
            suggested_host_id=event.suggested_host_id,
            override=event.override,
            reason=event.reason,
            candidates=tuple(dict(c) for c in event.candidates),
            policy=dict(event.policy),
            reference_at=event.reference_at,
            window=None if event.window is None else dict(event.window),
            preferred_host_id=event.preferred_host_id,
        )
    return Explanation(
        rotation_id=rotation_id,
        meeting_id=event.meeting_id,
        position=position,
        version=event.originator_version,
        timestamp=event.timestamp,
        host_id=event.host_id,
        record=dict(record),
        starts_at=starts_at,
        at=event.at,
        stored=stored,
        derived=derived,
        directory=directory,
        differences=_differences(stored, derived) if stored else (),
        kind=kind,
        previous_host_id=previous,
        actor=actor,
    )


# Compared one by one, in this order; the candidates after them, field by field.
_DECISION_FIELDS = (
    "suggested_host_id",
    "override",
    "reason",
    "reference_at",
    "window",
    "preferred_host_id",
)
# A candidate's fields as the ranking gives them (`standing_to_dict`), compared by name.
CANDIDATE_FIELDS = tuple(f.name for f in fields(Standing))


def _differences(stored: Decision, derived: Decision) -> tuple[str, ...]:
    found: list[str] = []
    for name in _DECISION_FIELDS:
        was, now = getattr(stored, name), getattr(derived, name)
        if was != now:
            found.append(f"{name}: stored {was!r}, re-derived {now!r}")
    found += [f"policy {c} (stored → re-derived)" for c in _policy_differences(stored, derived)]
    if len(stored.candidates) != len(derived.candidates):
        found.append(
            f"candidates: stored {len(stored.candidates)}, re-derived {len(derived.candidates)}"
        )
    pairs = zip(stored.candidates, derived.candidates, strict=False)
    for i, (was, now) in enumerate(pairs, start=1):
        if was == now:
            continue
        if was.get("user_id") != now.get("user_id"):
            found.append(
                f"candidate {i}: stored {describe_candidate(was)}; "
                f"re-derived {describe_candidate(now)}"
            )
            continue
        names = [n for n in CANDIDATE_FIELDS if was.get(n) != now.get(n)]
        names += sorted(set(was) ^ set(now))  # fields one side has and the other lacks
        wrong = "; ".join(f"{n} stored {was.get(n)!r}, re-derived {now.get(n)!r}" for n in names)
        found.append(f"candidate {i}: {was.get('user_id')}'s {wrong}")
    return tuple(found)


def _policy_differences(stored: Decision, derived: Decision) -> tuple[str, ...]:
    """The policy's fields that differ, worded `field stored → re-derived`."""
    if stored.policy == derived.policy:
        return ()
    changed = policy_changes(stored.policy, derived.policy)
    return changed or (f"{stored.policy!r} → {derived.policy!r}",)


def share_of(candidate: Mapping[str, Any]) -> str:
    """What the rule compared, exactly: (meetings + credits + held + 1) / weight."""
    load = (
        int(candidate.get("meetings") or 0)
        + int(candidate.get("credits") or 0)
        + int(candidate.get("held") or 0)
        + 1
    )
    return f"{load}/{candidate.get('weight')}"


def can_host(candidate: Mapping[str, Any]) -> str:
    """Whether the candidate could host, or why not."""
    if not candidate.get("available"):
        return "unavailable"
    if not candidate.get("eligible", True):
        return f"ineligible ({candidate.get('why')})"
    if candidate.get("capped"):
        return f"capped ({describe_cap(candidate.get('cap'))})"
    return "could host"


def describe_candidate(candidate: dict[str, Any] | None) -> str:
    """One readable line: who, what counted (meetings, credits, holds), weight and share,
    priority, cap, when last assigned, and whether they could host."""
    if candidate is None:
        return "(none)"
    last = candidate.get("last_assigned_at")
    when = last.isoformat() if isinstance(last, datetime) else "never" if last is None else last
    cap = candidate.get("cap")
    return (
        f"{candidate.get('user_id')} with {candidate.get('meetings')} meetings, "
        f"{candidate.get('credits', 0)} credits, {candidate.get('held', 0)} held, "
        f"weight {candidate.get('weight')} (share {share_of(candidate)}), "
        f"priority {candidate.get('priority')}, cap {describe_cap(cap)}, "
        f"last assigned {when}, joined #{candidate.get('join_seq')}, {can_host(candidate)}"
    )
