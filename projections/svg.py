"""The pieces both HTML pages draw with (the audit report, the what-if chart): the palette,
the plot's geometry and time scale, round time ticks and the page's style sheet."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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

WIDTH = 960
PLOT_TOP = 40
PLOT_HEIGHT = 300
LEFT = 56
RIGHT = 24
LANE = 18


@dataclass(frozen=True)
class Scale:
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


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


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


def time_ticks(t0: datetime, t1: datetime, most: int = 7) -> list[datetime]:
    """Round instants between t0 and t1: at most `most`, on a step a person would pick."""
    span = t1 - t0
    step = next((s for s in TICK_STEPS if span / s <= most), TICK_STEPS[-1])
    first = EPOCH + step * -(-(t0 - EPOCH) // step)
    ticks = []
    while first <= t1:
        ticks.append(first)
        first += step
    return ticks


def tick_label(at: datetime, step: timedelta) -> str:
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
tr.row-cancelled td { background: #f3f3f3; color: #555; }
tr.row-reassigned td { background: #f6f1fb; }
tr.row-current td { font-weight: 600; }
.policy { color: #444; font-size: 13px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.deleted { color: #c62828; font-weight: 600; }
figure { margin: 0; overflow-x: auto; } .scroll { overflow-x: auto; }
"""
