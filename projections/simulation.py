"""What-if: a rotation's recorded history replayed under another policy and member options.

`simulate` reads the rotation's events a page at a time and drives a simulated `Rotation`
through its own command methods: joins, leaves, toggles, overrides, manual credits and the
meeting lifecycle as recorded; every auto-assigned booking, automatic reassignment and hold
re-decided by the aggregate (`book_meeting`, `reassign_meeting`, `hold_host` with no host
named), so the ranking is the contract's and nowhere re-implemented. Levelling credits are
the simulated aggregate's own (it levels under the simulated policy); recorded ones are not
re-applied.

Memory stays flat however long the history: one page of events, the simulated rotation, and
per meeting only what differs from the record (`projections.divergence`: its simulated
host, or its versions), kept on disk. The simulated rotation numbers its events on its own
(the file's options set on a creation's members add events, levelling may differ, a
booking no one can take is not recorded), so recorded versions map to simulated ones
through `VersionMap`'s breakpoints.

`preview` asks the rotation as stored what the next N auto-assigned bookings would be, on a
copy, and stores nothing.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast
from uuid import UUID

from eventsourcing.application import Repository
from eventsourcing.domain import Aggregate

from events.directory import DirectoryUser, ineligibility, user_uuid
from events.errors import NoAvailableMember, RotationError, UnknownRotation
from events.fold import aggregate_events, fold
from events.policy import complete
from events.ranking import Fairness, Standing, fairness
from events.rotation import MANUAL, OVERRIDE, Meeting, Rotation, rotation_uuid
from projections import svg
from projections.directory_mode import ModeHistory
from projections.divergence import Diverged, DivergenceLog
from projections.ports import AuditSource, history
from projections.positions import positions_of

PAGE = 1000  # events read at once
MAX_POINTS = 400  # chart samples kept (halved, and sampled half as often, when exceeded)


class SimulationSource(AuditSource, Protocol):
    """The store's events and log, and its repository (for the recorded end state)."""

    @property
    def repository(self) -> Repository[UUID]: ...


class PreviewSource(AuditSource, Protocol):
    """The rotation as stored now, the directory's users, and the recorded directory mode."""

    def get_rotation(self, rotation_id: str) -> Rotation: ...

    def find_user(self, user_id: str) -> DirectoryUser | None: ...


@dataclass(frozen=True)
class WhatIf:
    """The settings to simulate: a whole policy (None: the recorded one throughout) and,
    per named member, the options that replace its recorded ones (fields given only)."""

    policy: dict[str, Any] | None = None
    members: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    start: datetime | None = None  # before it, everything as recorded
    end: datetime | None = None  # after it, the simulation stops

    def options(self, user_id: str, recorded: Mapping[str, Any]) -> dict[str, Any]:
        return {**recorded, **self.members.get(user_id, {})}


@dataclass(frozen=True)
class MemberCounts:
    """A member's meetings as the contract counts them at the end, recorded and simulated."""

    user_id: str
    actual: int
    simulated: int


@dataclass(frozen=True)
class ChartPoint:
    """Meetings each member holds (booked, not cancelled; resets ignored) at a moment."""

    at: datetime
    actual: dict[str, int]
    simulated: dict[str, int]

    def count(self, user_id: str, simulated: bool) -> int:
        return (self.simulated if simulated else self.actual).get(user_id, 0)


@dataclass(frozen=True)
class Simulation:
    rotation_id: str
    bookings: int  # MeetingBooked events replayed
    at: datetime  # the moment the counts are taken at (the last event replayed)
    members: tuple[MemberCounts, ...]
    actual: Fairness
    simulated: Fairness
    changed: Sequence[str]  # meetings whose host differs at the end, in booking order
    unassigned: Sequence[str]  # meetings the simulation could not book (no one could host)
    decisions: int  # decisions re-decided (bookings, reassignments, holds)
    differing: int  # of them, how many chose another host than recorded
    points: tuple[ChartPoint, ...] = ()
    actual_state: Rotation | None = field(default=None, compare=False, repr=False)
    simulated_state: Rotation | None = field(default=None, compare=False, repr=False)


class VersionMap:
    """Recorded version → simulated version, as sorted breakpoints where the offset changes:
    as small as the number of times the two numberings drifted apart."""

    def __init__(self) -> None:
        self._at: list[int] = [0]
        self._offset: list[int] = [0]

    def note(self, recorded: int, simulated: int) -> None:
        """After recorded event `recorded`, the simulated rotation is at `simulated`."""
        offset = simulated - recorded
        if offset != self._offset[-1]:
            self._at.append(recorded)
            self._offset.append(offset)

    def __call__(self, recorded: int) -> int:
        return recorded + self._offset[bisect_right(self._at, recorded) - 1]

    def __len__(self) -> int:
        return len(self._at)


@dataclass(slots=True)
class _UserHistory:
    """One user's directory events with their positions, folded up to `done`."""

    entries: list[tuple[int, Aggregate.Event]]
    done: int = 0
    user: DirectoryUser | None = None

    def before(self, position: int) -> DirectoryUser | None:
        while self.done < len(self.entries) and self.entries[self.done][0] < position:
            self.user = fold([self.entries[self.done][1]], self.user)
            self.done += 1
        return self.user


class _Directory:
    """Who cannot host just before a global position, folded forwards as the replay moves
    (positions only grow): each user's directory events read once, folded once."""

    def __init__(self, app: AuditSource) -> None:
        self.app = app
        self.modes = ModeHistory(app)
        self._users: dict[str, _UserHistory] = {}

    def ineligible(self, user_ids: Iterable[str], position: int) -> dict[str, str]:
        if not self.modes.required_before(position):
            return {}
        why: dict[str, str] = {}
        for user_id in user_ids:
            reason = ineligibility(self._user(user_id).before(position))
            if reason is not None:
                why[user_id] = reason
        return why

    def _user(self, user_id: str) -> _UserHistory:
        if user_id not in self._users:
            events, positions = history(self.app, user_uuid(user_id))
            self._users[user_id] = _UserHistory(list(zip(positions, events, strict=True)))
        return self._users[user_id]


def _moment(event: Aggregate.Event, previous: datetime | None) -> datetime:
    """The event's business time (`at`); one without (a toggle, a leave) happened when the
    one before it did, as far as --from and --to go (the first: when it was stored)."""
    at = getattr(event, "at", None)
    if isinstance(at, datetime):
        return at
    return previous if previous is not None else event.timestamp


def _is_override(event: Rotation.MeetingBooked | Rotation.MeetingReassigned) -> bool:
    return bool(event.override) or event.reason == OVERRIDE


def _pages(app: SimulationSource, originator_id: UUID) -> Iterator[tuple[Aggregate.Event, int]]:
    """The aggregate's events in order with their global positions, a page at a time."""
    after = 0
    while True:
        page = list(aggregate_events(app.events.get(originator_id, gt=after, limit=PAGE)))
        if not page:
            return
        first, last = page[0].originator_version, page[-1].originator_version
        positions = positions_of(app.recorder, originator_id, first, last)
        yield from zip(page, positions, strict=True)
        if len(page) < PAGE:
            return
        after = last


def _with_next(
    items: Iterator[tuple[Aggregate.Event, int]],
) -> Iterator[tuple[Aggregate.Event, int, Aggregate.Event | None]]:
    """Each event with the one after it (a return's levelling credit tells its time)."""
    previous = next(items, None)
    for item in items:
        assert previous is not None
        yield previous[0], previous[1], item[0]
        previous = item
    if previous is not None:
        yield previous[0], previous[1], None


class _Tallies:
    """Meetings each member holds, recorded and simulated, sampled for the chart in flat
    memory (at most MAX_POINTS samples, evenly spaced in events)."""

    def __init__(self) -> None:
        self.actual: dict[str, int] = {}
        self.simulated: dict[str, int] = {}
        self.points: list[ChartPoint] = []
        self._stride = 1
        self._seen = 0

    def move(self, counts: dict[str, int], host: str | None, by: int) -> None:
        if host is not None:
            counts[host] = counts.get(host, 0) + by

    def sample(self, at: datetime) -> None:
        self._seen += 1
        if self._seen % self._stride:
            return
        self.points.append(ChartPoint(at, dict(self.actual), dict(self.simulated)))
        if len(self.points) > MAX_POINTS:
            self.points = self.points[1::2]
            self._stride *= 2

    def finish(self, at: datetime) -> tuple[ChartPoint, ...]:
        return (*self.points, ChartPoint(at, dict(self.actual), dict(self.simulated)))


class _Replay:
    """The recorded events, one by one, driving the simulated rotation."""

    def __init__(self, app: SimulationSource, what_if: WhatIf) -> None:
        self.what_if = what_if
        self.directory = _Directory(app)
        self.sim: Rotation | None = None
        self.redeciding = what_if.start is None
        self.versions = VersionMap()
        self.diverged = DivergenceLog()
        self.tallies = _Tallies()
        self.bookings = self.decisions = self.differing = 0
        self.last_version = 0
        self.moment: datetime | None = None
        self.position = 0
        self.next_event: Aggregate.Event | None = None

    @property
    def rotation(self) -> Rotation:
        if self.sim is None:
            raise ValueError("the rotation's first event is not its creation")
        return self.sim

    def run(self, events: Iterator[tuple[Aggregate.Event, int]]) -> None:
        for event, position, after in _with_next(events):
            moment = _moment(event, self.moment)
            if self.what_if.end is not None and moment > self.what_if.end:
                return
            start = self.what_if.start
            if not self.redeciding and start is not None and moment >= start:
                self._adopt(moment)
            self.position, self.next_event, self.moment = position, after, moment
            if self.redeciding:
                _HANDLERS.get(type(event), _unknown)(self, event)
                self.rotation.collect_events()  # nothing is stored: drop them
            else:
                self._as_recorded(event)
            if isinstance(event, _MEETING_EVENTS):
                self.tallies.sample(moment)
            self.versions.note(event.originator_version, self.rotation.version)
            self.last_version = event.originator_version

    def _adopt(self, moment: datetime) -> None:
        """At --from: the simulated settings take over from the recorded ones."""
        self.redeciding = True
        if self.sim is None:
            return
        if self.what_if.policy is not None:
            self.sim.set_policy(self.what_if.policy, moment)
        for user_id, options in self.what_if.members.items():
            if user_id in self.sim.members and options:
                self.sim.set_member_options(user_id, options)
        self.sim.collect_events()

    def _as_recorded(self, event: Aggregate.Event) -> None:
        """Before --from: the recorded event folded as it is (the versions still agree)."""
        self.sim = event.mutate(self.sim)
        if isinstance(event, Rotation.MeetingBooked):
            self.bookings += 1
            self.move(None, event.host_id, simulated=True)
        elif isinstance(event, Rotation.MeetingReassigned):
            self.move(event.meeting["host_id"], event.host_id, simulated=True)
        elif isinstance(event, Rotation.MeetingCancelled):
            self.move(event.meeting["host_id"], None, simulated=True)

    def move(
        self, left: str | None, given: str | None, recorded: bool = True, simulated: bool = False
    ) -> None:
        """A meeting left one host for another (None: none), as recorded and/or simulated."""
        for counts, moved in ((self.tallies.actual, recorded), (self.tallies.simulated, simulated)):
            if moved:
                self.tallies.move(counts, left, -1)
                self.tallies.move(counts, given, +1)

    def ineligible(self) -> dict[str, str]:
        return self.directory.ineligible(list(self.rotation.members), self.position)

    # -- meetings ----------------------------------------------------------------------

    def facts(self, recorded: Mapping[str, Any]) -> Meeting | None:
        """The meeting's simulated facts (None: the simulation never booked it)."""
        booked = self.versions(recorded["booked_version"])
        found = self.diverged.get(recorded["meeting_id"])
        if found is None:
            assigned = self.versions(recorded["assigned_version"])
            host = recorded["host_id"]
        elif found.host_id is None:
            return None
        else:
            assigned, host = found.assigned_version, found.host_id
        return cast(
            Meeting,
            {**recorded, "host_id": host, "booked_version": booked, "assigned_version": assigned},
        )

    def track(
        self, meeting_id: str, host: str | None, assigned: int, recorded_host: str, booked: int
    ) -> None:
        """Keep the meeting's simulated facts only when they differ from the record's."""
        if host == recorded_host and assigned == self.rotation.version:
            self.diverged.drop(meeting_id)
        else:
            self.diverged.put(meeting_id, Diverged(host, assigned, recorded_host, booked))

    def decided(self, recorded: str, simulated: str | None) -> None:
        self.decisions += 1
        if recorded != simulated:
            self.differing += 1

    def result(self, app: SimulationSource, rotation_id: str) -> Simulation:
        actual: Rotation = app.repository.get(rotation_uuid(rotation_id), version=self.last_version)
        simulated = self.rotation
        assert self.moment is not None
        ineligible = self.directory.ineligible(
            dict.fromkeys([*actual.members, *simulated.members]), self.position + 1
        )
        before = {s.user_id: s for s in actual.standings(self.moment, ineligible)}
        after = {s.user_id: s for s in simulated.standings(self.moment, ineligible)}
        changed, unassigned = self.diverged.moved()
        return Simulation(
            rotation_id=rotation_id,
            bookings=self.bookings,
            at=self.moment,
            members=tuple(
                MemberCounts(u, _meetings(before.get(u)), _meetings(after.get(u)))
                for u in dict.fromkeys([*before, *after])
            ),
            actual=fairness(before.values()),
            simulated=fairness(after.values()),
            changed=changed,
            unassigned=unassigned,
            decisions=self.decisions,
            differing=self.differing,
            points=self.tallies.finish(self.moment),
            actual_state=actual,
            simulated_state=simulated,
        )


def _meetings(standing: Standing | None) -> int:
    return 0 if standing is None else standing.meetings


# -- one handler per recorded event, each a command of the simulated rotation ------------


def _created(replay: _Replay, event: Rotation.Created) -> None:
    policy = replay.what_if.policy if replay.what_if.policy is not None else event.policy
    sim = Rotation(
        rotation_id=event.rotation_id,
        name=event.name,
        members=list(event.members),
        at=event.at,
        policy=complete(policy),
    )
    for user_id in sim.members:
        options = replay.what_if.members.get(user_id)
        if options:
            sim.set_member_options(user_id, options)
    replay.sim = sim


def _renamed(replay: _Replay, event: Rotation.Renamed) -> None:
    replay.rotation.rename(event.name)


def _policy_set(replay: _Replay, event: Rotation.PolicySet) -> None:
    """The simulated policy stands throughout: set again in place of the recorded one, so
    the numbering of events stays in step."""
    policy = replay.what_if.policy if replay.what_if.policy is not None else event.policy
    replay.rotation.set_policy(policy, event.at)


def _member_added(replay: _Replay, event: Rotation.MemberAdded) -> None:
    rotation = replay.rotation
    rotation.add_member(
        event.user_id,
        event.at,
        options=replay.what_if.options(event.user_id, event.options),
        others_ineligible=replay.ineligible(),
    )


def _member_options_set(replay: _Replay, event: Rotation.MemberOptionsSet) -> None:
    replay.rotation.set_member_options(
        event.user_id, replay.what_if.options(event.user_id, event.options)
    )


def _member_credited(replay: _Replay, event: Rotation.MemberCredited) -> None:
    """Manual credits as recorded; levelling is the simulated rotation's own."""
    if event.kind == MANUAL:
        replay.rotation.credit_member(
            event.user_id, event.meetings, event.reason, event.actor, event.at
        )


def _member_removed(replay: _Replay, event: Rotation.MemberRemoved) -> None:
    replay.rotation.remove_member(event.user_id)


def _availability(replay: _Replay, event: Rotation.AvailabilityToggled) -> None:
    replay.rotation.toggle_availability(
        event.user_id,
        event.available,
        at=_return_time(replay, event),
        ineligible=replay.ineligible(),
    )


def _return_time(replay: _Replay, event: Rotation.AvailabilityToggled) -> datetime:
    """A recorded levelling of this return says when it was decided; else the event's time."""
    after = replay.next_event
    if isinstance(after, Rotation.MemberCredited) and after.user_id == event.user_id:
        return after.at
    return event.timestamp


def _team_added(replay: _Replay, event: Rotation.TeamAdded) -> None:
    rotation = replay.rotation
    ineligible = replay.directory.ineligible(
        dict.fromkeys([*rotation.members, *event.members]), replay.position
    )
    rotation.add_team(event.team_id, list(event.members), event.at, ineligible)


def _team_removed(replay: _Replay, event: Rotation.TeamRemoved) -> None:
    replay.rotation.remove_team(event.team_id)


def _team_changed(replay: _Replay, event: Rotation.TeamMembersChanged) -> None:
    rotation = replay.rotation
    members = [u for u in rotation.teams[event.team_id] if u not in event.left] + event.joined
    ineligible = replay.directory.ineligible(
        dict.fromkeys([*rotation.members, *event.joined]), replay.position
    )
    rotation.team_changed(event.team_id, members, event.at, ineligible)


def _deleted(replay: _Replay, _event: Rotation.Deleted) -> None:
    replay.rotation.delete()


def _booked(replay: _Replay, event: Rotation.MeetingBooked) -> None:
    """An override books its named host; anything else is re-decided (a hold's booking
    books the simulated hold's member, when the simulation holds it)."""
    rotation = replay.rotation
    replay.bookings += 1
    named = event.host_id if _is_override(event) else None
    hold = event.hold_id if event.hold_id in rotation.holds else None
    host = _book(replay, event, named, hold)
    if host is None and hold is not None:
        host = _book(replay, event, named, None)
    if named is None:
        replay.decided(event.host_id, host)
    replay.track(
        event.meeting_id,
        host,
        rotation.version,
        event.host_id,
        event.originator_version,
    )
    replay.move(None, event.host_id)
    replay.move(None, host, recorded=False, simulated=True)


def _book(
    replay: _Replay, event: Rotation.MeetingBooked, named: str | None, hold: str | None
) -> str | None:
    try:
        return replay.rotation.book_meeting(
            event.meeting_id,
            named,
            dict(event.record),
            event.starts_at,
            event.at,
            ineligible=replay.ineligible(),
            preferred_host_id=event.preferred_host_id,
            hold_id=hold,
        )
    except NoAvailableMember:
        return None
    except RotationError:
        if hold is None:
            raise
        return None  # the simulated hold's member cannot host it: booked without the hold


def _reassigned(replay: _Replay, event: Rotation.MeetingReassigned) -> None:
    facts = replay.facts(event.meeting)
    replay.move(event.meeting["host_id"], event.host_id)
    if facts is None:
        return
    rotation = replay.rotation
    named = event.host_id if _is_override(event) else None
    try:
        host = rotation.reassign_meeting(
            facts, named, event.actor, event.at, ineligible=replay.ineligible()
        )
        assigned = rotation.version
    except NoAvailableMember:
        host, assigned = facts["host_id"], facts["assigned_version"]
    if named is None:
        replay.decided(event.host_id, host)
    replay.track(event.meeting_id, host, assigned, event.host_id, event.meeting["booked_version"])
    replay.move(facts["host_id"], host, recorded=False, simulated=True)


def _cancelled(replay: _Replay, event: Rotation.MeetingCancelled) -> None:
    facts = replay.facts(event.meeting)
    replay.move(event.meeting["host_id"], None)
    if facts is not None:
        replay.rotation.cancel_meeting(facts, event.reason, event.actor, event.at)
        replay.move(facts["host_id"], None, recorded=False, simulated=True)


def _rescheduled(replay: _Replay, event: Rotation.MeetingRescheduled) -> None:
    facts = replay.facts(event.meeting)
    if facts is not None:
        replay.rotation.reschedule_meeting(facts, event.starts_at, event.actor, event.at)


def _no_show(replay: _Replay, event: Rotation.MeetingMarkedNoShow) -> None:
    facts = replay.facts(event.meeting)
    if facts is not None:
        replay.rotation.mark_no_show(facts, event.actor, event.at)


def _held(replay: _Replay, event: Rotation.HostHeld) -> None:
    try:
        host: str | None = replay.rotation.hold_host(
            event.hold_id,
            event.seconds,
            event.at,
            exclude=list(event.exclude),
            starts_at=event.starts_at,
            ineligible=replay.ineligible(),
            preferred_host_id=event.preferred_host_id,
            actor=event.actor,
        )
    except NoAvailableMember:
        host = None  # no hold in the simulation: its booking is decided afresh
    replay.decided(event.host_id, host)


def _hold_released(replay: _Replay, event: Rotation.HoldReleased) -> None:
    rotation = replay.rotation
    if event.hold_id in rotation.holds:
        rotation.release_hold(event.hold_id, event.actor, event.at)


_MEETING_EVENTS = (Rotation.MeetingBooked, Rotation.MeetingReassigned, Rotation.MeetingCancelled)


def _unknown(_replay: _Replay, event: Aggregate.Event) -> None:
    raise ValueError(f"cannot simulate {type(event).__qualname__} events")


_HANDLERS: dict[type[Any], Callable[[_Replay, Any], None]] = {
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
    Rotation.TeamAdded: _team_added,
    Rotation.TeamRemoved: _team_removed,
    Rotation.TeamMembersChanged: _team_changed,
    Rotation.Deleted: _deleted,
}


def simulate(app: SimulationSource, rotation_id: str, what_if: WhatIf) -> Simulation:
    """The rotation's history replayed under `what_if` (see the module docstring)."""
    replay = _Replay(app, what_if)
    replay.run(_pages(app, rotation_uuid(rotation_id)))
    if replay.sim is None or replay.moment is None:
        raise UnknownRotation(f"no rotation {rotation_id!r} (or no events in the range)")
    return replay.result(app, rotation_id)


# -- preview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewBooking:
    host_id: str
    reason: str


@dataclass(frozen=True)
class Preview:
    rotation_id: str
    at: datetime
    requested: int
    next: tuple[PreviewBooking, ...]  # shorter than requested: then no one else could host

    def to_json(self) -> dict[str, Any]:
        return {
            "rotation_id": self.rotation_id,
            "at": self.at.isoformat(),
            "requested": self.requested,
            "next": [{"host_id": b.host_id, "reason": b.reason} for b in self.next],
        }


def preview(app: PreviewSource, rotation_id: str, n: int, at: datetime) -> Preview:
    """The hosts of the next `n` auto-assigned bookings at `at`, decided by a copy of the
    rotation as stored; nothing stored. Eligibility as the service applies it: under the
    directory mode it last recorded (this reader's own setting if it never did)."""
    rotation = copy.deepcopy(app.get_rotation(rotation_id))
    ineligible: dict[str, str] = {}
    if ModeHistory(app).required_at(at):
        for user_id in rotation.members:
            why = ineligibility(app.find_user(user_id))
            if why is not None:
                ineligible[user_id] = why
    found: list[PreviewBooking] = []
    for i in range(n):
        try:
            rotation.book_meeting(f"preview-{i}", None, {}, None, at, ineligible=ineligible)
        except NoAvailableMember:
            break
        (booked,) = rotation.collect_events()
        assert isinstance(booked, Rotation.MeetingBooked)
        found.append(PreviewBooking(booked.host_id, booked.reason))
    return Preview(rotation_id, at, n, tuple(found))


# -- the chart ------------------------------------------------------------------------------


def render_html(simulation: Simulation) -> str:
    """A self-contained page: each member's meetings over time, recorded (solid) against
    simulated (dashed), drawn with the audit report's scale, ticks and palette."""
    members = [m.user_id for m in simulation.members]
    for point in simulation.points:
        members += [u for u in (*point.actual, *point.simulated) if u not in members]
    colours = {m: svg.PALETTE[i % len(svg.PALETTE)] for i, m in enumerate(members)}
    legend = "".join(
        f'<li><span class="swatch" style="background:{colours[m]}"></span>{svg.esc(m)}</li>'
        for m in members
    )
    rows = "".join(
        f'<tr><td>{svg.esc(m.user_id)}</td><td class="num">{m.actual}</td>'
        f'<td class="num">{m.simulated}</td></tr>'
        for m in simulation.members
    )
    title = f"What-if simulation: {simulation.rotation_id}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{svg.esc(title)}</title>
<style>{svg.STYLE}</style>
</head>
<body>
<h1>{svg.esc(title)}</h1>
<p class="meta">{simulation.bookings} bookings replayed · {simulation.decisions} decisions
 re-decided, {simulation.differing} differently · {len(simulation.changed)} meetings with
 another host · deviation {svg.esc(_deviation(simulation.actual))} recorded,
 {svg.esc(_deviation(simulation.simulated))} simulated</p>
<h2>Meetings held per member (booked, not cancelled)</h2>
<figure>
{_chart(simulation.points, members, colours)}
<ul class="legend">{legend}</ul>
<p class="key">Solid lines: as recorded. Dashed lines: as simulated.</p>
</figure>
<h2>Meetings that count at the end</h2>
<table><tr><th>member</th><th>recorded</th><th>simulated</th></tr>{rows}</table>
</body>
</html>
"""


def _deviation(figures: Fairness) -> str:
    return f"{float(figures.deviation):.6f}"


def _chart(points: tuple[ChartPoint, ...], members: list[str], colours: dict[str, str]) -> str:
    t0, t1 = points[0].at, points[-1].at
    if t1 - t0 < timedelta(milliseconds=1):
        t1 = t0 + timedelta(seconds=1)
    counts = [n for p in points for n in (*p.actual.values(), *p.simulated.values())]
    scale = svg.Scale(t0, t1, svg.PLOT_TOP, max([1, *counts]))
    height = svg.PLOT_TOP + svg.PLOT_HEIGHT + 40
    bottom = svg.PLOT_TOP + svg.PLOT_HEIGHT
    out = [
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {svg.WIDTH} {height}" '
        f'width="{svg.WIDTH}" height="{height}" role="img" aria-label="meetings per member">',
        f'<line x1="{svg.LEFT}" x2="{svg.WIDTH - svg.RIGHT}" y1="{bottom}" y2="{bottom}" '
        'stroke="#888"/>',
        f'<line x1="{svg.LEFT}" x2="{svg.LEFT}" y1="{svg.PLOT_TOP}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{svg.LEFT - 8}" y="{scale.y(scale.max_count) + 4}" text-anchor="end" '
        f'font-size="11">{scale.max_count}</text>',
    ]
    ticks = svg.time_ticks(t0, t1)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else t1 - t0
    out += [
        f'<text x="{scale.x(at)}" y="{bottom + 18}" text-anchor="middle" font-size="11">'
        f"{svg.esc(svg.tick_label(at, step))}</text>"
        for at in ticks
    ]
    for member in members:
        for simulated in (False, True):
            line = " ".join(
                f"{scale.x(p.at)},{scale.y(p.count(member, simulated))}" for p in points
            )
            dash = ' stroke-dasharray="6 4"' if simulated else ""
            kind = "simulated" if simulated else "actual"
            out.append(
                f'<polyline class="{kind}" data-member="{svg.esc(member)}" fill="none" '
                f'stroke="{colours[member]}" stroke-width="2"{dash} points="{line}"/>'
            )
    out.append("</svg>")
    return "\n".join(out)
