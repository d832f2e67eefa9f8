"""The faststream edges: command consumer, suggestion responder, dead letters, replies."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from eventsourcing.persistence import Tracking
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import BaseModel, TypeAdapter

from events.errors import RotationError
from projections.point_in_time import suggest_as_of
from projections.rotation_view import RotationProjector
from service import contracts as c
from service.application import RotationsApplication
from service.parsing import InvalidMessage, parse
from service.settings import Settings

log = logging.getLogger("rotations.kafka")

SUGGEST_ADAPTER: TypeAdapter[c.SuggestHost] = TypeAdapter(c.SuggestHost)


def tracking_name(cluster_id: str, topic: str, partition: int) -> str:
    """Offsets only mean something within one cluster's topic partition."""
    return f"kafka:{cluster_id}:{topic}:{partition}"


def tracking_for(cluster_id: str, topic: str, partition: int, offset: int) -> Tracking:
    """Kafka position as an eventsourcing tracking record (ids start at 1: offset + 1)."""
    return Tracking(tracking_name(cluster_id, topic, partition), offset + 1)


class ResumeFromStore(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, seek to the position the store says was handled last.

    The store, not the committed offset, is the truth: a message whose effects were saved
    but whose offset commit was lost is skipped instead of applied twice.
    """

    def __init__(
        self, app: RotationsApplication, cluster_id: str, consumer: Callable[[], Any]
    ) -> None:
        self.app = app
        self.cluster_id = cluster_id
        self.consumer = consumer
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        consumer = self.consumer()
        for tp in assigned:
            stored = await asyncio.to_thread(
                self.app.recorder.max_tracking_id,
                tracking_name(self.cluster_id, tp.topic, tp.partition),
            )
            if stored is not None and consumer is not None:
                consumer.seek(tp, stored)  # tracking id = last handled offset + 1
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))
        self.assigned.set()


async def raw_body(msg: Any) -> bytes:
    """Hand handlers the bytes untouched: validation is ours, so bad input gets a reply."""
    return bytes(msg.body)


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


class RotationsKafkaApp:
    """Wires the application and read model to Kafka through one faststream broker."""

    def __init__(
        self,
        settings: Settings,
        app: RotationsApplication,
        projector: RotationProjector,
        cluster_id: str,
        broker: KafkaBroker | None = None,
    ) -> None:
        self.settings = settings
        self.cluster_id = cluster_id
        self.app = app
        self.projector = projector
        self.broker = broker or KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id="rotations-service",
            linger_ms=0,
            graceful_timeout=10.0,
            logger=logging.getLogger("rotations.faststream"),
            log_level=logging.DEBUG,
        )
        self.faststream = FastStream(self.broker)
        self.dead_letters = 0
        self._attempts: dict[tuple[int, int], int] = {}
        self.listener = ResumeFromStore(app, cluster_id, lambda: self.command_subscriber.consumer)
        commands = self.broker.subscriber(
            settings.commands_topic,
            group_id=settings.group_id,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            listener=self.listener,
            decoder=raw_body,
            no_reply=True,
            title="rotations.commands",
            description="Commands (CreateRotation, AddMember, BookMeeting, ...) keyed by rotation",
        )
        self.command_subscriber = commands
        commands(self.on_command)
        suggest = self.broker.subscriber(
            settings.suggest_topic,
            group_id=f"{settings.group_id}-queries",
            # Requests sent while the service starts are answered too.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            ack_policy=AckPolicy.ACK_FIRST,
            decoder=raw_body,
            no_reply=True,
            title="rotations.suggest-host",
            description="Host-suggestion requests, answered on the reply_to topic",
        )
        self.suggest_subscriber = suggest
        suggest(self.on_suggest)

    # -- commands ------------------------------------------------------------------------

    async def on_command(self, msg: KafkaMessage) -> None:
        record = msg.raw_message
        try:
            command = parse(c.COMMAND_ADAPTER, msg.body, self.settings.max_message_bytes)
        except InvalidMessage as error:
            reply = c.CommandReply(
                status="rejected",
                command_id=error.partial.get("command_id"),
                rotation_id=error.partial.get("rotation_id"),
                error=c.ErrorBody(code=error.code, message=str(error)),
            )
            await self._reject(msg, reply.error, dump(reply))  # type: ignore[arg-type]
            return
        tracking = tracking_for(self.cluster_id, record.topic, record.partition, record.offset)
        try:
            reply = await asyncio.to_thread(self.handle_command, command, tracking)
        except Exception as error:
            await self._retry_or_give_up(msg, error)
            return
        self._attempts.pop((record.partition, record.offset), None)
        if reply.error is not None:
            await self._reject(msg, reply.error, dump(reply))
        else:
            log.info(
                "command accepted",
                extra={"command": command.type, "command_id": command.command_id,  # type: ignore[attr-defined]
                       "rotation_id": command.rotation_id},
            )
            await self._reply(msg, dump(reply))

    async def _retry_or_give_up(self, msg: KafkaMessage, error: Exception) -> None:
        """Store trouble: back off and let the message be redelivered, a few times at most."""
        record = msg.raw_message
        key = (record.partition, record.offset)
        attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
        log.error("command failed (attempt %d): %r", attempts, error,
                  extra={"partition": record.partition, "offset": record.offset})
        if attempts >= self.settings.max_attempts:
            self._attempts.pop(key, None)
            body = c.ErrorBody(code="internal", message=f"gave up after {attempts} attempts: "
                               f"{type(error).__name__}: {error}")
            reply = c.CommandReply(status="rejected", error=body)
            await self._reject(msg, body, dump(reply))
            return
        await asyncio.sleep(min(0.1 * 2**attempts, 5.0))
        raise error  # NACK: the consumer seeks back and the message comes again

    def handle_command(self, command: c.CommandBase, tracking: Tracking) -> c.CommandReply:
        """Store the command's effects (once), then bring the read model up to date."""
        try:
            reply = self.app.execute(command, tracking)
        except RotationError as error:
            reply = c.CommandReply(
                status="rejected",
                command_id=command.command_id,
                rotation_id=command.rotation_id,
                error=c.ErrorBody(code=error.code, message=str(error)),
            )
        self.projector.catch_up()
        return reply

    # -- suggestions ---------------------------------------------------------------------

    async def on_suggest(self, msg: KafkaMessage) -> None:
        try:
            request = parse(SUGGEST_ADAPTER, msg.body, self.settings.max_message_bytes)
        except InvalidMessage as error:
            reply = c.SuggestionReply(
                rotation_id=error.partial.get("rotation_id"),
                error=c.ErrorBody(code=error.code, message=str(error)),
            )
            await self._reject(msg, reply.error, dump(reply))  # type: ignore[arg-type]
            return
        reply = await asyncio.to_thread(self.answer_suggestion, request)
        await self._reply(msg, dump(reply))

    def answer_suggestion(self, request: c.SuggestHost) -> c.SuggestionReply:
        try:
            if request.as_of is not None:
                answer = suggest_as_of(self.app, request.rotation_id, request.as_of,
                                       request.exclude)
            else:
                answer = self.projector.suggest(request.rotation_id, request.exclude)
        except RotationError as error:
            return c.SuggestionReply(
                rotation_id=request.rotation_id,
                error=c.ErrorBody(code=error.code, message=str(error)),
            )
        suggestion = answer.suggestion
        return c.SuggestionReply(
            rotation_id=request.rotation_id,
            host_id=suggestion.host_id,
            reason=suggestion.reason,
            candidates=[
                c.Candidate(
                    user_id=s.user_id,
                    meetings=s.meetings,
                    last_assigned_at=s.last_assigned_at,
                    available=s.available,
                    joined_at=s.joined_at,
                )
                for s in suggestion.candidates
            ],
            position=answer.position,
        )

    # -- replies and dead letters --------------------------------------------------------

    async def _reply(self, msg: KafkaMessage, body: bytes) -> bool:
        reply_to = msg.reply_to
        if not reply_to:
            return True
        try:
            await self.broker.publish(
                body,
                topic=reply_to,
                correlation_id=msg.correlation_id,
                headers={"content-type": "application/json"},
            )
        except Exception as error:  # an unwritable reply topic must not stop the consumer
            log.warning("reply to %r failed: %s", reply_to, error)
            return False
        return True

    async def _reject(self, msg: KafkaMessage, error: c.ErrorBody, reply: bytes) -> None:
        record = msg.raw_message
        log.warning(
            "message rejected",
            extra={"code": error.code, "reason": error.message, "topic": record.topic,
                   "partition": record.partition, "offset": record.offset},
        )
        delivered = await self._reply(msg, reply)
        if not delivered:
            error = c.ErrorBody(code=error.code, message=f"{error.message} (reply undeliverable)")
        await self.dead_letter(record, error)

    async def dead_letter(self, record: Any, error: c.ErrorBody) -> None:
        key = record.key.decode("utf-8", "replace") if record.key else None
        headers = {
            k: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for k, v in (record.headers or ())
        }
        letter = c.DeadLetter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            error=error,
            original=base64.b64encode(record.value or b"").decode(),
            headers=headers,
        )
        await self.broker.publish(
            dump(letter), topic=self.settings.dead_letter_topic, key=record.key,
            headers={"content-type": "application/json"},
        )
        self.dead_letters += 1

