"""The audit report of one rotation: a self-contained HTML page from its events alone.

The rotation's events are folded by `events.fold` (the aggregate's own mutators, as every
reader folds them), and after every event the report keeps what a reviewer asks about: each
member's meetings since the last reset and in all, availability, resets and overrides. The
page has an inline SVG chart (no network, no external script), a fairness summary and the
audit table.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from events.errors import UnknownRotation
from events.fold import Step as Folded
from events.fold import fold_steps
from events.rotation import Rotation, rotation_uuid
from projections.ports import EventSource, history

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#6b6ecf",
)


@dataclass(frozen=True)
class Step:
    """One event of the rotation and the state it left."""

    position: int
    version: int
    at: datetime
    type: str
    summary: str
    counts: dict[str, int]  # meetings since the last reset, per member after the event
    totals: dict[str, int]  # meetings hosted in all, per member (past members too)
    available: dict[str, bool]
    reset: bool = False
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    host: str | None = None
    suggested: str | None = None
    override: bool = False


@dataclass(frozen=True)
class Fairness:
    """How even the counts are since the last reset, among the current members."""

    since: datetime | None
    counts: dict[str, int]
    spread: int
    fewest: list[str]
    most: list[str]
    bookings: int
    overrides: int
    unavailable: list[str]

    @property
    def verdict(self) -> str:
        if not self.counts:
            return "no members"
        if self.spread <= 1:
            return "balanced"
        return "uneven"


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

    @property
    def fairness(self) -> Fairness:
        last = self.steps[-1]
        since_reset: list[Step] = []
        for step in reversed(self.steps):
            if step.reset:
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
            bookings=sum(1 for s in since_reset if s.host is not None),
            overrides=sum(1 for s in since_reset if s.override),
            unavailable=[m for m in self.members if not last.available.get(m, True)],
        )

    @property
    def overrides(self) -> list[Step]:
        return [s for s in self.steps if s.override]

    @property
    def resets(self) -> list[Step]:
        return [s for s in self.steps if s.reset]


# -- folding the events --------------------------------------------------------------------------


def build_report(app: EventSource, rotation_id: str, now: datetime | None = None) -> RotationReport:
    """Read the rotation's events from the store and fold them into a report."""
    events, positions = history(app, rotation_uuid(rotation_id))
    if not events:
        raise UnknownRotation(f"no rotation {rotation_id!r} in the store")
    return report_of(fold_steps(events, positions), rotation_id, now or datetime.now(UTC))


def report_of(folded: Iterable[Folded], rotation_id: str, now: datetime) -> RotationReport:
    """The report of a rotation's fold (`events.fold.fold_steps`): it keeps, never decides."""
    steps: list[Step] = []
    totals: dict[str, int] = {}
    everyone: dict[str, None] = {}
    rotation: Rotation | None = None
    for fold_step in folded:
        rotation = fold_step.state
        members = rotation.members
        everyone.update(dict.fromkeys(fold_step.joined))
        booking = fold_step.booking
        if booking is not None:
            totals[booking.host_id] = totals.get(booking.host_id, 0) + 1
        steps.append(
            Step(
                position=fold_step.position or 0,
                version=fold_step.event.originator_version,
                at=fold_step.event.timestamp,
                type=type(fold_step.event).__name__,
                summary=describe(fold_step),
                counts={m: r["meetings"] for m, r in members.items()},
                totals={m: totals.get(m, 0) for m in everyone},
                available={m: r["available"] for m, r in members.items()},
                reset=fold_step.reset,
                joined=fold_step.joined,
                left=_left(fold_step),
                host=booking.host_id if booking else None,
                suggested=booking.suggested_host_id if booking else None,
                override=booking.override if booking else False,
            )
        )
    if rotation is None:
        raise ValueError(f"no events to report for rotation {rotation_id!r}")
    return RotationReport(
        rotation_id=rotation_id,
        name=rotation.name,
        deleted=rotation.deleted,
        generated_at=now,
        steps=steps,
        members=list(rotation.members),
        everyone=list(everyone),
        last_assigned={m: r["last_assigned_at"] for m, r in rotation.members.items()},
        joined_at={m: r["joined_at"] for m, r in rotation.members.items()},
    )


def _left(fold_step: Folded) -> tuple[str, ...]:
    """The report lists who left by name (the fold gives them in join order)."""
    return tuple(sorted(fold_step.left))


def describe(fold_step: Folded) -> str:
    """One line for the audit table."""
    render = _DESCRIBERS.get(type(fold_step.event))
    if render is not None:
        return render(fold_step.event)
    details = [f"+{m}" for m in fold_step.joined] + [f"-{m}" for m in _left(fold_step)]
    return f"{type(fold_step.event).__name__} {' '.join(details)}".strip()


def _created(event: Rotation.Created) -> str:
    who = ", ".join(event.members) if event.members else "no members"
    return f"created “{event.name}” with {who}"


def _availability(event: Rotation.AvailabilityToggled) -> str:
    state = "available again" if event.available else "unavailable"
    return f"{event.user_id} {state}"


def _booked(event: Rotation.MeetingBooked) -> str:
    record = event.record or {}
    what = f"meeting {event.meeting_id} ({record.get('type', '?')} {record.get('id', '?')})"
    if event.override:
        suggested = event.suggested_host_id or "nobody"
        return f"{what} hosted by {event.host_id}: override, {suggested} was suggested"
    return f"{what} assigned to {event.host_id} ({event.reason})"


def _renamed(event: Rotation.Renamed) -> str:
    return f"renamed to “{event.name}”"


def _member_added(event: Rotation.MemberAdded) -> str:
    return f"{event.user_id} joined: every count reset to 0"


def _member_removed(event: Rotation.MemberRemoved) -> str:
    return f"{event.user_id} left"


def _deleted(_: Rotation.Deleted) -> str:
    return "rotation deleted"


# Text per event kind; the rest (teams, kinds added later) are worded from the fold's change.
_DESCRIBERS: dict[type[Any], Callable[[Any], str]] = {
    Rotation.Created: _created,
    Rotation.Renamed: _renamed,
    Rotation.MemberAdded: _member_added,
    Rotation.MemberRemoved: _member_removed,
    Rotation.AvailabilityToggled: _availability,
    Rotation.MeetingBooked: _booked,
    Rotation.Deleted: _deleted,
}


# -- the page ------------------------------------------------------------------------------------

WIDTH = 960
PLOT_TOP = 40
PLOT_HEIGHT = 300
LEFT = 56
RIGHT = 24
LANE = 18


@dataclass(frozen=True)
class _Scale:
    t0: datetime
    t1: datetime
    top: int
    max_count: int

    @property
    def width(self) -> int:
        return WIDTH - LEFT - RIGHT

    def x(self, at: datetime) -> float:
        span = (self.t1 - self.t0).total_seconds()
        return round(LEFT + (at - self.t0).total_seconds() / span * self.width, 2)

    def y(self, count: int) -> float:
        return round(self.top + PLOT_HEIGHT - count / self.max_count * PLOT_HEIGHT, 2)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "never"


def _colours(report: RotationReport) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(report.everyone)}


TICK_STEPS = (
    [timedelta(milliseconds=n) for n in (1, 2, 5, 10, 20, 50, 100, 200, 500)]
    + [
        timedelta(seconds=n)
        for n in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
    ]
    + [timedelta(hours=12)]
    + [timedelta(days=n) for n in (1, 2, 7, 14, 30, 61, 91, 182, 365)]
)
EPOCH = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday: week ticks fall on Mondays


def _ticks(t0: datetime, t1: datetime, most: int = 7) -> list[datetime]:
    """Round instants between t0 and t1: at most `most`, on a step a person would pick."""
    span = t1 - t0
    step = next((s for s in TICK_STEPS if span / s <= most), TICK_STEPS[-1])
    first = EPOCH + step * -(-(t0 - EPOCH) // step)
    ticks = []
    while first <= t1:
        ticks.append(first)
        first += step
    return ticks


def _tick_label(at: datetime, step: timedelta) -> str:
    at = at.astimezone(UTC)
    if step >= timedelta(days=1):
        return at.strftime("%Y-%m-%d")
    if step >= timedelta(hours=1):
        return at.strftime("%m-%d %H:%M")
    if step >= timedelta(minutes=1):
        return at.strftime("%H:%M")
    if step >= timedelta(seconds=1):
        return at.strftime("%H:%M:%S")
    return at.strftime("%H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def render_chart(report: RotationReport) -> str:
    """Inline SVG: meetings since the last reset per member, resets, overrides, availability."""
    steps = report.steps
    t0 = steps[0].at
    t1 = steps[-1].at
    if t1 - t0 < timedelta(milliseconds=1):
        t1 = t0 + timedelta(seconds=1)
    pad = (t1 - t0) * 0.02
    max_count = max([1, *(n for s in steps for n in s.counts.values())])
    scale = _Scale(t0 - pad, t1 + pad, PLOT_TOP, max_count)
    colours = _colours(report)
    lanes_top = PLOT_TOP + PLOT_HEIGHT + 48
    height = lanes_top + LANE * len(report.everyone) + 16
    parts = [
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" '
        f'aria-label="Meetings since the last reset per member of {_esc(report.name)}">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fde2e1"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#e15759" stroke-width="2"/></pattern></defs>',
    ]
    parts += _axes(report, scale, lanes_top)
    parts += _reset_lines(report, scale, lanes_top)
    parts += _series(report, scale, colours)
    parts += _lanes(report, scale, colours, lanes_top)
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(report: RotationReport, scale: _Scale, lanes_top: int) -> list[str]:
    bottom = scale.top + PLOT_HEIGHT
    out = ['<g class="axes" font-size="11" fill="#555">']
    count_step = max(1, -(-scale.max_count // 6))
    for count in range(0, scale.max_count + 1, count_step):
        y = scale.y(count)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e6e6e6"/>'
            f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{count}</text>'
        )
    ticks = _ticks(scale.t0, scale.t1)
    time_step = ticks[1] - ticks[0] if len(ticks) > 1 else scale.t1 - scale.t0
    for at in ticks:
        x = scale.x(at)
        out.append(
            f'<line class="tick" x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}" '
            f'stroke="#888"/><text x="{x}" y="{bottom + 18}" text-anchor="middle">'
            f"{_esc(_tick_label(at, time_step))}</text>"
        )
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{scale.top}" y2="{bottom}" stroke="#888"/>'
        f'<text x="14" y="{scale.top + PLOT_HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {scale.top + PLOT_HEIGHT / 2})">meetings since reset</text>'
        f'<text x="{LEFT}" y="{lanes_top - 8}" font-weight="600">availability</text>'
        f'<text x="{WIDTH - RIGHT}" y="{bottom + 32}" text-anchor="end">time (UTC)</text>'
    )
    out.append("</g>")
    return out


def _reset_lines(report: RotationReport, scale: _Scale, lanes_top: int) -> list[str]:
    out = ['<g class="resets">']
    for step in report.resets:
        x = scale.x(step.at)
        label = "reset" + (f" +{', '.join(step.joined)}" if step.joined else "")
        out.append(
            f'<g class="reset"><line x1="{x}" x2="{x}" y1="{scale.top - 12}" '
            f'y2="{lanes_top - 20}" stroke="#999" stroke-dasharray="4 3"/>'
            f'<text x="{x + 3}" y="{scale.top - 16}" font-size="10" fill="#666">'
            f"{_esc(label)}</text><title>{_esc(_time(step.at))}: {_esc(step.summary)}</title></g>"
        )
    out.append("</g>")
    return out


def _series(report: RotationReport, scale: _Scale, colours: dict[str, str]) -> list[str]:
    out: list[str] = []
    end = report.steps[-1].at
    middle = (len(report.everyone) - 1) / 2
    for index, member in enumerate(report.everyone):
        # Members with equal counts would hide each other: each line sits a little apart.
        lift = round((index - middle) * -2.5, 2)
        path: list[str] = []
        previous: float | None = None
        for step in report.steps:
            count = step.counts.get(member)
            x = scale.x(step.at)
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
            f'<g class="member" data-member="{_esc(member)}">'
            f'<path class="series" d="{" ".join(path)}" fill="none" stroke="{colour}" '
            f'stroke-width="2.5" stroke-linejoin="round"><title>{_esc(member)}</title></path>'
        )
        for step in report.steps:
            if step.host != member:
                continue
            x, y = scale.x(step.at), round(scale.y(step.counts.get(member, 0)) + lift, 2)
            tip = f"<title>{_esc(_time(step.at))}: {_esc(step.summary)}</title>"
            if step.override:
                out.append(
                    f'<path class="override" d="M{x} {y - 7} L{x + 7} {y} L{x} {y + 7} '
                    f'L{x - 7} {y} Z" fill="#fff" stroke="#d62728" stroke-width="2.5">{tip}</path>'
                )
            else:
                out.append(
                    f'<circle class="booking" cx="{x}" cy="{y}" r="3.5" fill="{colour}">'
                    f"{tip}</circle>"
                )
        out.append("</g>")
    return out


def _lanes(
    report: RotationReport, scale: _Scale, colours: dict[str, str], lanes_top: int
) -> list[str]:
    """One row per member: present and available, present and unavailable (hatched)."""
    out = ['<g class="lanes" font-size="11">']
    steps = report.steps
    end = scale.x(steps[-1].at)
    for row, member in enumerate(report.everyone):
        y = lanes_top + row * LANE
        out.append(
            f'<text x="{LEFT - 8}" y="{y + 11}" text-anchor="end" fill="#333">{_esc(member)}</text>'
        )
        state: bool | None = None  # None: not a member
        since = 0.0
        since_at = steps[0].at
        for step in [*steps, None]:
            now = step.available.get(member) if step is not None else None
            x = scale.x(step.at) if step is not None else end
            if step is not None and now == state:
                continue
            if state is not None and x > since:
                out.append(_lane_bar(member, state, since, x, y, colours[member], since_at, step))
            state, since = now, x
            since_at = step.at if step is not None else since_at
    out.append("</g>")
    return out


def _lane_bar(
    member: str,
    available: bool,
    x0: float,
    x1: float,
    y: int,
    colour: str,
    since: datetime,
    until: Step | None,
) -> str:
    end = _time(until.at) if until is not None else "now"
    what = "available" if available else "unavailable"
    tip = f"<title>{_esc(member)} {what} from {_esc(_time(since))} to {_esc(end)}</title>"
    if available:
        return (
            f'<rect class="available" x="{x0}" y="{y + 3}" width="{round(x1 - x0, 2)}" '
            f'height="{LANE - 6}" fill="{colour}" opacity="0.35">{tip}</rect>'
        )
    return (
        f'<rect class="unavailable" x="{x0}" y="{y + 1}" width="{round(x1 - x0, 2)}" '
        f'height="{LANE - 2}" fill="url(#hatch)" stroke="#e15759">{tip}</rect>'
    )


STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #666; margin: 0 0 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card b { display: block; font-size: 20px; }
.balanced b { color: #2e7d32; } .uneven b { color: #c62828; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; margin: 6px 0 0; padding: 0;
          list-style: none; }
.legend li { cursor: pointer; user-select: none; } .legend li.off { opacity: .35; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
          margin-right: 5px; vertical-align: -1px; }
.key { color: #555; font-size: 12px; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #fafafa; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.row-override td { background: #fff3f3; } tr.row-reset td { background: #f4f8ff; }
.deleted { color: #c62828; font-weight: 600; }
figure { margin: 0; overflow-x: auto; }
"""

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
    since = (
        f"since the last reset at {_esc(_time(fairness.since))}"
        if fairness.since
        else "since the rotation began"
    )
    legend = "".join(
        f'<li data-member="{_esc(m)}"><span class="swatch" style="background:{colours[m]}">'
        f"</span>{_esc(m)} ({last.counts.get(m, 'left')})</li>"
        for m in report.everyone
    )
    data = {
        "rotation_id": report.rotation_id,
        "name": report.name,
        "fairness": {
            "since": _time(fairness.since) if fairness.since else None,
            "counts": fairness.counts,
            "spread": fairness.spread,
            "verdict": fairness.verdict,
            "bookings": fairness.bookings,
            "overrides": fairness.overrides,
        },
        "steps": [
            {
                "position": s.position,
                "at": s.at.isoformat(),
                "type": s.type,
                "summary": s.summary,
                "counts": s.counts,
                "reset": s.reset,
                "override": s.override,
            }
            for s in report.steps
        ],
    }
    embedded = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_esc(title)}{status}</h1>
<p class="meta">rotation id <code>{_esc(report.rotation_id)}</code> · {len(report.steps)} events
 up to position {last.position} · generated {_esc(_time(report.generated_at))}</p>

<h2>Fairness</h2>
<div class="cards">
 <div class="card {fairness.verdict}" id="verdict"><b>{_esc(fairness.verdict)}</b>
  spread {fairness.spread} {since}</div>
 <div class="card"><b>{fairness.bookings}</b>meetings since the reset</div>
 <div class="card"><b>{fairness.overrides}</b>overrides since the reset</div>
 <div class="card"><b>{len(report.overrides)}</b>overrides in all</div>
 <div class="card"><b>{len(report.resets)}</b>resets</div>
</div>
<p>{_fairness_sentence(fairness)}</p>

<h2>Meetings per member since the last reset</h2>
<figure>
{render_chart(report)}
<ul class="legend">{legend}</ul>
<p class="key">Dots are bookings, red diamonds overrides (a host other than the suggestion),
dashed lines resets (a member joined: every count goes back to 0). Hatched bars: unavailable.
Click a name to hide or show its line.</p>
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


def _fairness_sentence(fairness: Fairness) -> str:
    if not fairness.counts:
        return "The rotation has no members."
    counts = ", ".join(f"{_esc(m)} {n}" for m, n in fairness.counts.items())
    text = f"Meetings since the reset: {counts}."
    if fairness.spread > 1:
        text += (
            f" {_esc(', '.join(fairness.most))} hosted {fairness.spread} more than "
            f"{_esc(', '.join(fairness.fewest))}"
            + (
                f"; {fairness.overrides} override(s) since the reset explain part of it."
                if fairness.overrides
                else "."
            )
        )
    if fairness.unavailable:
        text += f" Unavailable now: {_esc(', '.join(fairness.unavailable))}."
    return text


def _members_table(report: RotationReport) -> str:
    last = report.steps[-1]
    rows = "".join(
        f"<tr><td>{_esc(m)}</td><td class='num'>{last.counts.get(m, 0)}</td>"
        f"<td class='num'>{last.totals.get(m, 0)}</td>"
        f"<td class='time'>{_esc(_time(report.last_assigned.get(m)))}</td>"
        f"<td>{'yes' if last.available.get(m, True) else 'no'}</td>"
        f"<td class='time'>{_esc(_time(report.joined_at.get(m)))}</td></tr>"
        for m in report.members
    )
    return (
        '<table id="members"><thead><tr><th>member</th><th>since reset</th><th>in all</th>'
        "<th>last assigned</th><th>available</th><th>joined</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _audit_table(report: RotationReport) -> str:
    rows = []
    for step in report.steps:
        kind = "row-override" if step.override else "row-reset" if step.reset else ""
        counts = ", ".join(f"{_esc(m)} {n}" for m, n in step.counts.items())
        rows.append(
            f'<tr class="{kind}"><td class="num">{step.position}</td>'
            f"<td class='time'>{_esc(_time(step.at))}</td><td>{_esc(step.type)}</td>"
            f"<td>{_esc(step.summary)}</td><td>{counts}</td></tr>"
        )
    return (
        '<table id="audit"><thead><tr><th>position</th><th>time (UTC)</th><th>event</th>'
        "<th>what happened</th><th>meetings since reset after it</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
