"""The version-2 rounds: commands with a policy (against version 1's in the same run), the
answer and the size of a long history with windows and caps on, and the meeting lifecycle
on a meeting booked a history ago (against one booked a moment ago)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.commands import command_rotation_ids, create_rotations
from bench.infra import BenchStore, ServiceRunner, StoreKind, say
from bench.latency import history_medians, suggest_request
from bench.results import figure, percentile
from bench.runs import WARMUP, Run, command_rate, session
from bench.seed import ACTOR, seed_store
from bench.v2 import (
    POLICY,
    WEIGHTS,
    SeededV2,
    month_spread,
    old_meeting,
    seed_history_v2,
    view_row_bytes,
)
from service.client import RotationsClient

V1, V2 = "v1", "v2"
LIFECYCLE_WARMUP = 3


# -- commands with a policy --------------------------------------------------------------


async def variant_rotations(
    run: Run, service: ServiceRunner, client: RotationsClient, variant: str
) -> list[str]:
    """The rounds' rotations: version 1's (10 members, no policy) or version 2's (the
    policy, the members weighted 50 to 500)."""
    ids = command_rotation_ids(f"{variant}{uuid.uuid4().hex[:6]}", run.sizes.command_rotations)
    policy, weights = (POLICY, WEIGHTS) if variant == V2 else (None, ())
    work = create_rotations(client, ids, run.sizes.window, policy, weights)
    await service.watch(work, 600, "creating")
    return ids


async def variant_rate(
    run: Run, service: ServiceRunner, ids: list[str], variant: str, r: int
) -> float:
    """One round of bookings; version 2's carry starts spread over this month."""
    starts_at = month_spread(datetime.now(UTC)) if variant == V2 else None
    work = command_rate(run, service, ids, r, starts_at, f" ({variant})")
    return await service.watch(work, 3600, f"cmds {variant}")


def policy_result(
    run: Run, kind: str, rates: dict[str, list[float]], interleaved: bool = True
) -> None:
    sizes = run.sizes
    run.add(
        figure(
            "commands_policy_per_s",
            kind,
            rates[V2],
            rates[V1],
            f"{sizes.commands:,} BookMeeting (auto-assign) per round over "
            f"{sizes.command_rotations} rotations of 10 members created with the policy "
            f"{POLICY}, the members weighted {WEIGHTS[0]} to {WEIGHTS[-1]}, each booking with "
            f"a starts_at spread over this month; baseline: as many rounds on rotations "
            "without a policy (version 1), bookings without a start, in the same run, "
            + (
                "alternating which goes first"
                if interleaved
                else "the commands figure's rounds on the same service, just before"
            )
            + (", a fresh service (topics) per round" if sizes.service_per_round else ""),
        )
    )


def order_of(r: int) -> tuple[str, str]:
    return (V1, V2) if r % 2 == 0 else (V2, V1)


async def policy_figure(run: Run, kind: StoreKind) -> None:
    """Full runs: a store holding the directory's users, and a fresh service (topics) for
    each round of each kind (the embedded broker's fetches slow down as a topic grows)."""
    say(f"[bold]commands with a version-2 policy[/bold] on {kind}")
    store = BenchStore.create(kind, run.workdir, "policy")
    rates: dict[str, list[float]] = {V1: [], V2: []}
    try:
        await asyncio.to_thread(seed_store, store.url, "policy")
        for r in range(run.sizes.rounds):
            for variant in order_of(r):
                async with session(run, kind, store, f"policy-{variant}") as (service, client):
                    ids = await variant_rotations(run, service, client, variant)
                    rates[variant].append(await variant_rate(run, service, ids, variant, r))
    finally:
        await asyncio.to_thread(store.destroy)
    policy_result(run, kind, rates)


async def policy_in_session(
    run: Run,
    kind: str,
    service: ServiceRunner,
    client: RotationsClient,
    v1_rates: list[float] | None = None,
) -> None:
    """Quick runs, on one service: version 2's rounds against `v1_rates` (the commands
    figure's rounds, just measured on this service), or without them both kinds of rounds,
    alternating."""
    say(f"[bold]commands with a version-2 policy[/bold] on {kind}")
    variants = (V2,) if v1_rates is not None else (V1, V2)
    ids = {v: await variant_rotations(run, service, client, v) for v in variants}
    rates: dict[str, list[float]] = {V1: list(v1_rates or []), V2: []}
    for r in range(run.sizes.rounds):
        for variant in order_of(r):
            if variant in ids:
                rates[variant].append(await variant_rate(run, service, ids[variant], variant, r))
    policy_result(run, kind, rates, interleaved=v1_rates is None)


# -- a long history with windows and caps, and the lifecycle -----------------------------


async def history_v2_store(run: Run, kind: StoreKind) -> None:
    """Full runs: the policy rotations on a store and service of their own."""
    store = BenchStore.create(kind, run.workdir, "history-v2")
    try:
        seeded = await asyncio.to_thread(
            seed_history_v2,
            store.url,
            uuid.uuid4().hex[:6],
            run.sizes.history_v2_events,
            run.sizes.history_v2_days,
        )
        async with session(run, kind, store, "history-v2") as (service, client):
            await history_v2_rounds(run, kind, service, client, store, seeded)
    finally:
        await asyncio.to_thread(store.destroy)


async def history_v2_rounds(
    run: Run,
    kind: str,
    service: ServiceRunner,
    client: RotationsClient,
    store: BenchStore,
    seeded: SeededV2,
) -> None:
    run.stores[kind]["history_v2"] = dataclasses.asdict(seeded)
    if "history_v2" in run.groups:
        say(f"[bold]history with a version-2 policy[/bold] on {kind}")
        await service.watch(history_v2_figures(run, kind, client, store, seeded), 3600, "history")
    if "lifecycle" in run.groups:
        say(f"[bold]lifecycle[/bold] on {kind}")
        await service.watch(lifecycle_figures(run, kind, client, seeded), 3600, "lifecycle")


def _about(seeded: SeededV2) -> str:
    return (
        f"a rotation with {seeded.long_events:,} events under the policy {POLICY} (members "
        f"weighted {WEIGHTS[0]} to {WEIGHTS[-1]}; bookings written directly into the store with "
        "RotationsApplication.execute_batch and a moving clock, booked from "
        f"{seeded.first_booked_at} to {seeded.last_booked_at}, each starting an hour to 30 "
        "days later)"
    )


async def history_v2_figures(
    run: Run, kind: str, client: RotationsClient, store: BenchStore, seeded: SeededV2
) -> None:
    sizes = run.sizes
    request = suggest_request(client)
    long, short = seeded.long_rotation, seeded.short_rotation
    extra = {"starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    longs, shorts = await history_medians(
        request, long, short, sizes.rounds, sizes.history_samples, extra, WARMUP
    )
    run.add(
        figure(
            "suggest_history_v2_p50",
            kind,
            longs,
            shorts,
            f"{_about(seeded)} vs one with 10 events under the same policy; "
            f"{sizes.history_samples} interleaved requests each per round, each for a meeting "
            "starting in a day",
        )
    )
    first, last = seeded.checkpoints[0], seeded.checkpoints[-1]
    run.add(
        figure(
            "history_v2_state_growth",
            kind,
            [last["state_bytes"]],
            [first["state_bytes"]],
            f"len of the aggregate's snapshot state after all {last['events']:,} events "
            f"({last['history_days']} days of bookings) vs after {first['events']:,} "
            f"({first['history_days']} days); every quarter: "
            + ", ".join(
                f"{c['events']:,} events {c['state_bytes']:,} bytes" for c in seeded.checkpoints
            ),
        )
    )
    run.add(
        figure(
            "history_v2_state_bytes",
            kind,
            [seeded.long_state_bytes],
            [seeded.short_state_bytes],
            "len of the snapshot state of the aggregate (Snapshot.take, the store's mapper, "
            f"no compression) of {_about(seeded)} vs the rotation with 10 events",
        )
    )
    rows = await asyncio.to_thread(view_row_bytes, store, [long, short])
    run.add(
        figure(
            "history_v2_view_row_bytes",
            kind,
            [rows[long]],
            [rows[short]],
            "len of the state of each rotation's row in the service's read model (its "
            "view table, after the suggestion rounds): the long history vs 10 events",
        )
    )


async def _timed(client: RotationsClient, command: dict[str, Any]) -> float:
    """Milliseconds until an accepted reply; a refusal ends the run."""
    started = time.perf_counter()
    reply = await client.command(command, timeout=60.0)
    elapsed = (time.perf_counter() - started) * 1000
    if reply.get("status") != "accepted":
        raise RuntimeError(f"{command['type']} {command['meeting_id']} refused: {reply}")
    return elapsed


def _lifecycle(kind: str, rotation_id: str, meeting_id: str) -> dict[str, Any]:
    command: dict[str, Any] = {
        "type": kind,
        "command_id": uuid.uuid4().hex,
        "rotation_id": rotation_id,
        "actor": ACTOR,
        "meeting_id": meeting_id,
    }
    if kind == "BookMeeting":
        command["record"] = {"type": "deal", "id": meeting_id}
        command["starts_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    elif kind == "CancelMeeting":
        command["reason"] = "benchmark"
    return command


async def lifecycle_pairs(
    client: RotationsClient, rotation_id: str, olds: Sequence[str], tag: str
) -> dict[tuple[str, str], list[float]]:
    """For each old meeting: book a fresh one (untimed), then reassign both (to the current
    suggestion among the others) and cancel both, timing each, alternating which of the two
    goes first."""
    times: dict[tuple[str, str], list[float]] = {}
    for i, old in enumerate(olds):
        fresh = f"fresh-{tag}-{i}"
        await _timed(client, _lifecycle("BookMeeting", rotation_id, fresh))
        pair = [("old", old), ("new", fresh)]
        for kind in ("ReassignMeeting", "CancelMeeting"):
            for age, meeting_id in pair if i % 2 else reversed(pair):
                spent = await _timed(client, _lifecycle(kind, rotation_id, meeting_id))
                times.setdefault((kind, age), []).append(spent)
    return times


async def lifecycle_figures(run: Run, kind: str, client: RotationsClient, seeded: SeededV2) -> None:
    sizes = run.sizes
    rotation = seeded.long_rotation
    samples = sizes.lifecycle_samples
    olds = [old_meeting(i) for i in range(LIFECYCLE_WARMUP + sizes.rounds * samples)]
    tag = uuid.uuid4().hex[:6]
    await lifecycle_pairs(client, rotation, olds[:LIFECYCLE_WARMUP], f"{tag}-warmup")
    medians: dict[tuple[str, str], list[float]] = {}
    for r in range(sizes.rounds):
        first = LIFECYCLE_WARMUP + r * samples
        times = await lifecycle_pairs(client, rotation, olds[first : first + samples], f"{tag}-{r}")
        for key, found in times.items():
            medians.setdefault(key, []).append(percentile(found, 50))
        say(
            f"  round {r + 1}: reassign p50 {medians[('ReassignMeeting', 'old')][-1]:.1f} ms "
            f"(booked a history ago), {medians[('ReassignMeeting', 'new')][-1]:.1f} ms (just "
            f"now); cancel {medians[('CancelMeeting', 'old')][-1]:.1f} ms, "
            f"{medians[('CancelMeeting', 'new')][-1]:.1f} ms"
        )
    ago = seeded.long_events - (1 + len(WEIGHTS))
    for name, command in (("reassign", "ReassignMeeting"), ("cancel", "CancelMeeting")):
        run.add(
            figure(
                f"{name}_history_p50",
                kind,
                medians[(command, "old")],
                medians[(command, "new")],
                f"{command} through the service, one at a time, of the first bookings of "
                f"{_about(seeded)} (the first booked {ago:,} events before the rounds) vs of "
                f"a meeting booked just before in the same rotation; {samples} of each per "
                "round, interleaved"
                + (
                    " (reassigned to the current suggestion among the others)"
                    if name == "reassign"
                    else ""
                ),
            )
        )
