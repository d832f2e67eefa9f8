"""Request/reply latency: the service's suggestions and a raw aiokafka ping-pong baseline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.infra import say
from bench.results import percentile
from service.client import RotationsClient
from service.topics import ensure_topics

Request = Callable[[bytes, str], Awaitable[bytes]]


async def closed_loop(
    request: Request,
    keys: Sequence[str],
    samples: int,
    in_flight: int,
    extra: Mapping[str, Any] | None = None,
) -> list[float]:
    """Round-trip times (ms) of `samples` requests, `in_flight` workers each waiting its own;
    `extra`: more fields of each request (e.g. a meeting's `starts_at`)."""
    latencies: list[float] = []
    numbers = iter(range(samples))

    async def worker() -> None:
        for i in numbers:  # shared by the workers: each number is taken once
            key = keys[i % len(keys)]
            body = json.dumps({"rotation_id": key, **(extra or {})}).encode()
            started = time.perf_counter()
            await request(body, key)
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return latencies


async def interleaved(
    request: Request, first: str, second: str, samples: int, extra: Mapping[str, Any] | None = None
) -> tuple[list[float], list[float]]:
    """Round-trip times (ms) of `samples` requests about each of two keys, one at a time,
    alternating which of the two goes first."""
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(samples):
        pair = [(first, times[0]), (second, times[1])]
        for key, into in pair if i % 2 else reversed(pair):
            into.extend(await closed_loop(request, [key], 1, 1, extra))
    return times


async def history_medians(
    request: Request,
    long: str,
    short: str,
    rounds: int,
    samples: int,
    extra: Mapping[str, Any] | None = None,
    warmup: int = 10,
) -> tuple[list[float], list[float]]:
    """Per round, the p50 (ms) of `samples` interleaved requests about a long-history
    rotation and about a short one (after a warm-up of both)."""
    await closed_loop(request, [long, short], warmup, 1, extra)
    longs: list[float] = []
    shorts: list[float] = []
    for r in range(rounds):
        long_samples, short_samples = await interleaved(request, long, short, samples, extra)
        longs.append(percentile(long_samples, 50))
        shorts.append(percentile(short_samples, 50))
        say(f"  round {r + 1}: p50 {longs[-1]:.1f} ms (long history), {shorts[-1]:.1f} ms (10)")
    return longs, shorts


def suggest_request(client: RotationsClient, timeout: float = 60.0) -> Request:
    """A suggestion through the project's client, failing on an error reply."""
    topic = client.settings.suggest_topic

    async def request(body: bytes, key: str) -> bytes:
        reply = await client.request_raw(topic, body, key=key, timeout=timeout)
        if json.loads(reply).get("error") is not None:
            raise RuntimeError(f"suggestion failed: {reply[:300]!r}")
        return reply

    return request


class RawPingPong:
    """The baseline: an echo responder and a requester, both raw aiokafka, in this process.

    Like the service and its client: the responder consumes every partition of a request
    topic (manually assigned) and answers each request on its `reply_to` topic with the
    same `correlation_id`, awaiting the broker's acknowledgement; the requester publishes
    (awaiting the acknowledgement), and a reply consumer on a one-partition reply topic
    completes futures by correlation id. Both consumers use the same fetch wait.
    """

    def __init__(self, bootstrap_servers: str, wait_ms: int, partitions: int = 6) -> None:
        run = uuid.uuid4().hex[:8]
        self.bootstrap_servers = bootstrap_servers
        self.wait_ms = wait_ms
        self.partitions = partitions
        self.request_topic = f"bench-raw{run}.requests"
        self.reply_topic = f"bench-raw{run}.replies"
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._clients: list[AIOKafkaConsumer | AIOKafkaProducer] = []

    async def start(self) -> None:
        await ensure_topics(self.bootstrap_servers, [self.request_topic], self.partitions)
        await ensure_topics(self.bootstrap_servers, [self.reply_topic], 1)
        self.responder_in = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.wait_ms,
        )
        self.responder_out = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers)
        self.requests_out = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers)
        self.replies_in = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.wait_ms,
        )
        for client in (self.responder_in, self.responder_out, self.requests_out, self.replies_in):
            await client.start()
            self._clients.append(client)
        self.responder_in.assign(
            [TopicPartition(self.request_topic, p) for p in range(self.partitions)]
        )
        self.replies_in.assign([TopicPartition(self.reply_topic, 0)])
        self._tasks = [
            asyncio.create_task(self._respond()),
            asyncio.create_task(self._complete()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in reversed(self._clients):
            await client.stop()

    async def _respond(self) -> None:
        async for record in self.responder_in:
            headers = dict(record.headers or ())
            reply_to = headers.get("reply_to", b"").decode()
            await self.responder_out.send_and_wait(
                reply_to,
                record.value,
                headers=[("correlation_id", headers.get("correlation_id", b""))],
            )

    async def _complete(self) -> None:
        async for record in self.replies_in:
            headers = dict(record.headers or ())
            future = self._pending.pop(headers.get("correlation_id", b"").decode(), None)
            if future is not None and not future.done():
                future.set_result(record.value or b"")

    async def request(self, body: bytes, key: str) -> bytes:
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        await self.requests_out.send_and_wait(
            self.request_topic,
            body,
            key=key.encode(),
            headers=[
                ("reply_to", self.reply_topic.encode()),
                ("correlation_id", correlation_id.encode()),
            ],
        )
        return await asyncio.wait_for(future, 60.0)
