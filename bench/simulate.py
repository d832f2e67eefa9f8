"""The `simulate` group (issue 15): a what-if simulation of a rotation with a long history
against the rebuild of the same rotation, and its peak RSS against a history a tenth as long.

On a store of its own: two policy rotations written directly (`bench.v2.seed_history_v2`,
the service's write path under a moving clock), one of `simulate_events` events and one of
a tenth of them. Each measurement is a child process of its own (`bench.child`), so its
peak RSS is its alone. No broker or service is involved.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from bench.infra import BenchStore, StoreKind, run_child, say
from bench.results import figure
from bench.runs import Run
from bench.seed import MEMBERS
from bench.v2 import WEIGHTS, seed_history_v2

DAYS = 365
"""Days of clock the seeded bookings are spread over, as the version-2 history's."""
WEIGHT_FACTOR = 3
"""The what-if: the first member's weight times this, from the first event on."""


async def simulate_figures(run: Run, kind: StoreKind) -> None:
    sizes = run.sizes
    say(f"[bold]simulate[/bold] on {kind}")
    large_events = sizes.simulate_events
    small_events = max(large_events // 10, len(MEMBERS) + 2)
    tag = uuid.uuid4().hex[:6]
    store = BenchStore.create(kind, run.workdir, "simulate")
    user, weight = MEMBERS[0], WEIGHTS[0] * WEIGHT_FACTOR
    rates: list[float] = []
    base_rates: list[float] = []
    large_rss: list[float] = []
    small_rss: list[float] = []
    try:
        large = await asyncio.to_thread(seed_history_v2, store.url, f"sim{tag}", large_events, DAYS)
        small = await asyncio.to_thread(
            seed_history_v2, store.url, f"sim{tag}s", small_events, DAYS, directory=False
        )

        async def child(mode: str, rotation_id: str) -> dict[str, Any]:
            extra = [user, str(weight)] if mode == "simulate" else []
            return await asyncio.to_thread(run_child, [mode, store.url, rotation_id, *extra])

        for r in range(sizes.rounds):
            base = await child("fold", large.long_rotation)
            ours = await child("simulate", large.long_rotation)
            tenth = await child("simulate", small.long_rotation)
            base_rates.append(base["events"] / base["seconds"])
            rates.append(ours["events"] / ours["seconds"])
            large_rss.append(ours["peak_rss_mb"])
            small_rss.append(tenth["peak_rss_mb"])
            say(
                f"  round {r + 1}: simulate {rates[-1]:,.0f} events/s "
                f"({ours['differing']:,} of {ours['decisions']:,} decisions differ), rebuild "
                f"{base_rates[-1]:,.0f} events/s; peak RSS {large_rss[-1]:.0f} MB at "
                f"{ours['events']:,} events, {small_rss[-1]:.0f} MB at {tenth['events']:,}"
            )
    finally:
        await asyncio.to_thread(store.destroy)
    what_if = f"{user}'s weight {WEIGHTS[0]} -> {weight} from the start"
    run.add(
        figure(
            "simulate_events_per_s",
            kind,
            rates,
            base_rates,
            f"projections.simulation.simulate ({what_if}) of a policy rotation with "
            f"{large_events:,} events (bookings over {DAYS} days, written directly into the "
            "store); baseline: the same rotation's events, a page at a time, folded through "
            "its mutators; each in a child process",
        )
    )
    run.add(
        figure(
            "simulate_peak_rss",
            kind,
            large_rss,
            small_rss,
            f"peak RSS (VmHWM) of a simulation child process: {large_events:,} vs "
            f"{small_events:,} events",
        )
    )
