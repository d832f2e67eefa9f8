"""Creates the service's topics with several partitions when they are missing."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from service.kafka_security import KafkaSecurity, kafka_security
from service.settings import Settings


def admin_client(kafka: Settings | str) -> AIOKafkaAdminClient:
    """An admin client (not started) with the settings' Kafka security."""
    bootstrap, security = _resolve(kafka)
    return _admin(bootstrap, security)


def _resolve(kafka: Settings | str) -> tuple[str, KafkaSecurity]:
    """`kafka` is the settings, or only a bootstrap address: then the security is this
    process's own settings' (the environment's, where the service and the CLI read theirs)."""
    if isinstance(kafka, Settings):
        return kafka.kafka_bootstrap_servers, kafka_security(kafka)
    return kafka, kafka_security(Settings())


def _admin(bootstrap: str, security: KafkaSecurity) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **security.client_options()
    )


async def _started_admin(kafka: Settings | str) -> AIOKafkaAdminClient:
    """A started admin client; a TLS broker that refuses the handshake says why (aiokafka
    only logs it and fails to bootstrap)."""
    bootstrap, security = _resolve(kafka)
    admin = _admin(bootstrap, security)
    try:
        await admin.start()
    except KafkaConnectionError as error:
        if (tls := await security.tls_failure(bootstrap)) is not None:
            raise tls from error
        raise
    return admin


async def describe_cluster_id(kafka: Settings | str) -> str:
    """The cluster id: a restarted in-memory broker is a new cluster with offsets from 0."""
    admin = await _started_admin(kafka)
    try:
        return str((await admin.describe_cluster()).get("cluster_id") or "kafka")
    finally:
        await admin.close()


async def ensure_topics(kafka: Settings | str, topics: list[str], partitions: int) -> str:
    """Create missing topics; returns the cluster id (offsets only mean something within it)."""
    admin = await _started_admin(kafka)
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
