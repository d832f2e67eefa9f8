"""Creates the service's topics with several partitions when they are missing."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def describe_cluster_id(bootstrap_servers: str) -> str:
    """The cluster id: a restarted in-memory broker is a new cluster with offsets from 0."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        return str((await admin.describe_cluster()).get("cluster_id") or "kafka")
    finally:
        await admin.close()


async def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int) -> str:
    """Create missing topics; returns the cluster id (offsets only mean something within it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    await admin.start()
    try:
        cluster_id = str((await admin.describe_cluster()).get("cluster_id") or "kafka")
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return cluster_id
        with contextlib.suppress(TopicAlreadyExistsError):  # another instance was first
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
            )
        return cluster_id
    finally:
        await admin.close()
