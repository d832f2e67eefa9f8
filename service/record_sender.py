"""Sends many Kafka records at once: one aiokafka batch per topic partition, not a send each.

Every command's reply and every published event was one `broker.publish`, and each of those
went through faststream's publish pipeline and aiokafka's per-message accumulator: together
about a fifth of the service's time per command. A batch built with aiokafka's own
`create_batch` / `send_batch` costs an append per record. faststream has a batch publish,
but with one set of headers for the whole batch, and replies and events each carry their
own (correlation id, position).

Keys go to partitions as aiokafka's default partitioner puts them (murmur2, as Java's
client), so a rotation's events land where `broker.publish` put them. Records for one
partition keep their order: one batch, or consecutive batches sent in order, and the
producer keeps one batch per partition in flight.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.kafka_security import KafkaSecurity

_W3C = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class OutgoingRecord:
    """One Kafka record to send."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class RecordSender(Protocol):
    """Sends records; returns once every one was acknowledged, or raises the first failure."""

    async def send(self, records: Sequence[OutgoingRecord]) -> None: ...


class BrokerSender:
    """A `broker.publish` per record: for faststream's in-memory test broker.

    A record with a `traceparent` header is published in that trace context, so that
    faststream's telemetry middleware (when installed) keeps its trace instead of putting
    the current one in its place.
    """

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        pending: list[Any] = []
        try:
            for record in records:
                headers = {name: value.decode() for name, value in record.headers}
                token = None
                if "traceparent" in headers:
                    token = otel_context.attach(_W3C.extract(headers))
                try:
                    sent = await self.broker.publish(
                        record.value,
                        topic=record.topic,
                        key=record.key,
                        headers=headers,
                        correlation_id=headers.get("correlation_id"),
                        no_confirm=True,
                    )
                    if sent is not None:  # the in-memory test broker confirms nothing
                        pending.append(sent)
                finally:
                    if token is not None:
                        otel_context.detach(token)
        finally:
            await _settle(pending)


class BatchSender:
    """A producer of its own that sends records as one batch per topic partition."""

    def __init__(
        self,
        bootstrap_servers: str,
        linger_ms: int,
        client_id: str,
        max_batch_size: int = 16384,
        security: KafkaSecurity | None = None,
    ) -> None:
        """`security`: the settings' TLS and SASL (`kafka_security`); None is PLAINTEXT."""
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            linger_ms=linger_ms,
            client_id=client_id,
            max_batch_size=max_batch_size,
            **(security.client_options() if security is not None else {}),
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        """Each topic on its own: one that cannot be written (e.g. a client's reply topic
        that is gone) holds up or fails no other."""
        by_topic: defaultdict[str, list[OutgoingRecord]] = defaultdict(list)
        for record in records:
            by_topic[record.topic].append(record)
        results = await asyncio.gather(
            *(self._send_topic(topic, grouped) for topic, grouped in by_topic.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send_topic(self, topic: str, records: list[OutgoingRecord]) -> None:
        partitions = sorted(await self.producer.partitions_for(topic))
        keyless = random.randrange(len(partitions))  # sticky: one call's keyless records
        by_partition: defaultdict[int, list[OutgoingRecord]] = defaultdict(list)
        for record in records:
            index = keyless if record.key is None else partition_for(record.key, len(partitions))
            by_partition[partitions[index]].append(record)
        pending: list[asyncio.Future[Any]] = []
        try:
            for partition, grouped in by_partition.items():
                await self._send_partition(topic, partition, grouped, pending)
        finally:
            await _settle(pending)

    async def _send_partition(
        self,
        topic: str,
        partition: int,
        records: list[OutgoingRecord],
        pending: list[asyncio.Future[Any]],
    ) -> None:
        """Each batch's delivery future goes into the caller's `pending` as soon as it
        exists: a later batch that fails to enqueue loses none already sent (their
        failures would otherwise go unretrieved, and asyncio logs them at exit)."""
        batch = self.producer.create_batch()
        for record in records:
            if not _append(batch, record):
                pending.append(await self.producer.send_batch(batch, topic, partition=partition))
                batch = self.producer.create_batch()
                if not _append(batch, record):
                    raise ValueError(f"a record of {len(record.value)} bytes fits no batch")
        if batch.record_count():
            pending.append(await self.producer.send_batch(batch, topic, partition=partition))


def _append(batch: Any, record: OutgoingRecord) -> bool:
    """Add the record to the batch; False when the batch is full."""
    added = batch.append(
        key=record.key, value=record.value, timestamp=None, headers=list(record.headers)
    )
    return added is not None


@functools.lru_cache(maxsize=100_000)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition index aiokafka's default partitioner gives a key (murmur2, as Java's)."""
    hashed: int = murmur2(key) & 0x7FFFFFFF
    return hashed % partitions


async def _settle(pending: Sequence[Any]) -> None:
    """Wait for every send; then raise the first failure, if any."""
    if not pending:
        return
    results = await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
