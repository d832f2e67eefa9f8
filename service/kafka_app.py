"""The faststream app: the command consumer, the suggestion and directory responders.

Suggestions and directory facts are answered by return value (`service.answering`); the
command batch keeps its own path (one transaction per fetch, batched replies through
`record_sender`), measured faster than a message at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import Tracking
from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import LogicSubscriber
from faststream.middlewares import AckPolicy
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context
from pydantic import BaseModel, TypeAdapter

from projections.rotation_view import RotationProjector
from service import contracts as c
from service.actor_tokens import ActorVerifier, verify_commands, without_token
from service.answering import (
    CURRENT_RECORD,
    Answering,
    Rejected,
    Reply,
    directory_rejection,
    suggestion_rejection,
)
from service.application import RotationsApplication
from service.kafka_broker import KafkaBrokerJoiningAtOnce
from service.kafka_positions import FromStartOnNewCluster, Record, ResumeFromStore, tracking_for
from service.kafka_records import (
    LEGAL_TOPIC,
    header,
    headers_of,
    reply_topic,
    sanitising_parser,
    whole_message,
)
from service.kafka_security import broker_options, kafka_security
from service.parsing import InvalidMessage, decoder, parse
from service.record_sender import BatchSender, BrokerSender, OutgoingRecord, RecordSender
from service.settings import Settings
from service.suggestions import answer_suggestion
from service.tracing import (
    TRACEPARENT,
    BatchTrace,
    Tracing,
    extract,
    raw_traceparent,
    traceparent_of,
)

log = logging.getLogger("rotations.kafka")

STARTUP_GRACE_SECONDS = 30.0
SUGGEST_ADAPTER: TypeAdapter[c.SuggestHost] = TypeAdapter(c.SuggestHost)


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


class ServiceObserver(Protocol):
    """Told what the service did, e.g. to count it for metrics; must not raise."""

    def commands_handled(
        self, items: Sequence[tuple[c.CommandBase, Tracking]], replies: Sequence[c.CommandReply]
    ) -> None: ...

    def dead_lettered(self, record: Record, error: c.ErrorBody) -> None: ...

    def suggestion_answered(
        self, request: c.SuggestHost, seconds: float, reply: c.SuggestionReply
    ) -> None: ...


class RotationsKafkaApp:
    """Wires the application and read model to Kafka through one faststream broker."""

    def __init__(
        self,
        settings: Settings,
        app: RotationsApplication,
        projector: RotationProjector,
        cluster_id: str,
        broker: KafkaBroker | None = None,
        verifier: ActorVerifier | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`tracing`: OpenTelemetry (`service.tracing.open_tracing`); None is off."""
        if settings.actor_tokens == "required" and verifier is None:
            raise ValueError("ROTATIONS_ACTOR_TOKENS=required needs an ActorVerifier")
        # Signed actors: None when off, so the command path does no per-record work for them.
        self.verifier = verifier if settings.actor_tokens == "required" else None
        self.settings = settings
        self.app = app
        self.projector = projector
        self.broker = broker or KafkaBrokerJoiningAtOnce(
            settings.kafka_bootstrap_servers,
            client_id="rotations-service",
            apply_types=False,
            linger_ms=settings.linger_ms,
            graceful_timeout=10.0,
            logger=logging.getLogger("rotations.faststream"),
            log_level=logging.DEBUG,
            **broker_options(settings),
        )
        # Tracing: None when off, so the command path checks it once per batch and no more.
        self.tracing = tracing
        if tracing is not None:
            from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

            self.broker.insert_middleware(
                KafkaTelemetryMiddleware(tracer_provider=tracing.provider)
            )
            app.event_carriers = tracing.carriers
        self.faststream = FastStream(self.broker)
        if tracing is not None:
            self.faststream.after_shutdown(tracing.shutdown)
        self.started = asyncio.Event()  # every consumer started (faststream's after_startup)
        self.faststream.after_startup(self.started.set)
        self.faststream.on_shutdown(self._finish_starting)
        # Replies and events go out in batches through a producer of their own; a broker
        # handed in (faststream's in-memory test broker) gets them one publish each.
        self.sender: RecordSender
        if broker is None:
            batch_sender = BatchSender(
                settings.kafka_bootstrap_servers,
                settings.linger_ms,
                "rotations-service-out",
                security=kafka_security(settings),
            )
            self.faststream.on_startup(batch_sender.start)
            self.faststream.after_shutdown(batch_sender.stop)
            self.sender = batch_sender
        else:
            self.sender = BrokerSender(self.broker)
        self.dead_letters = 0
        self.observers: list[ServiceObserver] = []
        self.stored = asyncio.Event()  # set whenever commands were stored (wakes followers)
        self._attempts: dict[tuple[int, int], int] = {}
        self.listener = ResumeFromStore(
            app.recorder,
            cluster_id,
            lambda: self.command_subscriber.consumer,
            settings,
        )
        self.command_subscriber = self._subscribe_commands(settings)
        self.suggest_subscriber, self.directory_subscriber = self._subscribe_requests(
            settings, cluster_id
        )

    def _subscribe_commands(self, settings: Settings) -> LogicSubscriber[Any]:
        """Commands in batches (one transaction per fetch), from the stored positions."""
        subscriber = self.broker.subscriber(
            settings.commands_topic,
            group_id=settings.group_id,
            batch=True,
            max_records=settings.max_batch,
            batch_timeout_ms=settings.fetch_max_wait_ms,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            listener=self.listener,
            parser=sanitising_parser,
            decoder=whole_message,
            no_reply=True,
            title="rotations.commands",
            description="Commands (CreateRotation, AddMember, BookMeeting, ...) keyed by "
            "rotation id; each is answered on its reply_to topic",
        )
        subscriber(self.on_commands)
        return subscriber

    def _subscribe_requests(
        self, settings: Settings, cluster_id: str
    ) -> tuple[LogicSubscriber[Any], LogicSubscriber[Any]]:
        """Suggestions and directory facts, each answered by its handler's return value."""
        # Routers only to scope each answering middleware to its subscriber.
        suggestions = KafkaRouter(middlewares=[self._answering(suggestion_rejection)])
        directory = KafkaRouter(middlewares=[self._answering(directory_rejection)])
        suggest = suggestions.subscriber(
            settings.suggest_topic,
            group_id=f"{settings.group_id}-queries",
            # Requests sent while the service starts are answered too.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            ack_policy=AckPolicy.ACK_FIRST,
            # Suggestions only read: answer several at once so one slow reply does not
            # hold up the requests queued behind it.
            max_workers=settings.suggest_workers,
            listener=FromStartOnNewCluster(
                cluster_id,
                lambda: self.suggest_subscriber.consumer,
                settings,
            ),
            parser=sanitising_parser,
            decoder=decoder(SUGGEST_ADAPTER, settings.max_message_bytes),
            title="rotations.suggest-host",
            description="Host-suggestion requests, answered on the reply_to topic",
        )
        suggest(self.on_suggest)
        facts = directory.subscriber(
            settings.directory_topic,
            group_id=f"{settings.group_id}-directory",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            listener=FromStartOnNewCluster(
                cluster_id,
                lambda: self.directory_subscriber.consumer,
                settings,
            ),
            parser=sanitising_parser,
            decoder=decoder(c.DIRECTORY_ADAPTER, settings.max_message_bytes),
            title="rotations.directory",
            description="UserUpdated, UserDeactivated and TeamUpdated facts from the user "
            "directory, stored as events (idempotent by message_id)",
        )
        facts(self.on_directory)
        self.broker.include_routers(suggestions, directory)
        return suggest, facts

    def _answering(self, reject: Callable[[InvalidMessage], Reply]) -> Answering:
        return Answering(reject, self.dead_letter, self.settings.reply_timeout_seconds)

    async def _finish_starting(self) -> None:
        """A stop while the consumers still start (their group joins take seconds each) would
        race faststream's concurrent suggestion subscriber: started after its stop, it fails
        on its closed queue. Let the start finish first, for a while at most."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.started.wait(), timeout=STARTUP_GRACE_SECONDS)

    # -- commands ------------------------------------------------------------------------

    async def on_commands(self, msg: KafkaMessage) -> None:
        """A fetched batch: its valid commands are stored in one transaction, with the
        position of each partition it came from, then answered.

        One transaction per fetch, not per partition: waiting for each commit (a disk flush)
        left the service idle for a quarter of its time.
        """
        records: Sequence[Record] = msg.raw_message
        await self._handle_batch(records)

    async def _handle_batch(self, records: Sequence[Record]) -> None:
        """Store the batch's commands, then send their replies."""
        valid: list[tuple[Record, c.CommandBase]] = []
        command: c.CommandBase
        for record in records:
            try:
                command = parse(
                    c.COMMAND_ADAPTER, record.value or b"", self.settings.max_message_bytes
                )
            except InvalidMessage as error:
                reply = c.CommandReply(
                    status="rejected",
                    command_id=error.partial.get("command_id"),
                    rotation_id=error.partial.get("rotation_id"),
                    error=c.ErrorBody(code=error.code, message=str(error)),
                )
                rejected = record if self.verifier is None else without_token(record)
                await self._reject(rejected, reply.error, dump(reply))  # type: ignore[arg-type]
                continue
            valid.append((record, command))
        if self.verifier is not None and valid:
            # Signed actors: a refused command is not executed (and leaves no receipt); every
            # record's token is blanked before it can reach a dead letter.
            valid, refused = await asyncio.to_thread(verify_commands, self.verifier, valid)
            refusals = []
            for record, command, forbidden in refused:
                body = c.ErrorBody(code=forbidden.code, message=str(forbidden))
                refusal = c.CommandReply(
                    status="rejected",
                    command_id=command.command_id,
                    rotation_id=command.rotation_id,
                    error=body,
                )
                refusals.append(self._reject(record, body, dump(refusal)))
            await asyncio.gather(*refusals)
        answers: list[Coroutine[Any, Any, object]] = []
        accepted: list[OutgoingRecord] = []
        if not valid:
            return
        cluster_id = self.listener.cluster_id
        items = [(command, tracking_for(cluster_id, record)) for record, command in valid]
        tracing = self.tracing
        contexts: list[Context] = []
        try:
            if tracing is None:
                replies = await asyncio.to_thread(self.handle_commands, items)
            else:
                contexts = [extract(record.headers) for record, _ in valid]
                replies = await asyncio.to_thread(
                    self._handle_traced, tracing, valid, items, contexts
                )
        except Exception as error:
            await self._retry_or_give_up(valid, error)
            return
        self.stored.set()
        if tracing is not None:
            await self._answer_traced(tracing, valid, replies, contexts)
            return
        for (record, command), reply in zip(valid, replies, strict=True):
            self._attempts.pop((record.partition, record.offset), None)
            if reply.error is not None:
                answers.append(self._reject(record, reply.error, dump(reply)))
            else:
                log.debug(
                    "command accepted",
                    extra={
                        "command": type(command).__name__,
                        "command_id": command.command_id,
                        "rotation_id": command.rotation_id,
                    },
                )
                outgoing = self._reply_record(record, dump(reply))
                if outgoing is not None:
                    accepted.append(outgoing)
        # All at once, in a batch per reply topic. Each is already stored, so their order
        # does not matter.
        answers.append(self._send_replies(accepted))
        await asyncio.gather(*answers)

    def _handle_traced(
        self,
        tracing: Tracing,
        valid: list[tuple[Record, c.CommandBase]],
        items: list[tuple[c.CommandBase, Tracking]],
        contexts: list[Context],
    ) -> list[c.CommandReply]:
        """`handle_commands` with the batch's decide and store spans, and each command's
        traceparent handed to the events it stores (`service.tracing.EventCarriers`)."""
        batch = BatchTrace(
            {
                command.command_id: carrier
                for record, command in valid
                if (carrier := raw_traceparent(record.headers)) is not None
            }
        )
        token = tracing.begin_batch(batch)
        started = time.time_ns()
        failure: BaseException | None = None
        try:
            return self.handle_commands(items)
        except BaseException as error:
            failure = error
            raise
        finally:
            tracing.end_batch(token)
            tracing.batch_spans(batch, contexts, started, time.time_ns(), failure)

    async def _answer_traced(
        self,
        tracing: Tracing,
        valid: list[tuple[Record, c.CommandBase]],
        replies: list[c.CommandReply],
        contexts: list[Context],
    ) -> None:
        """The replies of a traced batch: each in a `rotations.reply` span, a child of its
        command's context, whose traceparent the reply record carries."""
        answers: list[Coroutine[Any, Any, object]] = []
        accepted: list[OutgoingRecord] = []
        spans: list[Span] = []
        for (record, command), reply, parent in zip(valid, replies, contexts, strict=True):
            self._attempts.pop((record.partition, record.offset), None)
            span = tracing.reply_span(parent, command)
            spans.append(span)
            if reply.error is not None:
                answers.append(self._reject_in(span, record, reply.error, dump(reply)))
                continue
            outgoing = self._reply_record(record, dump(reply))
            if outgoing is None:
                continue
            traceparent = traceparent_of(span)
            if traceparent is not None:
                headers = (*outgoing.headers, (TRACEPARENT, traceparent))
                outgoing = dataclasses.replace(outgoing, headers=headers)
            accepted.append(outgoing)
        answers.append(self._send_replies(accepted))
        try:
            await asyncio.gather(*answers)
        finally:
            for span in spans:
                span.end()

    async def _reject_in(
        self, span: Span, record: Record, error: c.ErrorBody, reply: bytes
    ) -> None:
        """`_reject` in the reply span's context (its own task's: gather made one)."""
        token = otel_context.attach(set_span_in_context(span))
        try:
            await self._reject(record, error, reply)
        finally:
            otel_context.detach(token)

    def handle_commands(self, items: list[tuple[c.CommandBase, Tracking]]) -> list[c.CommandReply]:
        """Store the commands' effects (once); the read model follows the saves as they
        are stored (`follow_saves_of`), and every suggestion catches up first anyway."""
        replies = self.app.execute_batch(items)
        # After the commit: an observer's failure must not turn stored commands into a retry.
        self._tell(lambda observer: observer.commands_handled(items, replies))
        return replies

    async def _retry_or_give_up(
        self, valid: list[tuple[Record, c.CommandBase]], error: Exception
    ) -> None:
        """Store trouble: back off and let the batch be redelivered, a few times at most."""
        first = valid[0][0]
        key = (first.partition, first.offset)
        attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
        log.error(
            "commands failed: %r",
            error,
            extra={"attempt": attempts, "partition": first.partition, "offset": first.offset},
        )
        if attempts < self.settings.max_attempts:
            await asyncio.sleep(min(0.1 * 2**attempts, 5.0))
            raise error  # NACK: the consumer seeks back and the batch comes again
        self._attempts.pop(key, None)
        body = c.ErrorBody(
            code="internal",
            message=f"gave up after {attempts} attempts: {type(error).__name__}: {error}",
        )
        for record, command in valid:
            reply = c.CommandReply(
                status="rejected",
                command_id=command.command_id,
                rotation_id=command.rotation_id,
                error=body,
            )
            await self._reject(record, body, dump(reply))

    # -- directory -----------------------------------------------------------------------

    async def on_directory(self, fact: c.DirectoryFact) -> c.CommandReply:
        """Store the fact with its Kafka position (once); the reply is the return value."""
        tracking = tracking_for(self.listener.cluster_id, CURRENT_RECORD.get())
        reply = await asyncio.to_thread(self._record_directory, fact, tracking)
        if reply.error is not None:
            raise Rejected(reply)
        return reply

    def _record_directory(
        self, fact: c.UserUpdated | c.UserDeactivated | c.TeamUpdated, tracking: Tracking
    ) -> c.CommandReply:
        return self.app.record_directory(fact, tracking)

    # -- suggestions ---------------------------------------------------------------------

    async def on_suggest(self, request: c.SuggestHost) -> c.SuggestionReply:
        """The answer is the return value: faststream sends it to the request's reply_to."""
        return await asyncio.to_thread(self.answer_suggestion, request, time.monotonic())

    def answer_suggestion(
        self, request: c.SuggestHost, requested_at: float | None = None
    ) -> c.SuggestionReply:
        """Answer from the read model as it stands after every write stored before
        `requested_at` (a `time.monotonic()` value; default: now)."""
        started = time.perf_counter()
        reply = answer_suggestion(
            self.app,
            self.projector,
            request,
            time.monotonic() if requested_at is None else requested_at,
        )
        seconds = time.perf_counter() - started
        self._tell(lambda observer: observer.suggestion_answered(request, seconds, reply))
        return reply

    # -- replies and dead letters --------------------------------------------------------

    async def _reply(self, record: Record, body: bytes) -> str | None:
        """Answer on the record's reply_to topic; returns why it could not, if it could not."""
        topic = reply_topic(record)
        if topic is None:
            return None
        if not LEGAL_TOPIC.match(topic):
            return f"reply_to {topic[:60]!r} is not a legal topic name"
        headers = {"content-type": "application/json"}
        correlation_id = header(record, "correlation_id")
        try:
            await asyncio.wait_for(
                self.broker.publish(
                    body, topic=topic, correlation_id=correlation_id, headers=headers
                ),
                timeout=self.settings.reply_timeout_seconds,
            )
        except Exception as error:  # an unwritable reply topic must not stop the consumer
            log.warning("reply to %s failed: %r", topic, error)
            return f"reply to {topic!r} failed: {type(error).__name__}"
        return None

    def _reply_record(self, record: Record, body: bytes) -> OutgoingRecord | None:
        """The reply to an accepted command, if it asked for one on a legal topic."""
        topic = reply_topic(record)
        if topic is None or not LEGAL_TOPIC.match(topic):
            if topic is not None:
                log.warning("reply_to %r is not a legal topic name", topic[:60])
            return None
        headers = [("content-type", b"application/json")]
        correlation_id = header(record, "correlation_id")
        if correlation_id is not None:
            headers.append(("correlation_id", correlation_id.encode()))
        return OutgoingRecord(topic, body, headers=tuple(headers))

    async def _send_replies(self, replies: list[OutgoingRecord]) -> None:
        """Send accepted commands' replies; a failure is logged (the commands are stored)."""
        if not replies:
            return
        try:
            await asyncio.wait_for(
                self.sender.send(replies), timeout=self.settings.reply_timeout_seconds
            )
        except Exception as error:  # an unwritable reply topic must not stop the consumer
            log.warning("replies failed: %r", error, extra={"replies": len(replies)})

    async def _reject(self, record: Record, error: c.ErrorBody, reply: bytes) -> None:
        log.warning(
            "message rejected",
            extra={
                "code": error.code,
                "reason": error.message,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )
        undelivered = await self._reply(record, reply)
        if undelivered:
            error = c.ErrorBody(code=error.code, message=f"{error.message} ({undelivered})")
        await self.dead_letter(record, error)

    async def dead_letter(self, record: Record, error: c.ErrorBody) -> None:
        """Record the message on the dead-letter topic; too-large originals are truncated."""
        value = record.value or b""
        kept = value[: self.settings.dead_letter_max_original_bytes]
        letter = c.DeadLetter(
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key else None,
            error=error,
            original=base64.b64encode(kept).decode(),
            original_size=len(value),
            original_truncated=len(kept) < len(value),
            headers=headers_of(record),
        )
        try:
            await self.broker.publish(
                dump(letter),
                topic=self.settings.dead_letter_topic,
                key=record.key,
                headers={"content-type": "application/json"},
            )
        except Exception as failure:  # the consumer must go on; the log keeps the record
            log.error(
                "dead letter not published: %r",
                failure,
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "code": error.code,
                },
            )
            return
        self.dead_letters += 1
        self._tell(lambda observer: observer.dead_lettered(record, error))

    def _tell(self, what: Callable[[ServiceObserver], object]) -> None:
        """Tell every observer; one that raises is logged and skipped."""
        for observer in self.observers:
            try:
                what(observer)
            except Exception:
                log.exception("an observer failed")
