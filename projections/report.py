"""The audit report of one rotation: a self-contained HTML page from its events alone.

The rotation's events are folded by `events.fold` (the aggregate's own mutators, as every
reader folds them), and after every event the report reads the aggregate's own standings
(`Rotation.standings`) at that event's time: each member's meetings and credits that count
then (so a cancelled meeting stops counting from its cancellation, a reassigned one counts
for its new host, windows start again), its weight, priority, cap and whether it is capped.
Nothing here counts meetings itself. Where the policy counts by day, week or month, the
report also reads the standings at each window's start (counts go back down there) and
gives the contract's fairness summary (`events.ranking.fairness`) per window.

The page has an inline SVG chart (no network, no external script), the fairness summary, the
members with their options and the audit table (worded by `projections.audit`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from events.errors import UnknownRotation
from events.fold import Step as Folded
from events.fold import fold_steps
from events.policy import SINCE_RESET, period_slots, slot_start
from events.ranking import Fairness as RuleFairness
from events.ranking import Standing, fairness
from events.rotation import LEVEL_JOIN, LEVEL_RETURN, Rotation, rotation_uuid
from projections.audit import DirectoryHistory, audit_entries, describe_cap, describe_policy
from projections.ports import AuditSource, EventSource, history
from projections.svg import (
    LANE,
    LEFT,
    PALETTE,
    PLOT_HEIGHT,
    PLOT_TOP,
    RIGHT,
    STYLE,
    WIDTH,
    Scale,
    esc,
    tick_label,
    time_ticks,
)

# What an event did to a meeting or a member, for the chart's markers.
BOOKED = "booked"
REASSIGNED = "reassigned"
CANCELLED = "cancelled"
NO_SHOW = "no_show"
RESCHEDULED = "rescheduled"
CREDIT = "credit"
_MEETING_KINDS: dict[type[Any], str] = {
    Rotation.MeetingBooked: BOOKED,
    Rotation.MeetingReassigned: REASSIGNED,
    Rotation.MeetingCancelled: CANCELLED,
    Rotation.MeetingMarkedNoShow: NO_SHOW,
    Rotation.MeetingRescheduled: RESCHEDULED,
}
# A member's state in the availability lanes.
AVAILABLE = "available"
UNAVAILABLE = "unavailable"
CAPPED = "capped"

Ineligible = Callable[[list[str], int], Mapping[str, str]]
"""Who of these members could not host once the event at this position was stored."""


@dataclass(frozen=True)
class Step:
    """One event of the rotation and what the rule read of the state it left."""

    position: int
    version: int
    at: datetime  # the event's time in the domain (its `at`; else the previous event's)
    type: str
    summary: str
    counts: dict[str, int]  # meetings that count then (the rule's meetings(m)), per member
    totals: dict[str, int]  # meetings given in all (bookings and reassignments to them)
    available: dict[str, bool]
    reset: bool = False
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    host: str | None = None  # the meeting's host after a meeting event
    suggested: str | None = None  # bookings and reassignments
    override: bool = False
    credits: dict[str, int] = field(default_factory=dict)  # credits that count then
    capped: dict[str, bool] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    kind: str | None = None  # booked, reassigned, cancelled, no_show, rescheduled, credit
    meeting_id: str | None = None
    previous_host: str | None = None  # reassignments: who had it
    credited: str | None = None  # credits: who
    credit: int = 0
    levelling: bool = False  # a credit the service gave (on_join / on_return: level)
    window: tuple[datetime, datetime] | None = None  # the window the counts are in

    def status(self, member: str) -> str | None:
        """available, unavailable or capped; None when not a member then."""
        if member not in self.available:
            return None
        if not self.available[member]:
            return UNAVAILABLE
        return CAPPED if self.capped.get(member) else AVAILABLE


@dataclass(frozen=True)
class PeriodStart:
    """A window or cap period began between two events: what the rule reads there (counts
    start again in a new window; a member capped in the last cap period may host again)."""

    at: datetime
    counts: dict[str, int]
    capped: dict[str, bool]
    window: bool  # a new window (else only a new cap period)


@dataclass(frozen=True)
class WindowFairness:
    """The contract's fairness summary of one window (day, week or month of the policy's
    zone), read at its last event; and what happened in it."""

    window: str  # day, week or month
    start: datetime
    end: datetime
    fairness: RuleFairness
    loads: dict[str, int]  # meetings + credits of each member counted (available, eligible)
    bookings: int = 0
    overrides: int = 0
    cancellations: int = 0
    reassignments: int = 0
    credits: int = 0
    current: bool = False  # the window the last event is in (still open)


@dataclass(frozen=True)
class Fairness:
    """How even the counts are now (since the last reset, or in the current window), among
    the current members; `rule` is the contract's summary over those who can host."""

    since: datetime | None
    counts: dict[str, int]
    spread: int
    fewest: list[str]
    most: list[str]
    bookings: int
    overrides: int
    unavailable: list[str]
    rule: RuleFairness = field(default_factory=lambda: RuleFairness(0, None, Fraction(0)))
    window: tuple[datetime, datetime] | None = None  # the current window, if windowed
    credits: dict[str, int] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if not self.counts:
            return "no members"
        if self.spread <= 1:
            return "balanced"
        return "uneven"


@dataclass(frozen=True)
class MemberNow:
    """A current member's options and standing at the last event."""

    weight: int
    priority: int
    cap: dict[str, Any] | None  # the cap in force
    own_cap: bool  # the member's own cap (else the policy's, or none)
    capped: bool
    meetings: int
    credits: int


@dataclass(frozen=True)
class RotationReport:
    rotation_id: str
    name: str
    deleted: bool
    generated_at: datetime
    steps: list[Step]
    members: list[str]  # current members in join order
    everyone: list[str]  # every member the rotation ever had, in order of first joining
    last_assigned: dict[str, datetime | None] = field(default_factory=dict)
    joined_at: dict[str, datetime] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    now: dict[str, MemberNow] = field(default_factory=dict)
    period_starts: list[PeriodStart] = field(default_factory=list)
    windows: list[WindowFairness] = field(default_factory=list)
    rule: RuleFairness = field(default_factory=lambda: RuleFairness(0, None, Fraction(0)))

    @property
    def fairness(self) -> Fairness:
        last = self.steps[-1]
        since_reset: list[Step] = []
        for step in reversed(self.steps):
            if step.reset:
                break
            if last.window is not None and step.window != last.window:
                break
            since_reset.append(step)
        resets = [s for s in self.steps if s.reset]
        counts = {m: last.counts.get(m, 0) for m in self.members}
        low = min(counts.values(), default=0)
        high = max(counts.values(), default=0)
        return Fairness(
            since=resets[-1].at if resets else None,
            counts=counts,
            spread=high - low,
            fewest=[m for m, n in counts.items() if n == low],
            most=[m for m, n in counts.items() if n == high],
            bookings=sum(1 for s in since_reset if s.kind == BOOKED),
            overrides=sum(1 for s in since_reset if s.override),
            unavailable=[m for m in self.members if not last.available.get(m, True)],
            rule=self.rule,
            window=last.window,
            credits={m: last.credits.get(m, 0) for m in self.members},
        )

    @property
    def overrides(self) -> list[Step]:
        return [s for s in self.steps if s.override]

    @property
    def resets(self) -> list[Step]:
        return [s for s in self.steps if s.reset]

    def of_kind(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    @property
    def window_starts(self) -> list[PeriodStart]:
        return [p for p in self.period_starts if p.window]


# -- folding the events --------------------------------------------------------------------------


def build_report(app: EventSource, rotation_id: str, now: datetime | None = None) -> RotationReport:
    """Read the rotation's events from the store and fold them into a report; eligibility
    (for fairness) from the directory's events when the store has them."""
    events, positions = history(app, rotation_uuid(rotation_id))
    if not events:
        raise UnknownRotation(f"no rotation {rotation_id!r} in the store")
    ineligible = DirectoryHistory(app).ineligible_before if isinstance(app, AuditSource) else None
    return report_of(
        fold_steps(events, positions),
        rotation_id,
        now or datetime.now(UTC),
        None if ineligible is None else lambda members, p: ineligible(members, p + 1),
    )


@dataclass
class _Period:
    """The window period being read (its kind and slots) and what happened in it so far."""

    key: tuple[str, int, int]
    last: Folded
    moment: datetime
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, step: Step) -> None:
        for name, happened in (
            ("bookings", step.kind == BOOKED),
            ("overrides", step.override),
            ("cancellations", step.kind == CANCELLED),
            ("reassignments", step.kind == REASSIGNED),
            ("credits", step.kind == CREDIT),
        ):
            self.counts[name] = self.counts.get(name, 0) + int(happened)


class _Reader:
    """Folds the report step by step: what the standings say after each event, where
    windows start between events, and each window period's fairness."""

    def __init__(self, ineligible: Ineligible | None) -> None:
        self.ineligible = ineligible
        self.steps: list[Step] = []
        self.starts: list[PeriodStart] = []
        self.windows: list[WindowFairness] = []
        self.totals: dict[str, int] = {}
        self.everyone: dict[str, None] = {}
        self.rotation: Rotation | None = None
        self.moment: datetime | None = None
        self.period: _Period | None = None

    def read(self, fold_step: Folded, summary: str) -> None:
        event, previous = fold_step.event, self.rotation
        moment = _moment(event, self.moment)
        if previous is not None and self.moment is not None:
            self.starts += _period_starts(previous, self.moment, moment)
        self.rotation, self.moment = fold_step.state, moment
        self.everyone.update(dict.fromkeys(fold_step.joined))
        if (given := _given_to(event)) is not None:
            self.totals[given] = self.totals.get(given, 0) + 1
        context = fold_step.state.context(moment)
        standings = fold_step.state.standings(moment, context=context)
        window = None
        if context.window is not None:
            window = (slot_start(context.window[0]), slot_start(context.window[1]))
        step = _step(fold_step, summary, moment, standings, dict(self.totals), window)
        self.steps.append(step)
        key = None if context.window is None else (context.policy.window, *context.window)
        if self.period is not None and self.period.key != key:
            self._close(self.period, current=False)
            self.period = None
        if key is not None:
            if self.period is None:
                self.period = _Period(key, fold_step, moment)
            self.period.last, self.period.moment = fold_step, moment
            self.period.add(step)

    def standings_with_eligibility(self, fold_step: Folded, moment: datetime) -> list[Standing]:
        state = fold_step.state
        why = (
            {}
            if self.ineligible is None
            else self.ineligible(list(state.members), fold_step.position or 0)
        )
        return state.standings(moment, why)

    def _close(self, period: _Period, current: bool) -> None:
        standings = self.standings_with_eligibility(period.last, period.moment)
        self.windows.append(_window_row(period, standings, current))

    def finish(self) -> None:
        if self.period is not None:
            self._close(self.period, current=True)
            self.period = None


def report_of(
    folded: Iterable[Folded],
    rotation_id: str,
    now: datetime,
    ineligible: Ineligible | None = None,
) -> RotationReport:
    """The report of a rotation's fold (`events.fold.fold_steps`): it keeps what the
    aggregate's standings say after each event, never counts or decides itself."""
    reader = _Reader(ineligible)
    last: Folded | None = None
    for fold_step, entry in audit_entries(folded):
        reader.read(fold_step, entry.summary)
        last = fold_step
    if last is None or reader.moment is None:
        raise ValueError(f"no events to report for rotation {rotation_id!r}")
    reader.finish()
    rotation = last.state
    final = reader.standings_with_eligibility(last, reader.moment)
    return RotationReport(
        rotation_id=rotation_id,
        name=rotation.name,
        deleted=rotation.deleted,
        generated_at=now,
        steps=reader.steps,
        members=list(rotation.members),
        everyone=list(reader.everyone),
        last_assigned={m: r["last_assigned_at"] for m, r in rotation.members.items()},
        joined_at={m: r["joined_at"] for m, r in rotation.members.items()},
        policy=dict(rotation.policy),
        now={s.user_id: _member_now(rotation, s) for s in final},
        period_starts=reader.starts,
        windows=reader.windows,
        rule=fairness(final),
    )


def _moment(event: Any, previous: datetime | None) -> datetime:
    """The event's time in the domain: its `at`, else the previous event's (never earlier
    than that, so the chart runs forwards); the first event's timestamp if it has neither."""
    at = getattr(event, "at", None)
    if not isinstance(at, datetime):
        fallback: datetime = previous if previous is not None else event.timestamp
        return fallback
    return at if previous is None else max(previous, at)


def _given_to(event: Any) -> str | None:
    """Who was given a meeting (booked or reassigned to them): the 'in all' column."""
    if isinstance(event, Rotation.MeetingBooked | Rotation.MeetingReassigned):
        return event.host_id
    return None


MAX_PERIOD_STARTS = 2000  # a gap of years between two events under daily caps stays drawable


def _period_starts(state: Rotation, after: datetime, until: datetime) -> list[PeriodStart]:
    """Each start of a window or cap period in (after, until], with what the rule reads
    there of `state` (nothing happened in between)."""
    policy = state.context(after).policy
    window = None if policy.window == SINCE_RESET else policy.window
    pers = {s.cap["per"] for s in state.standings(after) if s.cap is not None}
    if window is not None:
        pers.add(window)
    moments: dict[datetime, bool] = {}
    for per in pers:
        moment = after
        while len(moments) < MAX_PERIOD_STARTS:
            moment = slot_start(period_slots(per, moment, policy.time_zone)[1])
            if moment > until:
                break
            moments[moment] = moments.get(moment, False) or per == window
    found = []
    for moment in sorted(moments):
        standings = state.standings(moment)
        found.append(
            PeriodStart(
                at=moment,
                counts={s.user_id: s.meetings for s in standings},
                capped={s.user_id: s.capped for s in standings},
                window=moments[moment],
            )
        )
    return found


def _step(
    fold_step: Folded,
    summary: str,
    moment: datetime,
    standings: list[Standing],
    totals: dict[str, int],
    window: tuple[datetime, datetime] | None,
) -> Step:
    event = fold_step.event
    return Step(
        position=fold_step.position or 0,
        version=event.originator_version,
        at=moment,
        type=type(event).__name__,
        summary=summary,
        counts={s.user_id: s.meetings for s in standings},
        totals=totals,
        available={s.user_id: s.available for s in standings},
        reset=fold_step.reset,
        joined=fold_step.joined,
        left=tuple(sorted(fold_step.left)),  # by name
        credits={s.user_id: s.credits for s in standings},
        capped={s.user_id: s.capped for s in standings},
        weights={s.user_id: s.weight for s in standings},
        window=window,
        **_what(event),
    )


def _what(event: Any) -> dict[str, Any]:
    """What the event did to a meeting or a member, for the chart's markers."""
    if isinstance(event, Rotation.MemberCredited):
        return {
            "kind": CREDIT,
            "credited": event.user_id,
            "credit": event.meetings,
            "levelling": event.kind in (LEVEL_JOIN, LEVEL_RETURN),
        }
    kind = _MEETING_KINDS.get(type(event))
    if kind is None:
        return {}
    facts = event.facts()
    found: dict[str, Any] = {"kind": kind, "host": facts["host_id"], "meeting_id": event.meeting_id}
    if isinstance(event, Rotation.MeetingBooked | Rotation.MeetingReassigned):
        found.update(suggested=event.suggested_host_id, override=event.override)
    if isinstance(event, Rotation.MeetingReassigned):
        found["previous_host"] = event.meeting["host_id"]
    return found


def _window_row(period: _Period, standings: list[Standing], current: bool) -> WindowFairness:
    kind, first, end = period.key
    return WindowFairness(
        window=kind,
        start=slot_start(first),
        end=slot_start(end),
        fairness=fairness(standings),
        loads={s.user_id: s.meetings + s.credits for s in standings if s.available and s.eligible},
        current=current,
        **period.counts,
    )


def _member_now(rotation: Rotation, standing: Standing) -> MemberNow:
    return MemberNow(
        weight=standing.weight,
        priority=standing.priority,
        cap=standing.cap,
        own_cap=rotation.members[standing.user_id]["cap"] is not None,
        capped=standing.capped,
        meetings=standing.meetings,
        credits=standing.credits,
    )


# -- the page ------------------------------------------------------------------------------------


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "never"


def _colours(report: RotationReport) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(report.everyone)}


def render_chart(report: RotationReport) -> str:
    """Inline SVG: the meetings that count per member over time (the rule's meetings(m)),
    with bookings, overrides, reassignments, cancellations, no-shows, reschedules and credits
    marked; resets and window starts as lines; availability and caps in lanes below."""
    steps = report.steps
    t0 = steps[0].at
    t1 = steps[-1].at
    if t1 - t0 < timedelta(milliseconds=1):
        t1 = t0 + timedelta(seconds=1)
    pad = (t1 - t0) * 0.02
    max_count = max([1, *(n for s in steps for n in s.counts.values())])
    scale = Scale(t0 - pad, t1 + pad, PLOT_TOP, max_count)
    colours = _colours(report)
    lanes_top = PLOT_TOP + PLOT_HEIGHT + 48
    height = lanes_top + LANE * len(report.everyone) + 16
    parts = [
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="Meetings that count per member of {esc(report.name)}">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde2e1"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#e15759" stroke-width="2"/></pattern>'
        '<pattern id="capped" width="6" height="6" patternUnits="userSpaceOnUse">'
        '<rect width="6" height="6" fill="#fff1dc"/><circle cx="3" cy="3" r="1.2" '
        'fill="#f28e2b"/></pattern></defs>',
    ]
    parts += _axes(report, scale, lanes_top)
    parts += _window_lines(report, scale, lanes_top)
    parts += _reset_lines(report, scale, lanes_top)
    parts += _series(report, scale, colours)
    parts += _lanes(report, scale, colours, lanes_top)
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(report: RotationReport, scale: Scale, lanes_top: int) -> list[str]:
    bottom = scale.top + PLOT_HEIGHT
    out = ['<g class="axes" font-size="11" fill="#555">']
    count_step = max(1, -(-scale.max_count // 6))
    for count in range(0, scale.max_count + 1, count_step):
        y = scale.y(count)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e6e6e6"/>'
            f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{count}</text>'
        )
    ticks = time_ticks(scale.t0, scale.t1)
    time_step = ticks[1] - ticks[0] if len(ticks) > 1 else scale.t1 - scale.t0
    for at in ticks:
        x = scale.x(at)
        out.append(
            f'<line class="tick" x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}" '
            f'stroke="#888"/><text x="{x}" y="{bottom + 18}" text-anchor="middle">'
            f"{esc(tick_label(at, time_step))}</text>"
        )
    counted = "meetings in the window" if report.windows else "meetings since reset"
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{scale.top}" y2="{bottom}" stroke="#888"/>'
        f'<text x="14" y="{scale.top + PLOT_HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {scale.top + PLOT_HEIGHT / 2})">{counted}</text>'
        f'<text x="{LEFT}" y="{lanes_top - 8}" font-weight="600">availability and caps</text>'
        f'<text x="{WIDTH - RIGHT}" y="{bottom + 32}" text-anchor="end">time (UTC)</text>'
    )
    out.append("</g>")
    return out


def _reset_lines(report: RotationReport, scale: Scale, lanes_top: int) -> list[str]:
    out = ['<g class="resets">']
    for step in report.resets:
        x = scale.x(step.at)
        label = "reset" + (f" +{', '.join(step.joined)}" if step.joined else "")
        out.append(
            f'<g class="reset"><line x1="{x}" x2="{x}" y1="{scale.top - 12}" '
            f'y2="{lanes_top - 20}" stroke="#999" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3}" y="{scale.top - 16}" font-size="10" fill="#666">'
            f"{esc(label)}</text><title>{esc(_time(step.at))}: {esc(step.summary)}</title></g>"
        )
    out.append("</g>")
    return out


MAX_WINDOW_LABELS = 16


def _window_lines(report: RotationReport, scale: Scale, lanes_top: int) -> list[str]:
    """A dotted line where each window began (the counts start again there)."""
    out = ['<g class="windows">']
    labelled = len(report.window_starts) <= MAX_WINDOW_LABELS
    for start in report.window_starts:
        x = scale.x(start.at)
        label = (
            f'<text x="{x + 3}" y="{scale.top - 4}" font-size="9" fill="#4e79a7">'
            f"{esc(start.at.astimezone(UTC).strftime('%m-%d'))}</text>"
            if labelled
            else ""
        )
        out.append(
            f'<g class="window"><line x1="{x}" x2="{x}" y1="{scale.top - 8}" '
            f'y2="{lanes_top - 20}" stroke="#9ab" stroke-dasharray="1 3"/>{label}'
            f"<title>a new window from {esc(_time(start.at))}</title></g>"
        )
    out.append("</g>")
    return out


@dataclass(frozen=True)
class _Point:
    at: datetime
    counts: dict[str, int]
    status: dict[str, str]  # available, unavailable or capped; absent: not a member


def _status(available: Mapping[str, bool], capped: Mapping[str, bool]) -> dict[str, str]:
    return {
        m: (CAPPED if capped.get(m) else AVAILABLE) if up else UNAVAILABLE
        for m, up in available.items()
    }


def _timeline(report: RotationReport) -> list[_Point]:
    """The events and the period starts between them, in time order."""
    points: list[_Point] = []
    starts = iter(report.period_starts)
    pending = next(starts, None)
    available: dict[str, bool] = {}
    for step in report.steps:
        while pending is not None and pending.at <= step.at:
            status = _status(available, pending.capped)
            points.append(_Point(pending.at, pending.counts, status))
            pending = next(starts, None)
        available = step.available
        points.append(_Point(step.at, step.counts, _status(step.available, step.capped)))
    return points


def _series(report: RotationReport, scale: Scale, colours: dict[str, str]) -> list[str]:
    out: list[str] = []
    end = report.steps[-1].at
    middle = (len(report.everyone) - 1) / 2
    # Members with equal counts would hide each other: each line sits a little apart.
    lifts = {m: round((i - middle) * -2.5, 2) for i, m in enumerate(report.everyone)}
    timeline = _timeline(report)
    for member in report.everyone:
        lift = lifts[member]
        path: list[str] = []
        previous: float | None = None
        for point in timeline:
            count = point.counts.get(member)
            x = scale.x(point.at)
            if count is None:
                previous = None
                continue
            y = round(scale.y(count) + lift, 2)
            path.append(f"M{x} {y}" if previous is None else f"H{x} V{y}")
            previous = y
        if previous is not None:
            path.append(f"H{scale.x(end)}")
        colour = colours[member]
        out.append(
            f'<g class="member" data-member="{esc(member)}">'
            f'<path class="series" d="{" ".join(path)}" fill="none" stroke="{colour}" '
            f'stroke-width="2.5" stroke-linejoin="round"><title>{esc(member)}</title></path>'
        )
        for step in report.steps:
            if member in (step.host, step.credited):
                y = round(scale.y(step.counts.get(member, 0)) + lift, 2)
                out.append(_marker(step, scale, member, colour, y, lifts))
        out.append("</g>")
    return out


# Marks that need only their place and colour (x, y; lo/hi and left/right 5 px either side).
_MARKS = {
    CANCELLED: '<path class="cancellation" d="M{left} {lo} L{right} {hi} M{left} {hi} '
    'L{right} {lo}" stroke="#222" stroke-width="2.5">{tip}</path>',
    NO_SHOW: '<circle class="no-show" cx="{x}" cy="{y}" r="4.5" fill="#fff" stroke="{c}" '
    'stroke-width="2" stroke-dasharray="2 1.5">{tip}</circle>',
    RESCHEDULED: '<rect class="reschedule" x="{left}" y="{lo}" width="10" height="10" '
    'fill="#fff" stroke="{c}" stroke-width="2">{tip}</rect>',
}


def _marker(
    step: Step, scale: Scale, member: str, colour: str, y: float, lifts: dict[str, float]
) -> str:
    """The mark of one event on its member's line (the line shows the count after it)."""
    x = scale.x(step.at)
    tip = f"<title>{esc(_time(step.at))}: {esc(step.summary)}</title>"
    if step.kind == CREDIT:
        up = step.credit > 0
        tip_y, sign = (y - 9, -1) if up else (y + 9, 1)
        level = " level" if step.levelling else ""
        return (
            f'<g class="credit{level}"><path d="M{x} {tip_y} L{x + 5} {y + 3 * sign} '
            f'L{x - 5} {y + 3 * sign} Z" fill="{"#fff" if step.levelling else colour}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{x + 6}" y="{tip_y + 3}" '
            f'font-size="10" fill="{colour}">{step.credit:+d}</text>{tip}</g>'
        )
    simple = _MARKS.get(step.kind or "")
    if simple is not None:
        near = {"lo": y - 5, "hi": y + 5, "left": x - 5, "right": x + 5}
        places = {k: round(v, 2) for k, v in near.items()}
        return simple.format(x=x, y=y, c=colour, tip=tip, **places)
    if step.kind == REASSIGNED:
        was = step.previous_host
        link = ""
        if was is not None and was in step.counts:
            from_y = round(scale.y(step.counts[was]) + lifts.get(was, 0), 2)
            link = (
                f'<line x1="{x}" x2="{x}" y1="{from_y}" y2="{y}" stroke="#555" '
                f'stroke-width="1.5" stroke-dasharray="3 2"/>'
            )
        override = ' stroke="#d62728"' if step.override else ' stroke="#222"'
        return (
            f'<g class="reassignment">{link}<path d="M{x - 5} {y - 6} L{x + 6} {y} '
            f'L{x - 5} {y + 6} Z" fill="{colour}"{override} stroke-width="1.5"/>{tip}</g>'
        )
    if step.override:
        return (
            f'<path class="override" d="M{x} {y - 7} L{x + 7} {y} L{x} {y + 7} '
            f'L{x - 7} {y} Z" fill="#fff" stroke="#d62728" stroke-width="2.5">{tip}</path>'
        )
    return f'<circle class="booking" cx="{x}" cy="{y}" r="3.5" fill="{colour}">{tip}</circle>'


def _lanes(
    report: RotationReport, scale: Scale, colours: dict[str, str], lanes_top: int
) -> list[str]:
    """One row per member: available, unavailable (hatched), or capped (dotted)."""
    out = ['<g class="lanes" font-size="11">']
    timeline = _timeline(report)
    end = scale.x(report.steps[-1].at)
    for row, member in enumerate(report.everyone):
        y = lanes_top + row * LANE
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 11}" text-anchor="end" fill="#333">{esc(member)}</text>'
        )
        state: str | None = None  # None: not a member
        since = 0.0
        since_at = timeline[0].at
        for point in [*timeline, None]:
            now = point.status.get(member) if point is not None else None
            x = scale.x(point.at) if point is not None else end
            if point is not None and now == state:
                continue
            until = point.at if point is not None else None
            if state is not None and x > since:
                out.append(_lane_bar(member, state, since, x, y, colours[member], since_at, until))
            state, since = now, x
            since_at = point.at if point is not None else since_at
    out.append("</g>")
    return out


def _lane_bar(
    member: str,
    state: str,
    x0: float,
    x1: float,
    y: int,
    colour: str,
    since: datetime,
    until: datetime | None,
) -> str:
    end = _time(until) if until is not None else "now"
    tip = f"<title>{esc(member)} {state} from {esc(_time(since))} to {esc(end)}</title>"
    width = round(x1 - x0, 2)
    if state == AVAILABLE:
        return (
            f'<rect class="available" x="{x0}" y="{y + 3}" width="{width}" '
            f'height="{LANE - 6}" fill="{colour}" opacity="0.35">{tip}</rect>'
        )
    if state == CAPPED:
        return (
            f'<rect class="capped" x="{x0}" y="{y + 1}" width="{width}" '
            f'height="{LANE - 2}" fill="url(#capped)" stroke="#f28e2b">{tip}</rect>'
        )
    return (
        f'<rect class="unavailable" x="{x0}" y="{y + 1}" width="{width}" '
        f'height="{LANE - 2}" fill="url(#hatch)" stroke="#e15759">{tip}</rect>'
    )


SCRIPT = """
(function () {
  var chart = document.getElementById("chart");
  document.querySelectorAll(".legend li").forEach(function (item) {
    item.addEventListener("click", function () {
      item.classList.toggle("off");
      var group = chart.querySelector('g.member[data-member="' + item.dataset.member + '"]');
      if (group) { group.style.display = item.classList.contains("off") ? "none" : ""; }
    });
  });
  chart.setAttribute("data-interactive", "true");
})();
"""


def render_html(report: RotationReport) -> str:
    """The whole page: no network access needed to view it."""
    fairness = report.fairness
    colours = _colours(report)
    last = report.steps[-1]
    title = f"Rotation audit: {report.name}"
    status = ' <span class="deleted">(deleted)</span>' if report.deleted else ""
    legend = "".join(
        f'<li data-member="{esc(m)}"><span class="swatch" style="background:{colours[m]}">'
        f"</span>{esc(m)} ({_legend_note(report, m)})</li>"
        for m in report.everyone
    )
    embedded = json.dumps(_data(report, fairness), ensure_ascii=False).replace("</", "<\\/")
    counted = "in each window" if report.windows else "since the last reset"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{esc(title)}{status}</h1>
<p class="meta">rotation id <code>{esc(report.rotation_id)}</code> · {len(report.steps)} events
 up to position {last.position} · generated {esc(_time(report.generated_at))}</p>
<p class="policy" id="policy">Policy: {esc(describe_policy(report.policy))}</p>

<h2>Fairness</h2>
<div class="cards">
 <div class="card {fairness.verdict}" id="verdict"><b>{esc(fairness.verdict)}</b>
  spread {fairness.spread} {_scope(fairness)}</div>
 <div class="card" id="deviation"><b>{esc(_fraction(fairness.rule.deviation))}</b>deviation
  ({fairness.rule.meetings} meetings + credits)</div>
 <div class="card"><b>{fairness.bookings}</b>meetings {_scope(fairness, short=True)}</div>
 <div class="card"><b>{fairness.overrides}</b>overrides {_scope(fairness, short=True)}</div>
 <div class="card"><b>{len(report.overrides)}</b>overrides in all</div>
 <div class="card"><b>{len(report.resets)}</b>resets</div>
 <div class="card"><b>{len(report.of_kind(CANCELLED))}</b>cancellations</div>
 <div class="card"><b>{len(report.of_kind(REASSIGNED))}</b>reassignments</div>
 <div class="card"><b>{len(report.of_kind(CREDIT))}</b>credits</div>
</div>
<p>{_fairness_sentence(fairness)}</p>
{_windows_table(report)}

<h2>Meetings that count per member ({counted})</h2>
<figure>
{render_chart(report)}
<ul class="legend">{legend}</ul>
<p class="key">Lines are the meetings that count for each member as the rule reads them
(cancelled meetings stop counting when cancelled; a reassigned one counts for its new host).
Dots are bookings, red diamonds overrides (a host other than the suggestion), arrowheads
reassignments (a dashed link from the host it left), crosses cancellations, dashed rings
no-shows, squares reschedules, triangles credits (filled: given by a manager; hollow: a
levelling credit the service gave; pointing down: taken back). Dashed lines are resets,
dotted lines the start of a new window. Lanes: available, hatched unavailable, dotted
capped. Click a name to hide or show its line.</p>
</figure>

<h2>Members now</h2>
{_members_table(report)}

<h2>Audit trail</h2>
{_audit_table(report)}

<script type="application/json" id="report-data">{embedded}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""


def _fraction(value: Fraction) -> str:
    """Exact, and a decimal beside it for reading (display only)."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator} ≈ {float(value):.3f}"


def _scope(fairness: Fairness, short: bool = False) -> str:
    if fairness.window is not None:
        start, end = fairness.window
        if short:
            return "in the current window"
        return f"in the current window ({esc(_time(start))} to {esc(_time(end))})"
    if short:
        return "since the reset"
    if fairness.since:
        return f"since the last reset at {esc(_time(fairness.since))}"
    return "since the rotation began"


def _legend_note(report: RotationReport, member: str) -> str:
    now = report.now.get(member)
    if now is None:
        return "left"
    note = f"{now.meetings}, weight {now.weight}"
    if now.cap is not None:
        note += f", cap {describe_cap(now.cap)}"
    return esc(note)


def _data(report: RotationReport, fairness: Fairness) -> dict[str, Any]:
    """What the page shows, as JSON for scripts (exact fractions as strings)."""
    return {
        "rotation_id": report.rotation_id,
        "name": report.name,
        "policy": report.policy,
        "fairness": {
            "since": _time(fairness.since) if fairness.since else None,
            "counts": fairness.counts,
            "credits": fairness.credits,
            "spread": fairness.spread,
            "verdict": fairness.verdict,
            "bookings": fairness.bookings,
            "overrides": fairness.overrides,
            "meetings": fairness.rule.meetings,
            "deviation": str(fairness.rule.deviation),
        },
        "windows": [
            {
                "window": w.window,
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "meetings": w.fairness.meetings,
                "spread": w.fairness.spread,
                "deviation": str(w.fairness.deviation),
                "loads": w.loads,
                "current": w.current,
            }
            for w in report.windows
        ],
        "steps": [
            {
                "position": s.position,
                "at": s.at.isoformat(),
                "type": s.type,
                "summary": s.summary,
                "counts": s.counts,
                "credits": s.credits,
                "capped": [m for m, capped in s.capped.items() if capped],
                "kind": s.kind,
                "reset": s.reset,
                "override": s.override,
            }
            for s in report.steps
        ],
    }


def _fairness_sentence(fairness: Fairness) -> str:
    if not fairness.counts:
        return "The rotation has no members."
    counts = ", ".join(f"{esc(m)} {n}" for m, n in fairness.counts.items())
    text = f"Meetings {_scope(fairness, short=True)}: {counts}."
    credited = {m: n for m, n in fairness.credits.items() if n}
    if credited:
        text += " Credits: " + ", ".join(f"{esc(m)} {n:+d}" for m, n in credited.items()) + "."
    if fairness.spread > 1:
        text += (
            f" {esc(', '.join(fairness.most))} hosted {fairness.spread} more than "
            f"{esc(', '.join(fairness.fewest))}"
            + (
                f"; {fairness.overrides} override(s) {_scope(fairness, short=True)} explain "
                "part of it."
                if fairness.overrides
                else "."
            )
        )
    rule = fairness.rule
    spread = "-" if rule.spread is None else str(rule.spread)
    text += (
        f" Among those who can host (weighted): {rule.meetings} meetings + credits, spread "
        f"{spread}, deviation {esc(_fraction(rule.deviation))}."
    )
    if fairness.unavailable:
        text += f" Unavailable now: {esc(', '.join(fairness.unavailable))}."
    return text


def _windows_table(report: RotationReport) -> str:
    """Per window period (day, week or month of the policy), the contract's fairness read
    at its last event, and what happened in it."""
    if not report.windows:
        return ""
    rows = []
    for w in report.windows:
        loads = ", ".join(f"{esc(m)} {n}" for m, n in w.loads.items())
        spread = "-" if w.fairness.spread is None else str(w.fairness.spread)
        current = " (current)" if w.current else ""
        rows.append(
            f'<tr class="{"row-current" if w.current else ""}"><td>{esc(w.window)}{current}</td>'
            f"<td class='time' title='to {esc(_time(w.end))}'>{esc(_time(w.start))}</td>"
            f"<td class='num'>{w.fairness.meetings}</td><td class='num'>{spread}</td>"
            f"<td class='num'>{esc(_fraction(w.fairness.deviation))}</td>"
            f"<td class='num'>{w.bookings}</td><td class='num'>{w.overrides}</td>"
            f"<td class='num'>{w.cancellations}</td><td class='num'>{w.reassignments}</td>"
            f"<td class='num'>{w.credits}</td><td>{loads}</td></tr>"
        )
    return (
        "<h3>Fairness per window</h3><p class='key'>Read at each window's last event, over "
        "the members who could host then: total meetings + credits, spread (most - fewest) "
        "and deviation (each member's distance from its weighted share, over the total).</p>"
        '<div class="scroll"><table id="windows"><thead><tr><th>window</th><th>from (UTC)</th>'
        "<th>total</th><th>spread</th><th>deviation</th><th>booked</th>"
        "<th>overrides</th><th>cancelled</th><th>reassigned</th><th>credits</th>"
        "<th>each</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _members_table(report: RotationReport) -> str:
    last = report.steps[-1]
    rows = []
    for m in report.members:
        now = report.now.get(m)
        if now is None:
            continue
        cap = describe_cap(now.cap) if now.cap is not None else "none"
        if now.cap is not None and not now.own_cap:
            cap += " (policy)"
        rows.append(
            f"<tr><td>{esc(m)}</td><td class='num'>{now.weight}</td>"
            f"<td class='num'>{now.priority}</td><td>{esc(cap)}</td>"
            f"<td>{'yes' if now.capped else 'no'}</td>"
            f"<td class='num'>{now.meetings}</td><td class='num'>{now.credits:+d}</td>"
            f"<td class='num'>{now.meetings + now.credits}/{now.weight}</td>"
            f"<td class='num'>{last.totals.get(m, 0)}</td>"
            f"<td class='time'>{esc(_time(report.last_assigned.get(m)))}</td>"
            f"<td>{'yes' if last.available.get(m, True) else 'no'}</td>"
            f"<td class='time'>{esc(_time(report.joined_at.get(m)))}</td></tr>"
        )
    counted = "in the window" if report.windows else "since reset"
    return (
        '<table id="members"><thead><tr><th>member</th><th>weight</th><th>priority</th>'
        f"<th>cap</th><th>capped</th><th>meetings {counted}</th><th>credits</th>"
        "<th>share (meetings + credits) / weight</th><th>given in all</th>"
        "<th>last assigned</th><th>available</th><th>joined</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _audit_table(report: RotationReport) -> str:
    rows = []
    for step in report.steps:
        kind = "row-override" if step.override else "row-reset" if step.reset else ""
        if step.kind in (CANCELLED, REASSIGNED):
            kind = f"row-{step.kind}"
        counts = ", ".join(_count_cell(step, m) for m in step.counts)
        rows.append(
            f'<tr class="{kind}"><td class="num">{step.position}</td>'
            f"<td class='time'>{esc(_time(step.at))}</td><td>{esc(step.type)}</td>"
            f"<td>{esc(step.summary)}</td><td>{counts}</td></tr>"
        )
    counted = "in the window" if report.windows else "since reset"
    return (
        '<table id="audit"><thead><tr><th>position</th><th>time (UTC)</th><th>event</th>'
        f"<th>what happened</th><th>meetings {counted} after it (credits)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _count_cell(step: Step, member: str) -> str:
    credits = step.credits.get(member, 0)
    extra = f" ({credits:+d})" if credits else ""
    capped = " capped" if step.capped.get(member) else ""
    return f"{esc(member)} {step.counts[member]}{extra}{capped}"
