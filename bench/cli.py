"""`python -m bench`: runs the figures of issue 6 and prints them as ratios to baselines."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from eventsourcing.cryptography import AESCipher
from rich.console import Console

from bench.commands import baseline_rounds, command_rotation_ids, command_round, create_rotations
from bench.config import FULL, QUICK, with_overrides
from bench.infra import (
    BenchStore,
    RawKafkaChild,
    ServiceRunner,
    StoreKind,
    cpu_seconds,
    machine,
    postgres_reachable,
    postgres_version,
    run_child,
    say,
)
from bench.latency import RawPingPong, Request, closed_loop, history_medians, suggest_request
from bench.results import GROUPS, WAITS_MS, figure, percentile, render, write_json
from bench.rounds_v2 import history_v2_rounds, history_v2_store, policy_figure, policy_in_session
from bench.runs import WARMUP, Run, command_rate, session
from bench.seed import Seeded, memory_rotation_id, seed_store
from bench.simulate import simulate_figures
from bench.v2 import SeededV2, seed_history_v2
from service.client import RotationsClient
from service.embedded_broker import start_broker
from service.settings import Settings

BENCH_VIEW = "bench_view"
V2_HISTORY = {"history_v2", "lifecycle"}
"""The groups that need the long policy rotation (`bench.v2.seed_history_v2`)."""


# -- figure 1: commands ------------------------------------------------------------------


# -- figure 2: suggestion latency --------------------------------------------------------


async def latencies(
    request: Request, keys: Sequence[str], samples: int, in_flight: int, warmup: int = WARMUP
) -> list[float]:
    await closed_loop(request, keys, warmup, 1)
    return await closed_loop(request, keys, samples, in_flight)


async def suggest_figures(run: Run, kind: str, client: RotationsClient, keys: list[str]) -> None:
    sizes = run.sizes
    raw = RawPingPong(run.bootstrap, client.settings.fetch_max_wait_ms)
    await raw.start()
    service = suggest_request(client)
    found: dict[tuple[int, str], list[float]] = {}
    try:
        for r in range(sizes.rounds):
            for in_flight, samples in (
                (1, sizes.latency_samples_1),
                (16, sizes.latency_samples_16),
            ):
                base = await latencies(raw.request, keys, samples, in_flight)
                ours = await latencies(service, keys, samples, in_flight)
                for q in ("p50", "p99"):
                    found.setdefault((in_flight, f"base-{q}"), []).append(
                        percentile(base, float(q[1:]))
                    )
                    found.setdefault((in_flight, q), []).append(percentile(ours, float(q[1:])))
                p50, p99 = found[(in_flight, "p50")][-1], found[(in_flight, "p99")][-1]
                b50, b99 = found[(in_flight, "base-p50")][-1], found[(in_flight, "base-p99")][-1]
                say(
                    f"  round {r + 1}, {in_flight} in flight: p50 {p50:.1f} ms (raw {b50:.1f}), "
                    f"p99 {p99:.1f} ms (raw {b99:.1f})"
                )
    finally:
        await raw.stop()
    for in_flight, samples in ((1, sizes.latency_samples_1), (16, sizes.latency_samples_16)):
        for q in ("p50", "p99"):
            run.add(
                figure(
                    f"suggest_{q}_{in_flight}",
                    kind,
                    found[(in_flight, q)],
                    found[(in_flight, f"base-{q}")],
                    f"{samples:,} requests per round, fetch wait "
                    f"{client.settings.fetch_max_wait_ms} ms (service, client and baseline)",
                )
            )


async def history_figure(run: Run, kind: str, client: RotationsClient, seeded: Seeded) -> None:
    sizes = run.sizes
    request = suggest_request(client)
    assert seeded.history_rotation is not None and seeded.short_rotation is not None
    longs, shorts = await history_medians(
        request,
        seeded.history_rotation,
        seeded.short_rotation,
        sizes.rounds,
        sizes.history_samples,
        warmup=WARMUP,
    )
    run.add(
        figure(
            "suggest_history_p50",
            kind,
            longs,
            shorts,
            f"a rotation with {seeded.history_events:,} events (written directly into the store "
            "with RotationsApplication.execute_batch before the service started) vs one with "
            f"10 events; {sizes.history_samples} interleaved requests each per round",
        )
    )


# -- figure 3: rebuild -------------------------------------------------------------------


async def rebuild_figures(run: Run, kind: str, store: BenchStore, seeded: Seeded) -> None:
    sizes = run.sizes
    available = seeded.store_events
    events = min(sizes.rebuild_events, available)
    large = min(sizes.rss_large, available)
    small = min(sizes.rss_small, available)
    rates: list[float] = []
    base_rates: list[float] = []
    large_rss: list[float] = []
    small_rss: list[float] = []

    async def rebuild(n: int) -> dict[str, Any]:
        await asyncio.to_thread(store.drop_view, BENCH_VIEW)
        try:
            return await asyncio.to_thread(run_child, ["rebuild", store.url, str(n), BENCH_VIEW])
        finally:
            await asyncio.to_thread(store.drop_view, BENCH_VIEW)

    for r in range(sizes.rounds):
        base = await asyncio.to_thread(run_child, ["read", store.url, str(events)])
        ours = await rebuild(events)
        base_rates.append(base["events"] / base["seconds"])
        rates.append(ours["events"] / ours["seconds"])
        if large == events:
            large_rss.append(ours["peak_rss_mb"])
        say(
            f"  round {r + 1}: rebuild {rates[-1]:,.0f} events/s, read+decode "
            f"{base_rates[-1]:,.0f} events/s, peak RSS {ours['peak_rss_mb']:.0f} MB"
        )
    for r in range(sizes.rounds):
        small_rss.append((await rebuild(small))["peak_rss_mb"])
        if large != events:
            large_rss.append((await rebuild(large))["peak_rss_mb"])
        say(f"  round {r + 1}: peak RSS {small_rss[-1]:.0f} MB at {small:,} events")
    shortfall = f" (the store holds only {available:,})" if available < sizes.rebuild_events else ""
    run.add(
        figure(
            "rebuild_events_per_s",
            kind,
            rates,
            base_rates,
            f"RotationProjector from position 0 over {events:,} events{shortfall} into a fresh "
            "table, in a child process",
        )
    )
    run.add(
        figure(
            "rebuild_peak_rss",
            kind,
            large_rss,
            small_rss,
            f"peak RSS (VmHWM) of a rebuild child process: {large:,} vs {small:,} events",
        )
    )


# -- figure 4 and the latency trade-off --------------------------------------------------


async def rss_rounds(
    run: Run, service: ServiceRunner, client: RotationsClient, keys: Sequence[str]
) -> list[float]:
    """Per round: suggestions over a random sample of rotations, then the service's RSS."""
    found = []
    request = suggest_request(client)
    for _ in range(run.sizes.rounds):
        sample = random.sample(list(keys), min(run.sizes.memory_sample, len(keys)))
        await closed_loop(request, sample, len(sample), 16)
        found.append(service.rss_mb())
    return found


def samples_for(wait_ms: int, budget_seconds: float) -> int:
    return max(3, min(200, int(budget_seconds * 1000 / max(wait_ms, 10))))


async def small_store_services(
    run: Run, kind: StoreKind, loaded_rss: list[float] | None, memory_note: str
) -> None:
    """The trade-off services (one per fetch wait) on a nearly empty store; the first one's
    RSS is also the baseline of the memory figure."""
    sizes = run.sizes
    tradeoff = "tradeoff" in run.groups
    waits = WAITS_MS if tradeoff else WAITS_MS[:1]
    # One small store per service: services starting together on one fresh store would
    # race to create its tables.
    stores = [BenchStore.create(kind, run.workdir, f"small-wait{w}") for w in waits]
    for store in stores:
        await asyncio.to_thread(seed_store, store.url, "small")
    services = [
        ServiceRunner(run.bootstrap, store.url, run.workdir, f"{kind[:2]}-wait{w}-", w)
        for w, store in zip(waits, stores, strict=True)
    ]
    clients: list[RotationsClient] = []
    idles: list[RawKafkaChild] = []
    try:
        for service in services:
            await service.start()
            client = service.client()
            await client.start()
            clients.append(client)
        if tradeoff:
            tag = uuid.uuid4().hex[:6]
            idles = [
                RawKafkaChild(
                    run.bootstrap, w, [f"bench-idle{tag}-{w}.a", f"bench-idle{tag}-{w}.b"]
                )
                for w in waits
            ]
            for idle in idles:
                await idle.start(services[0].settings.partitions)
        await asyncio.gather(
            *(s.wait_ready(c, sizes.ready_timeout) for s, c in zip(services, clients, strict=True)),
            *(idle.wait_ready() for idle in idles),
        )
        keys = command_rotation_ids(f"small{uuid.uuid4().hex[:6]}", 10)
        for client in clients:
            await create_rotations(client, keys, sizes.window)
        empty_rss = await rss_rounds(run, services[0], clients[0], keys)
        if loaded_rss is not None:
            run.add(figure("service_rss", kind, loaded_rss, empty_rss, memory_note))
        if not tradeoff:
            return
        await asyncio.sleep(2.0)
        pids = [s.pid for s in services] + [i.pid for i in idles]
        cpu: dict[int, list[float]] = {pid: [] for pid in pids}
        for _ in range(sizes.idle_rounds):
            before = {pid: cpu_seconds(pid) for pid in pids}
            started = time.monotonic()
            await asyncio.sleep(sizes.idle_seconds)
            elapsed = time.monotonic() - started
            for pid in pids:
                cpu[pid].append((cpu_seconds(pid) - before[pid]) / elapsed * 100)
        for idle in idles:
            idle.stop()
        for wait, service, idle in zip(waits, services, idles, strict=True):
            run.add(
                figure(
                    f"idle_cpu_wait_{wait}",
                    kind,
                    cpu[service.pid],
                    cpu[idle.pid],
                    f"utime+stime over {sizes.idle_seconds:g}s idle, percent of one core",
                )
            )
        for wait, client in zip(waits, clients, strict=True):
            samples = samples_for(wait, sizes.tradeoff_budget_seconds)
            raw = RawPingPong(run.bootstrap, wait)
            await raw.start()
            ours: list[float] = []
            base: list[float] = []
            try:
                for _ in range(sizes.tradeoff_rounds):
                    base.append(percentile(await latencies(raw.request, keys, samples, 1, 2), 50))
                    ours.append(
                        percentile(
                            await latencies(suggest_request(client), keys, samples, 1, 2), 50
                        )
                    )
            finally:
                await raw.stop()
            run.add(
                figure(
                    f"suggest_p50_wait_{wait}",
                    kind,
                    ours,
                    base,
                    f"{samples} requests per round, one in flight; ROTATIONS_FETCH_MAX_WAIT_MS="
                    f"{wait} for the service and its client, the same wait for the baseline",
                )
            )
    finally:
        for idle in idles:
            idle.stop()
        for client in clients:
            await client.stop()
        for service in services:
            service.stop()
        for store in stores:
            await asyncio.to_thread(store.destroy)


# -- one store ---------------------------------------------------------------------------


async def run_store(run: Run, kind: StoreKind) -> None:
    sizes = run.sizes
    groups = set(run.groups)
    info: dict[str, Any] = run.stores.setdefault(kind, {})
    if "simulate" in groups:  # on a store of its own, no broker or service
        await simulate_figures(run, kind)
        groups.discard("simulate")
        if not groups:
            return
    store = BenchStore.create(kind, run.workdir, "main")
    info["store"] = store.url
    tag = uuid.uuid4().hex[:6]
    try:
        big = bool(groups & {"history", "rebuild", "memory"})
        seeded = await asyncio.to_thread(
            seed_store,
            store.url,
            tag,
            sizes.memory_rotations if big else 0,
            sizes.history_events if big else 0,
        )
        info["seeded"] = dataclasses.asdict(seeded)
        if "rebuild" in groups:
            say(f"[bold]rebuild[/bold] on {kind}")
            await rebuild_figures(run, kind, store, seeded)
        shared = not sizes.service_per_round  # quick runs: one service for all it can do
        seeded_v2 = None
        if shared and groups & V2_HISTORY:  # after the rebuild: it reads what was there
            seeded_v2 = await asyncio.to_thread(
                seed_history_v2,
                store.url,
                tag,
                sizes.history_v2_events,
                sizes.history_v2_days,
                directory=False,
            )
        if "commands" in groups and not shared:
            await commands_figure(run, kind)
        if "policy" in groups and not shared:
            await policy_figure(run, kind)
        loaded_rss: list[float] | None = None
        if groups & {"suggest", "history", "memory", "commands"} or (
            shared and groups & {"policy", *V2_HISTORY}
        ):
            loaded_rss = await queries_figures(run, kind, store, seeded, seeded_v2)
        if "commands" in groups:
            await encrypted_commands_figure(run, kind)
        if groups & {"memory", "tradeoff"}:
            say(f"services on a nearly empty {kind} store (trade-off, memory baseline)")
            memory_note = (
                f"{seeded.memory_rotations:,} rotations of 10 members (written directly into "
                f"the store; {seeded.store_events:,} stored events in all), "
                f"{sizes.memory_sample:,} suggestions over a random sample per round; "
                "baseline: the service on a store with 10 rotations"
            )
            await small_store_services(
                run, kind, loaded_rss if "memory" in groups else None, memory_note
            )
        if groups & V2_HISTORY and not shared:
            await history_v2_store(run, kind)
    finally:
        await asyncio.to_thread(store.destroy)


async def commands_baseline(run: Run, store: BenchStore) -> list[float]:
    """The library alone next to `store` (PostgreSQL: the same schema; SQLite: a file in
    the same directory), one app.save per command."""
    say("  baseline: eventsourcing alone, one app.save per command")
    baseline = await asyncio.to_thread(
        baseline_rounds,
        store.sibling(run.workdir, "commands-baseline"),
        run.sizes.rounds,
        run.sizes.baseline_saves,
    )
    say(f"  {', '.join(f'{b:,.0f}' for b in baseline)} saves/s")
    return baseline


async def commands_rates(
    run: Run, service: ServiceRunner, client: RotationsClient, rounds: Sequence[int]
) -> list[float]:
    """Create the rotations, then one rate per round (a fresh client, i.e. reply topic, each)."""
    sizes = run.sizes
    ids = command_rotation_ids(uuid.uuid4().hex[:6], sizes.command_rotations)
    await service.watch(create_rotations(client, ids, sizes.window), 600, "creating")
    return [await service.watch(command_rate(run, service, ids, r), 3600, "cmds") for r in rounds]


async def transport_rates(run: Run, settings: Settings) -> list[float]:
    """The same pipelined rounds answered unread by a raw aiokafka echo (same broker, client,
    partitions and fetch wait): the most commands per second the transport allows here."""
    tag = uuid.uuid4().hex[:6]
    echo_settings = settings.model_copy(update={"topic_prefix": f"bench-echo{tag}."})
    echo = RawKafkaChild(
        run.bootstrap, settings.fetch_max_wait_ms, [echo_settings.commands_topic], mode="echo"
    )
    await echo.start(settings.partitions)
    try:
        await echo.wait_ready()
        ids = command_rotation_ids(tag, run.sizes.command_rotations)
        rates = []
        for r in range(run.sizes.rounds):
            async with RotationsClient(echo_settings, timeout=120.0) as client:
                rate, _ = await command_round(
                    client, ids, run.sizes.commands, run.sizes.window, f"{tag}-{r}"
                )
            rates.append(rate)
        say(f"  transport alone: {', '.join(f'{r:,.0f}' for r in rates)} replies/s")
        return rates
    finally:
        echo.stop()


def commands_result(
    run: Run, kind: str, rates: list[float], baseline: list[float], transport: list[float]
) -> None:
    sizes = run.sizes
    run.add(
        figure(
            "commands_per_s",
            kind,
            rates,
            baseline,
            f"{sizes.commands:,} BookMeeting (auto-assign) per round over "
            f"{sizes.command_rotations} rotations of 10 members, {sizes.window} in flight"
            + (", a fresh store and service (topics) per round" if sizes.service_per_round else "")
            + f"; baseline: {sizes.baseline_saves:,} app.save calls per round, one event each",
        )
    )
    run.add(
        figure(
            "commands_transport_share",
            kind,
            rates,
            transport,
            "the commands figure against the same rounds answered by a raw aiokafka echo "
            "that reads nothing and stores nothing",
        )
    )


async def commands_figure(run: Run, kind: StoreKind) -> None:
    """Figure 1 in full runs: a fresh store holding only the directory's users, and a fresh
    service (topics) per round, as the embedded broker's fetches slow down as a topic grows."""
    sizes = run.sizes
    say(f"[bold]commands[/bold] on {kind}")
    store = BenchStore.create(kind, run.workdir, "commands")
    try:
        await asyncio.to_thread(seed_store, store.url, "commands")
        baseline = await commands_baseline(run, store)
        rates: list[float] = []
        for r in range(sizes.rounds):
            async with session(run, kind, store, "commands") as (service, client):
                rates += await commands_rates(run, service, client, [r])
        transport = await transport_rates(run, service.settings)
    finally:
        await asyncio.to_thread(store.destroy)
    commands_result(run, kind, rates, baseline, transport)


async def encrypted_commands_figure(run: Run, kind: StoreKind) -> None:
    """The commands figure again with the events encrypted at rest (a fresh store seeded with
    a new key, the service started with ROTATIONS_CIPHER_KEY), beside the plain one: rounds
    as the plain figure's (a fresh service per round in full runs)."""
    sizes = run.sizes
    plain = next(f for f in run.figures if f.name == "commands_per_s" and f.store == kind)
    say(f"[bold]commands, events encrypted[/bold] on {kind}")
    key = AESCipher.create_key(32)
    env = {"ROTATIONS_CIPHER_KEY": key}
    store = BenchStore.create(kind, run.workdir, "commands-encrypted")
    rates: list[float] = []
    try:
        await asyncio.to_thread(seed_store, store.url, "encrypted", cipher_key=key)
        if sizes.service_per_round:
            for r in range(sizes.rounds):
                async with session(run, kind, store, "encrypted", env) as (service, client):
                    rates += await commands_rates(run, service, client, [r])
        else:
            async with session(run, kind, store, "encrypted", env) as (service, client):
                rates = await commands_rates(run, service, client, range(sizes.rounds))
    finally:
        await asyncio.to_thread(store.destroy)
    run.add(
        figure(
            "commands_encrypted_per_s",
            kind,
            rates,
            plain.rounds,
            f"{sizes.commands:,} BookMeeting per round as commands_per_s, with every event, "
            "snapshot and view row encrypted (the library's AES-GCM cipher, a 256-bit key); "
            "baseline: the commands_per_s rounds, in clear",
        )
    )


async def queries_figures(
    run: Run, kind: StoreKind, store: BenchStore, seeded: Seeded, seeded_v2: SeededV2 | None
) -> list[float] | None:
    """The service on the seeded store: suggestions, history, memory (and in quick runs the
    commands, the policy rounds and the version-2 history too, saving service starts)."""
    groups = set(run.groups)
    with_commands = "commands" in groups and not run.sizes.service_per_round
    baseline = await commands_baseline(run, store) if with_commands else []
    rates: list[float] = []
    async with session(run, kind, store, "queries") as (service, client):
        if with_commands:
            say(f"[bold]commands[/bold] on {kind}")
            rates = await commands_rates(run, service, client, range(run.sizes.rounds))
            transport = await transport_rates(run, service.settings)
            commands_result(run, kind, rates, baseline, transport)
        if "policy" in groups and not run.sizes.service_per_round:
            await policy_in_session(run, kind, service, client, rates if with_commands else None)
        if "suggest" in groups:
            say(f"[bold]suggest[/bold] on {kind}")
            ids = command_rotation_ids(uuid.uuid4().hex[:6], run.sizes.command_rotations)
            await service.watch(create_rotations(client, ids, run.sizes.window), 600, "creating")
            await service.watch(suggest_figures(run, kind, client, ids), 3600, "suggestions")
        if "history" in groups:
            say(f"[bold]history[/bold] on {kind}")
            await service.watch(history_figure(run, kind, client, seeded), 3600, "history")
        if seeded_v2 is not None:
            await history_v2_rounds(run, kind, service, client, store, seeded_v2)
        if "memory" in groups:
            say(f"[bold]memory[/bold] on {kind}")
            keys = [memory_rotation_id(seeded.run, i) for i in range(seeded.memory_rotations)]
            return await service.watch(rss_rounds(run, service, client, keys), 3600, "memory")
        return None


# -- the command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark of the meeting-rotations service: every figure as a ratio to a "
        "baseline measured in the same run. Starts the embedded broker, the service (a child "
        "process per store) and the baselines itself.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (about 4 minutes)")
    parser.add_argument(
        "--store", choices=("sqlite", "postgresql", "both"), default="both", help="event store"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated groups to run, of: {', '.join(GROUPS)} (default: all)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a size (see bench/config.py), e.g. --set commands=5000",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    args.groups = [g for g in GROUPS if g in groups]
    try:
        args.sizes = with_overrides(QUICK if args.quick else FULL, args.set)
    except ValueError as error:
        parser.error(str(error))
    if args.json is None:
        args.json = Path(__file__).parent / f"results{'-quick' if args.quick else ''}.json"
    return args


async def run_all(run: Run, stores: list[StoreKind]) -> None:
    for kind in stores:
        say(f"[bold cyan]== {kind} ==[/bold cyan]")
        await run_store(run, kind)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    stores = cast(
        list[StoreKind], ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    )
    out = Console(width=None if sys.stdout.isatty() else 150)
    if "postgresql" in stores and not postgres_reachable():
        Console(stderr=True).print("[red]error:[/red] PostgreSQL is not reachable")
        raise SystemExit(2)
    workdir = Path(tempfile.mkdtemp(prefix="rotations-bench-"))
    started = time.monotonic()
    broker = start_broker(log_file=workdir / "tansu.log")
    run = Run(broker.bootstrap_servers, workdir, args.sizes, args.groups)
    say(f"broker at {broker.bootstrap_servers}, work directory {workdir}")
    error: BaseException | None = None
    try:
        asyncio.run(run_all(run, stores))
    except BaseException as caught:
        error = caught
    finally:
        broker.stop()
    meta: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "postgresql": postgres_version() if "postgresql" in stores else None,
        "groups": args.groups,
        "sizes": dataclasses.asdict(args.sizes),
        "stores": run.stores,
        "error": None if error is None else f"{type(error).__name__}: {error}",
    }
    render(run.figures, out, f"meeting rotations benchmark ({meta['mode']}, {meta['seconds']}s)")
    write_json(args.json, run.figures, meta)
    say(f"results written to {args.json}")
    if args.keep or error is not None:
        say(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if error is not None:
        if isinstance(error, KeyboardInterrupt):
            raise SystemExit(130)
        raise error
    summary = [f for f in run.figures if f.met is not None]
    say(f"{sum(1 for f in summary if f.met)} of {len(summary)} targets met")
