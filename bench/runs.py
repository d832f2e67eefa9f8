"""What every round of a run shares: the run itself, a started service, one commands round."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.commands import command_round
from bench.config import Sizes
from bench.infra import BenchStore, ServiceRunner, StoreKind, loadavg, say, test_runs
from bench.results import Figure
from service.client import RotationsClient

WARMUP = 10


@dataclass
class Run:
    """One benchmark run: its broker, work directory, sizes and what it found so far."""

    bootstrap: str
    workdir: Path
    sizes: Sizes
    groups: list[str]
    figures: list[Figure] = field(default_factory=list)
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, new: Figure) -> None:
        new.loadavg = loadavg()
        new.test_runs = test_runs()
        self.figures.append(new)
        say(
            f"[bold]{new.name}[/bold] ({new.store}): {new.value:,.2f} {new.spec.unit} vs "
            f"{new.baseline:,.2f} → {new.ratio:.2f}x (load {new.loadavg:.1f}, "
            f"{new.test_runs} pytest processes on the machine)"
        )


@contextlib.asynccontextmanager
async def session(
    run: Run, kind: StoreKind, store: BenchStore, label: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[ServiceRunner, RotationsClient]]:
    """The service on `store` with fresh topics and groups, started, ready and quiet; `env`:
    more of the service's environment (ROTATIONS_CIPHER_KEY)."""
    service = ServiceRunner(run.bootstrap, store.url, run.workdir, f"{kind[:2]}-{label}-")
    service.env.update(env or {})
    await service.start()
    client = service.client()
    await client.start()
    try:
        ready = await service.wait_ready(client, run.sizes.ready_timeout)
        quiet = await service.wait_quiet(
            run.sizes.ready_timeout, window=run.sizes.quiet_window, windows=run.sizes.quiet_windows
        )
        run.stores[kind].setdefault("service_starts", []).append(
            {"label": label, "ready_seconds": round(ready, 1), "quiet_seconds": round(quiet, 1)}
        )
        say(f"service ready after {ready:.1f}s, quiet {quiet:.1f}s later")
        yield service, client
    finally:
        await client.stop()
        service.stop()


async def command_rate(
    run: Run,
    service: ServiceRunner,
    ids: list[str],
    r: int,
    starts_at: Callable[[int], str] | None = None,
    label: str = "",
) -> float:
    """One round of BookMeeting commands through a fresh client (reply topic); `starts_at`
    gives the i-th booking's start (none: bookings without one, as version 1's)."""
    client = service.client()
    await client.start()
    try:
        cpu_before = service.cpu_seconds()
        rate, outcome = await command_round(
            client,
            ids,
            run.sizes.commands,
            run.sizes.window,
            f"{uuid.uuid4().hex[:6]}-{r}",
            starts_at,
        )
        cpu = service.cpu_seconds() - cpu_before
    finally:
        await client.stop()
    say(
        f"  round {r + 1}{label}: {outcome.accepted:,} accepted in {outcome.seconds:.2f}s, "
        f"{cpu / outcome.accepted * 1e6:,.0f} µs of service CPU per command"
    )
    return rate
