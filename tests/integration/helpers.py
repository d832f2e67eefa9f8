"""Small helpers shared by the integration tests."""

from __future__ import annotations

import base64
import json
import uuid
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


async def dead_letters(client: RotationsClient) -> list[dict[str, Any]]:
    """Every record on the dead-letter topic so far, decoded."""
    settings = client.settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata
        partitions = [
            TopicPartition(settings.dead_letter_topic, p)
            for p in consumer.partitions_for_topic(settings.dead_letter_topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[dict[str, Any]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    letter = json.loads(record.value)
                    letter["original_bytes"] = base64.b64decode(letter["original"])
                    letters.append(letter)
        return letters
    finally:
        await consumer.stop()
