"""Figures, their targets, the results table and the JSON file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

WAITS_MS = (10, 100, 500)
"""The ROTATIONS_FETCH_MAX_WAIT_MS settings compared by the `tradeoff` group."""


@dataclass(frozen=True)
class Target:
    """What a figure should reach: on its ratio to the baseline, or on its value."""

    kind: Literal["ratio_at_least", "ratio_at_most", "value_below"]
    limit: float

    def met(self, value: float, ratio: float) -> bool:
        if self.kind == "ratio_at_least":
            return ratio >= self.limit
        if self.kind == "ratio_at_most":
            return ratio <= self.limit
        return value < self.limit

    def describe(self, unit: str) -> str:
        if self.kind == "ratio_at_least":
            return f"≥ {self.limit:g}x baseline"
        if self.kind == "ratio_at_most":
            return f"≤ {self.limit:g}x baseline"
        return f"< {self.limit:g} {unit}"


@dataclass(frozen=True)
class Spec:
    """A figure's definition: what is measured, against what, and the target if any."""

    name: str
    title: str
    unit: str
    baseline: str
    target: Target | None = None


def _tradeoff_specs() -> list[Spec]:
    specs = []
    for wait in WAITS_MS:
        specs.append(
            Spec(
                f"idle_cpu_wait_{wait}",
                f"idle CPU, fetch wait {wait} ms",
                "% core",
                f"raw aiokafka: 2 idle consumers, fetch wait {wait} ms",
            )
        )
        specs.append(
            Spec(
                f"suggest_p50_wait_{wait}",
                f"suggestion p50, fetch wait {wait} ms",
                "ms",
                f"raw aiokafka ping-pong p50, fetch wait {wait} ms",
            )
        )
    return specs


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in [
        Spec(
            "commands_per_s",
            "BookMeeting end to end (pipelined)",
            "cmd/s",
            "eventsourcing alone: one app.save per command, no Kafka",
            Target("ratio_at_least", 2.0),
        ),
        Spec(
            "commands_transport_share",
            "BookMeeting end to end, against the transport alone",
            "cmd/s",
            "raw aiokafka echo: the same rounds answered unread, nothing stored",
        ),
        Spec(
            "commands_encrypted_per_s",
            "BookMeeting end to end, events encrypted at rest",
            "cmd/s",
            "the same rounds with the events in clear (commands_per_s)",
        ),
        Spec("suggest_p50_1", "suggestion p50, 1 in flight", "ms", "raw aiokafka ping-pong p50"),
        Spec(
            "suggest_p99_1",
            "suggestion p99, 1 in flight",
            "ms",
            "raw aiokafka ping-pong p99",
            Target("ratio_at_most", 1.5),
        ),
        Spec("suggest_p50_16", "suggestion p50, 16 in flight", "ms", "raw aiokafka ping-pong p50"),
        Spec(
            "suggest_p99_16",
            "suggestion p99, 16 in flight",
            "ms",
            "raw aiokafka ping-pong p99",
            Target("ratio_at_most", 1.5),
        ),
        Spec(
            "suggest_history_p50",
            "suggestion p50, long-history rotation",
            "ms",
            "suggestion p50, rotation with 10 events",
            Target("ratio_at_most", 1.2),
        ),
        Spec(
            "rebuild_events_per_s",
            "read-model rebuild from position 0",
            "events/s",
            "eventsourcing alone: read + decode the notification log",
            Target("ratio_at_least", 0.5),
        ),
        Spec(
            "rebuild_peak_rss",
            "rebuild peak RSS, large store",
            "MB",
            "rebuild peak RSS at a tenth of the events",
            Target("ratio_at_most", 1.5),
        ),
        Spec(
            "simulate_events_per_s",
            "what-if simulation of one long rotation",
            "events/s",
            "the same rotation's rebuild: its events folded through the mutators",
            Target("ratio_at_least", 0.5),
        ),
        Spec(
            "simulate_peak_rss",
            "simulation peak RSS, long rotation",
            "MB",
            "simulation peak RSS at a tenth of the events",
            Target("ratio_at_most", 1.5),
        ),
        Spec(
            "service_rss",
            "service RSS, many rotations loaded",
            "MB",
            "service RSS on an empty store",
            Target("value_below", 1024),
        ),
        *_tradeoff_specs(),
        Spec(
            "commands_policy_per_s",
            "BookMeeting end to end, version-2 policy",
            "cmd/s",
            "the same rounds on version-1 rotations, interleaved in this run",
            Target("ratio_at_least", 0.8),
        ),
        Spec(
            "suggest_history_v2_p50",
            "suggestion p50, long history, version-2 policy",
            "ms",
            "suggestion p50, policy rotation with 10 events",
            Target("ratio_at_most", 1.2),
        ),
        Spec(
            "history_v2_state_growth",
            "aggregate size, whole history vs its first quarter",
            "bytes",
            "the same aggregate after a quarter of its bookings",
            Target("ratio_at_most", 1.2),
        ),
        Spec(
            "history_v2_state_bytes",
            "aggregate size (snapshot state), long history",
            "bytes",
            "aggregate size, policy rotation with 10 events",
        ),
        Spec(
            "history_v2_view_row_bytes",
            "read-model row size, long history",
            "bytes",
            "read-model row size, policy rotation with 10 events",
        ),
        Spec(
            "reassign_history_p50",
            "ReassignMeeting p50, meeting booked a history ago",
            "ms",
            "ReassignMeeting p50, meeting booked a moment ago (same rotation)",
            Target("ratio_at_most", 1.2),
        ),
        Spec(
            "cancel_history_p50",
            "CancelMeeting p50, meeting booked a history ago",
            "ms",
            "CancelMeeting p50, meeting booked a moment ago (same rotation)",
            Target("ratio_at_most", 1.2),
        ),
    ]
}

GROUPS: dict[str, list[str]] = {
    "commands": ["commands_per_s", "commands_transport_share", "commands_encrypted_per_s"],
    "suggest": ["suggest_p50_1", "suggest_p99_1", "suggest_p50_16", "suggest_p99_16"],
    "history": ["suggest_history_p50"],
    "rebuild": ["rebuild_events_per_s", "rebuild_peak_rss"],
    "simulate": ["simulate_events_per_s", "simulate_peak_rss"],
    "memory": ["service_rss"],
    "tradeoff": [s.name for s in _tradeoff_specs()],
    "policy": ["commands_policy_per_s"],
    "history_v2": [
        "suggest_history_v2_p50",
        "history_v2_state_growth",
        "history_v2_state_bytes",
        "history_v2_view_row_bytes",
    ],
    "lifecycle": ["reassign_history_p50", "cancel_history_p50"],
}


def expected_figures(groups: Sequence[str], stores: Sequence[str]) -> list[tuple[str, str]]:
    """Every (figure name, store) a run of these groups on these stores reports."""
    return [(name, store) for store in stores for group in groups for name in GROUPS[group]]


@dataclass
class Figure:
    """One line of the results: a median over rounds, its baseline's median, their ratio."""

    name: str
    store: str
    value: float
    baseline: float
    rounds: list[float] = field(default_factory=list)
    baseline_rounds: list[float] = field(default_factory=list)
    note: str = ""
    loadavg: float | None = None
    test_runs: int | None = None

    @property
    def spec(self) -> Spec:
        return SPECS[self.name]

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else math.inf

    @property
    def met(self) -> bool | None:
        target = self.spec.target
        return None if target is None else target.met(self.value, self.ratio)

    def as_json(self) -> dict[str, Any]:
        target = self.spec.target
        return {
            "name": self.name,
            "title": self.spec.title,
            "store": self.store,
            "unit": self.spec.unit,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_is": self.spec.baseline,
            "ratio": self.ratio,
            "target": None if target is None else target.describe(self.spec.unit),
            "target_kind": None if target is None else target.kind,
            "target_limit": None if target is None else target.limit,
            "met": self.met,
            "rounds": self.rounds,
            "baseline_rounds": self.baseline_rounds,
            "note": self.note,
            "loadavg_1min": self.loadavg,
            "pytest_processes": self.test_runs,
        }


def figure(
    name: str,
    store: str,
    rounds: Sequence[float],
    baseline_rounds: Sequence[float],
    note: str = "",
) -> Figure:
    """A figure from per-round values: medians of both sides."""
    return Figure(
        name,
        store,
        statistics.median(rounds),
        statistics.median(baseline_rounds),
        [float(r) for r in rounds],
        [float(r) for r in baseline_rounds],
        note,
    )


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fmt(value: float, unit: str) -> str:
    if unit in ("cmd/s", "events/s"):
        return f"{value:,.0f} {unit}"
    if unit in ("MB", "bytes"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.2f} {unit}"


def render(figures: Sequence[Figure], console: Console, title: str) -> None:
    table = Table(title=title)
    for column in ("figure", "store", "value", "baseline", "ratio", "target", "met"):
        table.add_column(column, justify="right" if column in ("value", "baseline") else "left")
    for f in figures:
        target = f.spec.target
        met = f.met
        table.add_row(
            f.name,
            f.store,
            fmt(f.value, f.spec.unit),
            fmt(f.baseline, f.spec.unit),
            f"{f.ratio:.2f}x",
            "—" if target is None else target.describe(f.spec.unit),
            "—" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]"),
        )
    console.print(table)


def write_json(path: Path, figures: Sequence[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**meta, "figures": [f.as_json() for f in figures]}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
