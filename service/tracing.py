"""Tracing: OpenTelemetry spans and W3C trace context, off unless an OTLP endpoint is set.

`open_tracing(settings)` is None without `OTEL_EXPORTER_OTLP_ENDPOINT`; every traced path
checks that None once (per batch on the command path) and does nothing else. When on:

- faststream's `KafkaTelemetryMiddleware` on the service's broker: consume and publish spans
  for every subscriber; replies sent by return value (suggestions, directory facts) carry the
  request's `traceparent` (faststream's own propagation).
- the command batch: `rotations.decide` and `rotations.store` spans for the batch, linked to
  every command's context; per command a `rotations.reply` span, child of the command's
  context, whose `traceparent` goes into that command's reply record.
- the events a command stored: published on `rotations.events` with the command's own
  `traceparent` (`EventCarriers`, filled while each command is decided).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from service.settings import Settings

TRACEPARENT = "traceparent"
KafkaHeaders = Sequence[tuple[str, bytes | None]]
_W3C = TraceContextTextMapPropagator()


class _KafkaHeadersGetter(Getter[KafkaHeaders]):
    """Reads W3C headers from aiokafka's list of (name, bytes) pairs."""

    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        found = [bytes(v).decode("latin-1") for k, v in carrier if k == key and v is not None]
        return found or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [k for k, _ in carrier]


HEADERS_GETTER = _KafkaHeadersGetter()


def extract(headers: KafkaHeaders | None) -> Context:
    """The W3C trace context of a record's headers (an empty context when it has none)."""
    return _W3C.extract(headers or (), getter=HEADERS_GETTER)


def traceparent_of(span: Span) -> bytes | None:
    """The `traceparent` header value naming `span` as the parent."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    value = carrier.get(TRACEPARENT)
    return value.encode() if value is not None else None


def raw_traceparent(headers: KafkaHeaders | None) -> bytes | None:
    for key, value in headers or ():
        if key == TRACEPARENT and value is not None:
            return bytes(value)
    return None


@dataclass
class BatchTrace:
    """One command batch while it is decided and stored (set in a ContextVar around it)."""

    carriers: dict[str, bytes]  # command id → its record's traceparent
    decided_ns: int = 0  # when the last decision ended (the store starts then)


_BATCH: ContextVar[BatchTrace | None] = ContextVar("rotations_batch_trace", default=None)


@dataclass
class EventCarriers:
    """(originator id, version) → the traceparent of the command that decided that event.

    Filled by the application's decisions while a `BatchTrace` is current, taken by the
    events publisher when it is told of the save; bounded (oldest dropped first).
    """

    max_size: int = 100_000
    _carriers: OrderedDict[tuple[UUID, int], bytes] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decided(self, command_id: str, originator_id: UUID | None, versions: Iterable[int]) -> None:
        """A command was decided (accepted, with these new versions of `originator_id`)."""
        batch = _BATCH.get()
        if batch is None:
            return
        batch.decided_ns = time.time_ns()
        carrier = batch.carriers.get(command_id)
        if carrier is None or originator_id is None:
            return
        with self._lock:
            for version in versions:
                self._carriers[(originator_id, version)] = carrier
            while len(self._carriers) > self.max_size:
                self._carriers.popitem(last=False)

    def take(self, originator_id: UUID, version: int) -> bytes | None:
        if not self._carriers:
            return None
        with self._lock:
            return self._carriers.pop((originator_id, version), None)

    def __len__(self) -> int:
        return len(self._carriers)


class Tracing:
    """The service's tracer provider, its tracer and the events' trace carriers."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("rotations")
        self.carriers = EventCarriers()

    def begin_batch(self, batch: BatchTrace) -> Token[BatchTrace | None]:
        return _BATCH.set(batch)

    def end_batch(self, token: Token[BatchTrace | None]) -> None:
        _BATCH.reset(token)

    def batch_spans(
        self,
        batch: BatchTrace,
        contexts: Sequence[Context],
        started_ns: int,
        finished_ns: int,
        error: BaseException | None = None,
    ) -> None:
        """`rotations.decide` and `rotations.store` of one batch, after the fact (their
        times measured while it ran), each linked to every command's context."""
        links = [
            Link(span_context)
            for ctx in contexts
            if (span_context := trace.get_current_span(ctx).get_span_context()).is_valid
        ]
        decided_ns = batch.decided_ns or finished_ns
        attributes = {"rotations.commands": len(contexts)}
        for name, start, end in (
            ("rotations.decide", started_ns, decided_ns),
            ("rotations.store", decided_ns, finished_ns),
        ):
            span = self.tracer.start_span(
                name, links=links, start_time=start, attributes=attributes
            )
            if error is not None and name == "rotations.store":
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end(end_time=end)

    def reply_span(self, parent: Context, command: Any) -> Span:
        """The span of one command's reply, a child of the command's own context."""
        return self.tracer.start_span(
            "rotations.reply",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "rotations.command": type(command).__name__,
                "rotations.command_id": command.command_id,
            },
        )

    async def shutdown(self) -> None:
        """Flush and stop the exporter (in a thread: it may wait on the network)."""
        import asyncio

        await asyncio.to_thread(self.provider.shutdown)


def open_tracing(settings: Settings) -> Tracing | None:
    """Spans exported over OTLP (HTTP/protobuf) in batches; None when no endpoint is set."""
    if not settings.otel_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    endpoint = f"{settings.otel_endpoint.rstrip('/')}/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(provider)
