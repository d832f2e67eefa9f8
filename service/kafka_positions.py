"""Kafka positions as the store keeps them, and where each consumer starts reading.

A consumed message's topic/partition/offset is stored as an eventsourcing tracking record in
the transaction of its effects; on assignment the command consumer seeks to what the store
says, so a redelivered message changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from eventsourcing.persistence import Tracking, TrackingRecorder

from service.settings import Settings
from service.topics import describe_cluster_id

log = logging.getLogger("rotations.kafka")

Record: TypeAlias = ConsumerRecord[Any, Any]


def tracking_name(cluster_id: str, topic: str, partition: int) -> str:
    """Offsets only mean something within one cluster's topic partition."""
    return f"kafka:{cluster_id}:{topic}:{partition}"


def tracking_for(cluster_id: str, record: Record) -> Tracking:
    """Kafka position as an eventsourcing tracking record (ids start at 1: offset + 1)."""
    return Tracking(tracking_name(cluster_id, record.topic, record.partition), record.offset + 1)


class ResumeFromStore(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, seek to the position the store says was handled last.

    The store, not the committed offset, is the truth: a message whose effects were saved
    but whose offset commit was lost is skipped instead of applied twice.
    """

    def __init__(
        self,
        recorder: TrackingRecorder,
        cluster_id: str,
        consumer: Callable[[], Any],
        kafka: Settings,
    ) -> None:
        self.recorder = recorder
        self.kafka = kafka  # where, and how securely, the cluster id is asked
        self.cluster_id = cluster_id
        self.consumer = consumer
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        log.info("partitions revoked", extra={"partitions": sorted(map(str, revoked))})
        if revoked:
            self.assigned.clear()  # not ready again until the rebalance assigns partitions

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self.consumer()
        if consumer is not None:
            await self._refresh_cluster_id()
        for tp in assigned:
            stored = await asyncio.to_thread(
                self.recorder.max_tracking_id,
                tracking_name(self.cluster_id, tp.topic, tp.partition),
            )
            if stored is not None and consumer is not None:
                consumer.seek(tp, stored)  # tracking id = last handled offset + 1
        log.info("partitions assigned", extra={"partitions": sorted(map(str, assigned))})
        self.assigned.set()

    async def _refresh_cluster_id(self) -> None:
        """A broker that came back as a new cluster restarts offsets: track under its id."""
        try:
            current = await describe_cluster_id(self.kafka)
        except Exception as error:  # keep the known id; the next assignment tries again
            log.warning("cluster id lookup failed: %r", error)
            return
        if current != self.cluster_id:
            log.warning("broker cluster changed", extra={"old": self.cluster_id, "new": current})
            self.cluster_id = current


class FromStartOnNewCluster(ConsumerRebalanceListener):  # type: ignore[misc]
    """On an assignment from a cluster not seen before, read the partitions from offset 0.

    A restarted in-memory broker is a new cluster whose offsets start at 0 again, and a
    consumer group commits its old (higher) positions to it while rejoining: without this,
    the first messages on the new cluster would be skipped.
    """

    def __init__(self, cluster_id: str, consumer: Callable[[], Any], kafka: Settings) -> None:
        self.cluster_id = cluster_id
        self.consumer = consumer
        self.kafka = kafka

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self.consumer()
        if consumer is None or not assigned:
            return
        try:
            current = await describe_cluster_id(self.kafka)
        except Exception as error:  # keep the positions; the next assignment looks again
            log.warning("cluster id lookup failed: %r", error)
            return
        if current != self.cluster_id:
            self.cluster_id = current
            await consumer.seek_to_beginning(*assigned)
