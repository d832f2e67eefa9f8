"""Nothing lost, nothing doubled: SIGKILLs, a second instance, hostile input."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from events.rotation import rotation_uuid
from service.client import RotationsClient
from service.embedded_broker import free_port
from tests.environment import SEED_VARIABLE, session_seed
from tests.integration.helpers import command, send
from tests.integration.service_process import ServiceProcess
from tests.integration.store_check import booked_meetings, live_view_equals_rebuild, open_store

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _send_all(
    client: RotationsClient, commands: list[dict[str, Any]], timeout: float
) -> dict[str, dict[str, Any]]:
    """Publish every command (pipelined) and collect the replies that arrive in time."""
    futures = {}
    for cmd in commands:
        futures[cmd["command_id"]] = await client.send_raw(
            client.settings.commands_topic, json.dumps(cmd).encode(), key=cmd["rotation_id"]
        )
    done, _ = await asyncio.wait(futures.values(), timeout=timeout)
    replies = {}
    for command_id, future in futures.items():
        if future in done and future.exception() is None:
            replies[command_id] = json.loads(future.result())
        else:
            future.cancel()
    return replies


async def test_sigkill_loses_nothing_and_doubles_nothing(
    client: RotationsClient,
    service: ServiceProcess,
    store_url: str,
    uid: str,
    rng: random.Random,
) -> None:
    rotations = [f"crash-{uid}-{i}" for i in range(10)]
    for rotation in rotations:
        await send(client, "CreateRotation", rotation, name="Crash", members=list("abcde"))
    commands = [
        command(
            "BookMeeting",
            rng.choice(rotations),
            meeting_id=f"m{i}",
            record={"type": "deal", "id": str(i)},
        )
        for i in range(3000)
    ]
    kills = 0

    async def killer() -> None:
        nonlocal kills
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            service.kill()
            kills += 1
            service.start()

    killing = asyncio.create_task(killer())
    replies = await _send_all(client, commands, timeout=30)
    await killing
    await service.wait_ready(client)
    first_round = len(replies)
    rounds = 0
    while len(replies) < len(commands) and rounds < 5:  # clients retry what was not acked
        rounds += 1
        missing = [c for c in commands if c["command_id"] not in replies]
        replies.update(await _send_all(client, missing, timeout=60))

    app = open_store(store_url)
    try:
        counts = booked_meetings(app)
        mine = {(str(rotation_uuid(c["rotation_id"])), c["meeting_id"]): c for c in commands}
        duplicates = sum(1 for key in mine if counts[key] > 1)
        lost = sum(1 for key in mine if counts[key] == 0)
        differing = live_view_equals_rebuild(app, rotations)
    finally:
        app.close()
    summary = (
        f"crash test [{store_url.split(':')[0]}]: sent={len(commands)} kills={kills} "
        f"acked_first_round={first_round} retry_rounds={rounds} acked={len(replies)} "
        f"duplicates={duplicates} lost={lost} view_differs={len(differing)} "
        f"({SEED_VARIABLE}={session_seed()})"
    )
    print(f"\n{summary}")
    assert kills == 3, summary
    assert len(replies) == len(commands), f"some commands were never acknowledged: {summary}"
    assert all(r["status"] == "accepted" for r in replies.values()), summary
    assert duplicates == 0, summary
    assert lost == 0, summary
    assert differing == [], summary


async def test_second_instance_and_burst_keep_counts_even(
    client: RotationsClient, service: ServiceProcess, uid: str
) -> None:
    rotation = f"burst-{uid}"
    await send(client, "CreateRotation", rotation, name="Burst", members=list("vwxyz"))
    second = ServiceProcess(
        service.env["KAFKA_BOOTSTRAP_SERVERS"],
        service.env["ROTATIONS_STORE"],
        service.log_path.parent,
    )
    second.env = {**service.env, "ROTATIONS_HTTP_PORT": str(free_port())}
    second.start()  # joins the same group: a rebalance starts while the burst is in flight
    try:
        burst = [
            command("BookMeeting", rotation, meeting_id=f"b{i}", record={"type": "deal", "id": "1"})
            for i in range(200)
        ]
        replies: dict[str, dict[str, Any]] = {}
        waves = [burst[i : i + 5] for i in range(0, 200, 5)]
        deadline = asyncio.get_running_loop().time() + 150
        while waves and asyncio.get_running_loop().time() < deadline:
            # Spread over the second instance's join and the rebalance it causes.
            # Half the burst before the second instance holds partitions, half after.
            if len(waves) > 20 or "partitions assigned" in second.log_tail(400):
                replies.update(await _send_all(client, waves.pop(0), 120))
            await asyncio.sleep(0.3)
        for wave in waves:
            replies.update(await _send_all(client, wave, 120))
        assert "partitions assigned" in second.log_tail(400), "no rebalance happened"
        assert len(replies) == 200
        assert all(r["status"] == "accepted" for r in replies.values())
        counts = {
            c["user_id"]: c["meetings"] for c in (await client.suggest(rotation))["candidates"]
        }
        assert sum(counts.values()) == 200
        assert max(counts.values()) - min(counts.values()) <= 1
    finally:
        second.stop()
    await service.wait_ready(client)
