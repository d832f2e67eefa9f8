"""Figure 1: BookMeeting end to end, pipelined, against the library saving one event each
(and the same commands on rotations with a version-2 policy, `bench.rounds_v2`)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.seed import ACTOR, MEMBERS
from service.client import RotationsClient
from service.store import store_environment


class Tick(Aggregate):
    """The trivial aggregate of the baseline: one small event per command."""

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.ticks = 0

    @event("Ticked")
    def tick(self, n: int) -> None:
        self.ticks = n


class BaselineApp(Application[UUID]):
    """The eventsourcing library alone (PostgreSQL: its own table in the same schema)."""

    name = "BenchBaseline"
    env: ClassVar[dict[str, str]] = {"COMPRESSOR_TOPIC": ""}


def baseline_rounds(store_url: str, rounds: int, saves: int, aggregates: int = 100) -> list[float]:
    """Commands/s of `app.save` with one new event each, one transaction per command."""
    app = BaselineApp(env=store_environment(store_url))
    try:
        ticks = [Tick(name=f"t{i}") for i in range(aggregates)]
        app.save(*ticks)
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            for i in range(saves):
                tick = ticks[i % aggregates]
                tick.tick(n=i)
                app.save(tick)
            rates.append(saves / (time.perf_counter() - started))
        return rates
    finally:
        app.close()


@dataclass
class Outcome:
    accepted: int
    rejected: int
    seconds: float
    first_error: str | None = None


async def pipelined(
    client: RotationsClient,
    commands: Sequence[dict[str, Any]],
    window: int,
    timeout: float = 300.0,
) -> Outcome:
    """Send every command with at most `window` unanswered; time until the last reply."""
    slots = asyncio.Semaphore(window)
    accepted = rejected = 0
    first_error: str | None = None
    topic = client.settings.commands_topic

    async def one(command: dict[str, Any]) -> None:
        nonlocal accepted, rejected, first_error
        try:
            future = await client.send_raw(
                topic, json.dumps(command).encode(), key=command["rotation_id"]
            )
            reply = json.loads(await asyncio.wait_for(future, timeout))
            if reply.get("status") == "accepted":
                accepted += 1
            else:
                rejected += 1
                first_error = first_error or json.dumps(reply.get("error"))
        finally:
            slots.release()

    started = time.perf_counter()
    tasks = []
    for command in commands:
        await slots.acquire()
        tasks.append(asyncio.create_task(one(command)))
    await asyncio.gather(*tasks)
    return Outcome(accepted, rejected, time.perf_counter() - started, first_error)


def command_rotation_ids(run: str, count: int) -> list[str]:
    return [f"cmd-{run}-{i}" for i in range(count)]


async def create_rotations(
    client: RotationsClient,
    ids: Sequence[str],
    window: int,
    policy: dict[str, Any] | None = None,
    weights: Sequence[int] = (),
) -> None:
    """CreateRotation with the 10 members (and `policy`, if any) for each id; then, with
    `weights`, SetMemberOptions giving the i-th member the i-th weight."""
    commands: list[dict[str, Any]] = [
        {
            "type": "CreateRotation",
            "command_id": uuid.uuid4().hex,
            "rotation_id": rotation_id,
            "actor": ACTOR,
            "name": f"Bench {rotation_id}",
            "members": MEMBERS,
            **({"policy": policy} if policy is not None else {}),
        }
        for rotation_id in ids
    ]
    outcome = await pipelined(client, commands, window)
    if outcome.rejected:
        raise RuntimeError(f"creating the rotations was refused: {outcome.first_error}")
    options = [
        {
            "type": "SetMemberOptions",
            "command_id": uuid.uuid4().hex,
            "rotation_id": rotation_id,
            "actor": ACTOR,
            "user_id": user_id,
            "weight": weight,
        }
        for rotation_id in ids
        for user_id, weight in zip(MEMBERS, weights, strict=False)
    ]
    outcome = await pipelined(client, options, window)
    if outcome.rejected:
        raise RuntimeError(f"setting the members' weights was refused: {outcome.first_error}")


def bookings(
    ids: Sequence[str],
    count: int,
    tag: str,
    starts_at: Callable[[int], str] | None = None,
) -> list[dict[str, Any]]:
    """`count` BookMeeting commands without a host (auto-assign), round-robin over `ids`;
    `starts_at(i)`: the i-th meeting's start (RFC 3339), if any."""
    return [
        {
            "type": "BookMeeting",
            "command_id": uuid.uuid4().hex,
            "rotation_id": ids[i % len(ids)],
            "actor": ACTOR,
            "meeting_id": f"{tag}-{i}",
            "record": {"type": "deal", "id": str(i)},
            **({"starts_at": starts_at(i)} if starts_at is not None else {}),
        }
        for i in range(count)
    ]


async def command_round(
    client: RotationsClient,
    ids: Sequence[str],
    count: int,
    window: int,
    tag: str,
    starts_at: Callable[[int], str] | None = None,
) -> tuple[float, Outcome]:
    """Accepted commands per second of one round."""
    outcome = await pipelined(client, bookings(ids, count, tag, starts_at), window)
    if outcome.rejected:
        raise RuntimeError(f"{outcome.rejected} bookings were refused: {outcome.first_error}")
    return outcome.accepted / outcome.seconds, outcome
