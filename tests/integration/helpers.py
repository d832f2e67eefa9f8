"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.client import RotationsClient


def command(kind: str, rotation_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "command_id": uuid.uuid4().hex,
        "rotation_id": rotation_id,
        "actor": "tests",
        **fields,
    }


async def send(
    client: RotationsClient, kind: str, rotation_id: str, **fields: Any
) -> dict[str, Any]:
    return await client.command(command(kind, rotation_id, **fields))


async def book(
    client: RotationsClient, rotation_id: str, host: str | None = None
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "meeting_id": uuid.uuid4().hex,
        "record": {"type": "deal", "id": "42"},
    }
    if host is not None:
        fields["host_id"] = host
    return await send(client, "BookMeeting", rotation_id, **fields)


async def read_topic(bootstrap_servers: str, topic: str) -> list[Any]:
    """Every record on a topic so far (all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def dead_letters(client: RotationsClient) -> list[dict[str, Any]]:
    """Every record on the dead-letter topic so far, decoded."""
    letters = []
    settings = client.settings
    for record in await read_topic(settings.kafka_bootstrap_servers, settings.dead_letter_topic):
        letter = json.loads(record.value)
        letter["original_bytes"] = base64.b64decode(letter["original"])
        letters.append(letter)
    return letters


async def dead_letters_where(
    client: RotationsClient, keep: Callable[[dict[str, Any]], bool], count: int = 1
) -> list[dict[str, Any]]:
    """The dead letters `keep` accepts, once there are `count` of them: the service replies
    first and dead-letters after, so a letter may land just after its reply (nothing to
    await but the topic). Fails after about ten seconds with fewer."""
    mine: list[dict[str, Any]] = []
    for _ in range(200):
        mine = [letter for letter in await dead_letters(client) if keep(letter)]
        if len(mine) >= count:
            return mine
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(mine)} dead letters of the {count} expected")
