"""Request/reply over Kafka: a private reply topic and futures keyed by correlation id.

faststream's `broker.request()` does not work against a real Kafka broker, so this follows
faststream's Kafka RPC how-to: a manually assigned reply consumer (no group join, which is
slow on the embedded broker) and a publisher that sets `reply_to` and `correlation_id`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from faststream.kafka import KafkaBroker, TopicPartition
from faststream.kafka.annotations import KafkaMessage

from service.kafka_records import whole_message
from service.kafka_security import broker_options
from service.settings import Settings
from service.topics import ensure_topics


class RotationsClient:
    """Sends commands and suggestion requests and awaits their replies."""

    def __init__(self, settings: Settings | None = None, timeout: float = 30.0) -> None:
        self.settings = settings or Settings()
        self.timeout = timeout
        self.reply_topic = f"{self.settings.topic_prefix}replies.{uuid.uuid4().hex}"
        self.broker = KafkaBroker(
            self.settings.kafka_bootstrap_servers,
            client_id="rotations-client",
            apply_types=False,
            linger_ms=0,
            logger=None,
            **broker_options(self.settings),
        )
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        subscriber = self.broker.subscriber(
            partitions=[TopicPartition(self.reply_topic, 0)],
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            decoder=whole_message,
            include_in_schema=False,
        )
        subscriber(self._on_reply)

    async def start(self) -> None:
        await ensure_topics(self.settings, [self.reply_topic], 1)
        await self.broker.start()

    async def stop(self) -> None:
        for future in self._pending.values():
            future.cancel()
        await self.broker.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _on_reply(self, msg: KafkaMessage) -> None:
        future = self._pending.pop(msg.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(msg.body)

    def expect_reply(self, correlation_id: str) -> asyncio.Future[bytes]:
        """A future for the reply to a message published by other means (e.g. raw bytes)."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        return future

    async def request_raw(
        self,
        topic: str,
        body: bytes,
        key: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Publish `body` with reply headers and wait for the answer's bytes."""
        future = await self.send_raw(topic, body, key, headers)
        return await asyncio.wait_for(future, timeout or self.timeout)

    async def send_raw(
        self,
        topic: str,
        body: bytes,
        key: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> asyncio.Future[bytes]:
        """Publish and return the future of the reply (for pipelining many requests)."""
        correlation_id = uuid.uuid4().hex
        future = self.expect_reply(correlation_id)
        await self.broker.publish(
            body,
            topic=topic,
            key=key.encode() if isinstance(key, str) else key,
            headers={"content-type": "application/json", **(headers or {})},
            correlation_id=correlation_id,
            reply_to=self.reply_topic,
        )
        return future

    async def command(
        self,
        command: dict[str, Any],
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """`headers`: e.g. `{"authorization": "Bearer <JWT>"}` for signed actors."""
        body = json.dumps(command).encode()
        reply = await self.request_raw(
            self.settings.commands_topic,
            body,
            key=str(command.get("rotation_id", "")),
            headers=headers,
            timeout=timeout,
        )
        return dict(json.loads(reply))

    async def directory(self, fact: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Publish a directory fact; the service answers when it is stored."""
        key = str(fact.get("user_id") or fact.get("team_id") or "")
        reply = await self.request_raw(
            self.settings.directory_topic, json.dumps(fact).encode(), key=key, timeout=timeout
        )
        return dict(json.loads(reply))

    async def suggest(
        self,
        rotation_id: str,
        exclude: list[str] | None = None,
        as_of: str | datetime | None = None,
        timeout: float | None = None,
        *,
        starts_at: str | datetime | None = None,
        preferred_host_id: str | None = None,
    ) -> dict[str, Any]:
        """Ask who should host; `starts_at` (RFC 3339 or an aware datetime) is the meeting's
        start, `preferred_host_id` the member to choose when it can host (contract v2)."""
        request: dict[str, Any] = {"rotation_id": rotation_id}
        if exclude:
            request["exclude"] = exclude
        if as_of:
            request["as_of"] = _timestamp(as_of)
        if starts_at:
            request["starts_at"] = _timestamp(starts_at)
        if preferred_host_id is not None:
            request["preferred_host_id"] = preferred_host_id
        reply = await self.request_raw(
            self.settings.suggest_topic,
            json.dumps(request).encode(),
            key=rotation_id,
            timeout=timeout,
        )
        return dict(json.loads(reply))


def _timestamp(value: str | datetime) -> str:
    return value.isoformat() if isinstance(value, datetime) else value
