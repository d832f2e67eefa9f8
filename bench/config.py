"""Sizes of a full and of a quick run (`--set NAME=VALUE` overrides any of them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    rounds: int
    """Rounds per figure; every figure is the median of its rounds."""
    commands: int
    """BookMeeting commands per round."""
    command_rotations: int
    window: int
    """Commands in flight (sent, reply not yet received)."""
    baseline_saves: int
    """app.save calls per round of the commands baseline."""
    latency_samples_1: int
    latency_samples_16: int
    history_events: int
    """Events of the long-history rotation (written directly into the store)."""
    history_samples: int
    history_v2_events: int
    """Events of the long-history rotation with a version-2 policy (written directly too)."""
    history_v2_days: int
    """Days of clock its bookings are spread over, ending now."""
    lifecycle_samples: int
    """Per round: meetings reassigned and cancelled of each age (booked long ago, just now)."""
    rebuild_events: int
    simulate_events: int
    """Events of the rotation simulated by the `simulate` group (its memory baseline: a
    rotation with a tenth of them)."""
    rss_small: int
    rss_large: int
    memory_rotations: int
    memory_sample: int
    idle_seconds: float
    idle_rounds: int
    tradeoff_rounds: int
    tradeoff_budget_seconds: float
    """Time per round and side spent sampling one fetch-wait setting."""
    ready_timeout: float
    """Seconds the service may take to start (it catches its read model up first)."""
    service_per_round: int
    """1: the commands figure on a store of its own, with a fresh service (fresh topics) per
    round; 0: the commands run on the seeded store's service, before the queries."""
    quiet_window: float
    quiet_windows: int
    """A started service is measured once it was quiet for this many windows in a row."""


FULL = Sizes(
    rounds=3,
    commands=20_000,
    command_rotations=100,
    window=1000,
    baseline_saves=3_000,
    latency_samples_1=1_000,
    latency_samples_16=4_000,
    history_events=1_000_000,
    history_samples=500,
    history_v2_events=1_000_000,
    history_v2_days=365,
    lifecycle_samples=100,
    rebuild_events=1_000_000,
    simulate_events=1_000_000,
    rss_small=100_000,
    rss_large=1_000_000,
    memory_rotations=100_000,
    memory_sample=5_000,
    idle_seconds=5.0,
    idle_rounds=3,
    tradeoff_rounds=3,
    tradeoff_budget_seconds=4.0,
    ready_timeout=3600.0,
    service_per_round=1,
    quiet_window=2.0,
    quiet_windows=3,
)

QUICK = Sizes(
    rounds=3,
    commands=500,
    command_rotations=100,
    window=1000,
    baseline_saves=300,
    latency_samples_1=60,
    latency_samples_16=160,
    history_events=1_500,
    history_samples=30,
    history_v2_events=1_500,
    history_v2_days=365,
    lifecycle_samples=6,
    rebuild_events=5_000,
    simulate_events=2_000,
    rss_small=500,
    rss_large=5_000,
    memory_rotations=1_000,
    memory_sample=200,
    idle_seconds=5.0,
    idle_rounds=1,
    tradeoff_rounds=1,
    tradeoff_budget_seconds=0.6,
    ready_timeout=300.0,
    service_per_round=0,
    quiet_window=1.0,
    quiet_windows=2,
)


def with_overrides(sizes: Sizes, overrides: list[str]) -> Sizes:
    """Apply NAME=VALUE overrides, keeping each field's type."""
    fields = {f.name: f for f in dataclasses.fields(sizes)}
    changes: dict[str, int | float] = {}
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set takes NAME=VALUE with NAME one of {', '.join(fields)}")
        current = getattr(sizes, name)
        changes[name] = float(raw) if isinstance(current, float) else int(raw.replace("_", ""))
    return dataclasses.replace(sizes, **changes)  # type: ignore[arg-type]
