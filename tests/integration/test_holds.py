"""Holds (contract v2, "Holds"), through a real Kafka-protocol broker, on SQLite and on
PostgreSQL, black box: commands and suggestion requests in, replies and events out."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from projections.rotation_view import RotationProjector, open_view
from service.client import RotationsClient
from service.embedded_broker import free_port
from tests.integration.helpers import command, send
from tests.integration.service_process import ServiceProcess
from tests.integration.store_check import open_store
from tests.integration.test_lifecycle import accepted, booking, rejected
from tests.integration.test_rule_v2 import booked_event, create

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def hold(client: RotationsClient, rotation: str, hold_id: str, **fields: Any) -> Any:
    reply = await send(client, "HoldHost", rotation, hold_id=hold_id, **fields)
    return accepted(reply, "HostHeld")


async def standing(client: RotationsClient, rotation: str, **request: Any) -> dict[str, Any]:
    answer = await client.suggest(rotation, **request)
    assert answer.get("error") is None, answer
    return answer


def held(answer: dict[str, Any]) -> dict[str, int]:
    return {c["user_id"]: c["held"] for c in answer["candidates"]}


async def test_a_hold_counts_as_a_meeting_until_it_is_booked(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"hold-{uid}"
    await create(client, rotation, ["kari", "ola", "per"])
    first = await hold(client, rotation, "h1", seconds=300)
    assert (first["host_id"], first["hold_id"]) == ("kari", "h1")
    expires = datetime.fromisoformat(first["expires_at"])
    assert timedelta(seconds=290) < expires - datetime.now(expires.tzinfo) <= timedelta(seconds=300)

    # Another scheduler asking now is not told kari: the hold counts as her meeting.
    answer = await standing(client, rotation)
    assert answer["host_id"] == "ola"
    assert held(answer) == {"kari": 1, "ola": 0, "per": 0}
    assert (await hold(client, rotation, "h2"))["host_id"] == "ola"

    # Booking the hold books kari (reason held, not an override) and ends the hold.
    booked = await booking(client, rotation, "m1", hold_id="h1")
    assert booked["host_id"] == "kari"
    event = await booked_event(client, rotation, booked)
    assert (event["reason"], event["override"], event["hold_id"]) == ("held", False, "h1")
    answer = await standing(client, rotation)
    assert held(answer) == {"kari": 0, "ola": 1, "per": 0}
    assert {c["user_id"]: c["meetings"] for c in answer["candidates"]}["kari"] == 1
    assert answer["host_id"] == "per"

    rejected(
        await send(
            client,
            "BookMeeting",
            rotation,
            meeting_id="m2",
            record={"type": "deal", "id": "1"},
            hold_id="h1",
        ),
        "unknown_hold",
    )


async def test_a_hold_booked_for_someone_else_is_an_override(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"hold-other-{uid}"
    await create(client, rotation, ["kari", "ola"])
    await hold(client, rotation, "h1")
    booked = await booking(client, rotation, "m1", hold_id="h1", host_id="ola")
    event = await booked_event(client, rotation, booked)
    assert (event["host_id"], event["override"], event["reason"]) == ("ola", True, "override")
    assert held(await standing(client, rotation)) == {"kari": 0, "ola": 0}


async def test_hold_errors(client: RotationsClient, uid: str) -> None:
    rotation = f"hold-errors-{uid}"
    await create(client, rotation, ["kari", "ola"])
    rejected(await send(client, "ReleaseHold", rotation, hold_id="never"), "unknown_hold")
    await hold(client, rotation, "h1")
    rejected(await send(client, "HoldHost", rotation, hold_id="h1"), "hold_exists")
    released = await send(client, "ReleaseHold", rotation, hold_id="h1")
    accepted(released, "HoldReleased")
    assert held(await standing(client, rotation)) == {"kari": 0, "ola": 0}
    rejected(await send(client, "ReleaseHold", rotation, hold_id="h1"), "unknown_hold")
    # A hold id stays taken after its hold ended.
    rejected(await send(client, "HoldHost", rotation, hold_id="h1"), "hold_exists")
    for seconds in (0, 3601, 1.5, True):
        reply = await send(client, "HoldHost", rotation, hold_id="h9", seconds=seconds)
        rejected(reply, "invalid_message")
        assert "seconds" in reply["error"]["message"], reply
    await send(client, "ToggleAvailability", rotation, user_id="kari", available=False)
    await send(client, "ToggleAvailability", rotation, user_id="ola", available=False)
    rejected(await send(client, "HoldHost", rotation, hold_id="h2"), "no_available_member")
    rejected(await send(client, "HoldHost", "no-such-rotation", hold_id="h1"), "unknown_rotation")


async def test_holds_count_under_caps(client: RotationsClient, uid: str) -> None:
    rotation = f"hold-cap-{uid}"
    await create(client, rotation, ["kari", "ola"], {"cap": {"meetings": 1, "per": "day"}})
    await hold(client, rotation, "h1")
    await hold(client, rotation, "h2")
    answer = await standing(client, rotation)
    assert {c["user_id"]: c["capped"] for c in answer["candidates"]} == {"kari": True, "ola": True}
    assert answer["host_id"] is None
    rejected(await send(client, "HoldHost", rotation, hold_id="h3"), "no_available_member")


async def test_an_expired_hold_stops_counting_live_rebuilt_and_as_of(
    client: RotationsClient, store_url: str, uid: str
) -> None:
    rotation = f"hold-expiry-{uid}"
    await create(client, rotation, ["kari", "ola", "per"])
    await hold(client, rotation, "long", seconds=3600)  # first, so `during` follows both
    short = await hold(client, rotation, "short", seconds=1)
    expires = datetime.fromisoformat(short["expires_at"])
    during = expires - timedelta(milliseconds=500)
    # Time must pass for a hold to expire: nothing to await but the clock.
    await asyncio.sleep(max(0.0, (expires - datetime.now(expires.tzinfo)).total_seconds()) + 0.1)

    assert held(await standing(client, rotation)) == {"kari": 1, "ola": 0, "per": 0}
    assert held(await standing(client, rotation, as_of=during)) == {"kari": 1, "ola": 1, "per": 0}
    after = expires + timedelta(milliseconds=1)
    assert held(await standing(client, rotation, as_of=after)) == {"kari": 1, "ola": 0, "per": 0}
    app = open_store(store_url)  # a rebuild: every event folded afresh into a new view
    try:
        view = open_view(app, table_name="holds_check")
        rebuilt = RotationProjector(app, view, tracking_name="holds_check")
        rebuilt.catch_up()
        standings = rebuilt.suggest(rotation).suggestion.candidates
        assert {s.user_id: s.held for s in standings} == {"kari": 1, "ola": 0, "per": 0}
    finally:
        app.close()

    reply = await send(
        client,
        "BookMeeting",
        rotation,
        meeting_id="m1",
        record={"type": "deal", "id": "1"},
        hold_id="short",
    )
    rejected(reply, "hold_expired")
    rejected(await send(client, "ReleaseHold", rotation, hold_id="short"), "hold_expired")
    assert (await booking(client, rotation, "m2", hold_id="long"))["host_id"] == "kari"


async def _send_all(client: RotationsClient, commands: list[dict[str, Any]]) -> list[Any]:
    futures = [
        await client.send_raw(
            client.settings.commands_topic, json.dumps(c).encode(), key=c["rotation_id"]
        )
        for c in commands
    ]
    return [json.loads(reply) for reply in await asyncio.gather(*futures)]


async def test_five_clients_holding_at_once_spread_exactly(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"hold-burst-{uid}"
    members = [f"u{i}" for i in range(10)]
    await create(client, rotation, members)
    clients = [RotationsClient(client.settings, timeout=60) for _ in range(5)]
    for other in clients:
        await other.__aenter__()
    try:
        batches = [
            [command("HoldHost", rotation, hold_id=f"c{n}-h{i}", seconds=3600) for i in range(10)]
            for n in range(5)
        ]
        replies = await asyncio.gather(
            *(_send_all(c, b) for c, b in zip(clients, batches, strict=True))
        )
    finally:
        for other in clients:
            await other.__aexit__(None, None, None)
    hosts = Counter(accepted(r, "HostHeld")["host_id"] for batch in replies for r in batch)
    assert hosts == dict.fromkeys(members, 5)
    assert held(await standing(client, rotation)) == dict.fromkeys(members, 5)


async def test_holds_stay_exact_while_a_second_instance_joins(
    client: RotationsClient, service: ServiceProcess, uid: str
) -> None:
    rotation = f"hold-rebalance-{uid}"
    members = [f"u{i}" for i in range(10)]
    await create(client, rotation, members)
    second = ServiceProcess(
        service.env["KAFKA_BOOTSTRAP_SERVERS"],
        service.env["ROTATIONS_STORE"],
        service.log_path.parent,
    )
    second.env = {**service.env, "ROTATIONS_HTTP_PORT": str(free_port())}
    second.start()  # joins the same group: the partition moves while the holds arrive
    try:
        burst = [command("HoldHost", rotation, hold_id=f"h{i}", seconds=3600) for i in range(50)]
        waves = [burst[i : i + 5] for i in range(0, 50, 5)]
        replies: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 150
        while waves and asyncio.get_running_loop().time() < deadline:
            # Half the burst before the second instance holds partitions, half after.
            if len(waves) > 5 or "partitions assigned" in second.log_tail(400):
                replies.extend(await _send_all(client, waves.pop(0)))
            await asyncio.sleep(0.3)
        for wave in waves:
            replies.extend(await _send_all(client, wave))
        assert "partitions assigned" in second.log_tail(400), "no rebalance happened"
    finally:
        second.stop()
    await service.wait_ready(client)
    hosts = Counter(accepted(r, "HostHeld")["host_id"] for r in replies)
    assert hosts == dict.fromkeys(members, 5)
    assert held(await standing(client, rotation)) == dict.fromkeys(members, 5)
