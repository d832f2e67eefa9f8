"""Request handlers answered by return value, and what faststream does not know of it.

Suggestions and directory facts are typed handlers that return their reply: faststream decodes
(`service.parsing.decoder`) and publishes the return value to the request's `reply_to` header
topic with its `correlation_id`. `AnsweringMiddleware` keeps the rules faststream does not
know: bad input is answered and dead-lettered, an illegal `reply_to` is never published to, and
a reply that fails or times out is dead-lettered instead of stopping the consumer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias

from faststream import ContextRepo
from faststream.kafka.response import KafkaPublishCommand
from faststream.message import StreamMessage
from faststream.middlewares import BaseMiddleware

from service import contracts as c
from service.kafka_positions import Record
from service.kafka_records import LEGAL_TOPIC
from service.parsing import InvalidMessage

log = logging.getLogger("rotations.kafka")

Reply: TypeAlias = c.CommandReply | c.SuggestionReply
# The record a request handler is answering (set by `AnsweringMiddleware`): with
# `apply_types=False` faststream hands a handler its decoded body only, and a directory fact
# is stored with its Kafka position.
CURRENT_RECORD: ContextVar[Record] = ContextVar("rotations_current_record")


class Rejected(Exception):
    """A handler refuses its input: the reply it carries is sent, and the message is
    dead-lettered."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.error.message if reply.error is not None else "rejected")
        self.reply = reply


@dataclass(frozen=True)
class Answering:
    """faststream middleware factory for a subscriber answered by return value."""

    reject: Callable[[InvalidMessage], Reply]  # the reply to input that fails its schema
    dead_letter: Callable[[Record, c.ErrorBody], Awaitable[None]]
    reply_timeout: float

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> AnsweringMiddleware:
        return AnsweringMiddleware(msg, context=context, answering=self)


class AnsweringMiddleware(BaseMiddleware[KafkaPublishCommand, Record]):
    """One message's answer: bad input becomes an error reply, the reply is guarded, and a
    rejected or unanswered message is dead-lettered once faststream has tried to reply."""

    def __init__(self, msg: Record, /, *, context: ContextRepo, answering: Answering) -> None:
        super().__init__(msg, context=context)
        self.answering = answering
        self.rejection: c.ErrorBody | None = None
        self.undelivered: str | None = None

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        token = CURRENT_RECORD.set(msg.raw_message)
        try:
            return await call_next(msg)  # decoding (and InvalidMessage) happens in here
        except InvalidMessage as error:
            reply = self.answering.reject(error)
        except Rejected as rejected:
            reply = rejected.reply
        finally:
            CURRENT_RECORD.reset(token)
        self.rejection = reply.error
        record: Record = msg.raw_message
        log.warning(
            "message rejected",
            extra={
                "code": reply.error.code if reply.error is not None else None,
                "reason": reply.error.message if reply.error is not None else None,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
            },
        )
        return reply  # faststream replies with it, as with any return value

    async def publish_scope(
        self,
        call_next: Callable[[KafkaPublishCommand], Awaitable[Any]],
        cmd: KafkaPublishCommand,
    ) -> Any:
        """The reply: never to an illegal topic name, within the timeout, never raising."""
        topic = cmd.destination
        if not LEGAL_TOPIC.match(topic):
            self.undelivered = f"reply_to {topic[:60]!r} is not a legal topic name"
            log.warning("reply not sent: %s", self.undelivered)
            return None
        try:
            return await asyncio.wait_for(call_next(cmd), timeout=self.answering.reply_timeout)
        except Exception as error:  # an unwritable reply topic must not stop the consumer
            log.warning("reply to %s failed: %r", topic, error)
            self.undelivered = f"reply to {topic!r} failed: {type(error).__name__}"
            return None

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        """Dead-letter a rejected or unanswered message; other errors go on to faststream
        (logged, then acknowledged by the subscriber's policy)."""
        if exc_type is not None or (self.rejection is None and self.undelivered is None):
            return False
        error = self.rejection or c.ErrorBody(
            code="reply_undelivered", message="answered, but the reply was not delivered"
        )
        if self.undelivered is not None:
            error = c.ErrorBody(code=error.code, message=f"{error.message} ({self.undelivered})")
        await self.answering.dead_letter(self.msg, error)
        return False


def suggestion_rejection(error: InvalidMessage) -> c.SuggestionReply:
    return c.SuggestionReply(
        rotation_id=error.partial.get("rotation_id"),
        error=c.ErrorBody(code=error.code, message=str(error)),
    )


def directory_rejection(error: InvalidMessage) -> c.CommandReply:
    return c.CommandReply(status="rejected", error=c.ErrorBody(code=error.code, message=str(error)))
