"""Tracing with the SDK's in-memory exporter, through faststream's in-memory TestKafkaBroker:
a command's trace reaches its reply, its spans and its events; off, nothing is added."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.events_publisher import EventsPublisher
from service.kafka_app import RotationsKafkaApp
from service.kafka_positions import Record
from service.kafka_records import whole_message
from service.record_sender import OutgoingRecord
from service.settings import Settings
from service.store import store_environment
from service.tracing import Tracing, open_tracing

pytestmark = pytest.mark.asyncio(loop_scope="session")
REPLIES = "test.traced-replies"


class Recorder:
    """A RecordSender that keeps what it was given."""

    def __init__(self) -> None:
        self.records: list[OutgoingRecord] = []

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        self.records.extend(records)


class Traced:
    def __init__(
        self,
        service: RotationsKafkaApp,
        exporter: InMemorySpanExporter | None,
        tracer: Tracer | None,
        publisher: EventsPublisher,
        events: Recorder,
    ) -> None:
        self.service = service
        self.exporter = exporter
        self.tracer = tracer
        self.publisher = publisher
        self.events = events
        self.replies: list[dict[str, Any]] = []

    async def send(self, topic: str, fields: dict[str, Any], **headers: str) -> dict[str, Any]:
        correlation_id = uuid.uuid4().hex
        await self.service.broker.publish(
            json.dumps(fields).encode(),
            topic=topic,
            key=b"k",
            correlation_id=correlation_id,
            reply_to=REPLIES,
            headers=headers,
        )
        return next(r for r in self.replies if r["correlation_id"] == correlation_id)

    async def command(self, **fields: Any) -> dict[str, Any]:
        body = {"command_id": uuid.uuid4().hex, "actor": "tests", **fields}
        return await self.send(self.service.settings.commands_topic, body)

    def spans(self, name: str) -> list[ReadableSpan]:
        assert self.exporter is not None
        return [s for s in self.exporter.get_finished_spans() if s.name == name]


async def traced_harness(tmp_path: Path, tracing: Tracing | None) -> AsyncIterator[Traced]:
    settings = Settings(ROTATIONS_STORE=f"sqlite:///{tmp_path}/store.sqlite")
    app = RotationsApplication(env=store_environment(settings.store))
    service = RotationsKafkaApp(
        settings,
        app,
        RotationProjector(app, open_view(app)),
        cluster_id="test",
        broker=KafkaBroker(apply_types=False),
        tracing=tracing,
    )
    events = Recorder()
    publisher = EventsPublisher(app, service.broker, settings, sender=events)
    publisher.follow_saves_of(app)
    exporter = None
    tracer = None
    if tracing is not None:
        exporter = InMemorySpanExporter()
        tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = tracing.provider.get_tracer("tests")
    harness = Traced(service, exporter, tracer, publisher, events)

    @service.broker.subscriber(REPLIES, decoder=whole_message)
    async def on_reply(msg: KafkaMessage) -> None:
        harness.replies.append(
            {
                "correlation_id": msg.correlation_id,
                "headers": dict(msg.headers),
                "body": json.loads(msg.body),
            }
        )

    async with TestKafkaBroker(service.broker):
        yield harness
    app.close()


@pytest_asyncio.fixture(loop_scope="session")
async def traced(tmp_path: Path) -> AsyncIterator[Traced]:
    async for harness in traced_harness(tmp_path, Tracing(TracerProvider())):
        yield harness


@pytest_asyncio.fixture(loop_scope="session")
async def untraced(tmp_path: Path) -> AsyncIterator[Traced]:
    async for harness in traced_harness(tmp_path, None):
        yield harness


def trace_id_of(traceparent: str | bytes) -> int:
    text = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
    return int(text.split("-")[1], 16)


async def test_a_commands_trace_reaches_its_reply_spans_and_events(traced: Traced) -> None:
    assert traced.tracer is not None
    with traced.tracer.start_as_current_span("client") as client:
        # faststream's publish (its telemetry middleware) puts the client's trace in the
        # command's traceparent header.
        reply = await traced.command(
            type="CreateRotation", rotation_id="t1", name="Sales", members=["kari", "ola"]
        )
    trace_id = client.get_span_context().trace_id
    assert reply["body"]["status"] == "accepted"
    assert trace_id_of(reply["headers"]["traceparent"]) == trace_id

    (decide,) = traced.spans("rotations.decide")
    (store,) = traced.spans("rotations.store")
    for span in (decide, store):
        assert [link.context.trace_id for link in span.links] == [trace_id]
        assert span.attributes is not None and span.attributes["rotations.commands"] == 1
    assert decide.end_time is not None and store.start_time is not None
    assert decide.end_time <= store.start_time
    (reply_span,) = traced.spans("rotations.reply")
    assert reply_span.context is not None and reply_span.context.trace_id == trace_id
    assert reply_span.parent is not None and reply_span.parent.trace_id == trace_id
    # faststream's own consume span for the batch and publish span for the reply
    names = {s.name for s in traced.exporter.get_finished_spans()} if traced.exporter else set()
    assert "rotations.commands process" in names
    assert f"{REPLIES} publish" in names

    assert await traced.publisher.publish_next() == 1
    (event,) = traced.events.records
    headers = dict(event.headers)
    assert trace_id_of(headers["traceparent"]) == trace_id
    assert headers["position"] == b"1"


def command_record(offset: int, traceparent: str, **fields: Any) -> Record:
    body = json.dumps({"command_id": uuid.uuid4().hex, "actor": "tests", **fields}).encode()
    return Record(
        topic="rotations.commands",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=body,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(body),
        headers=[
            ("reply_to", REPLIES.encode()),
            ("correlation_id", uuid.uuid4().hex.encode()),
            ("traceparent", traceparent.encode()),
        ],
    )


async def test_a_batch_links_every_command_and_each_event_keeps_its_own_trace(
    traced: Traced,
) -> None:
    first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    second = "00-1bf7651916cd43dd8448eb211c80319d-c7ad6b7169203332-01"
    await traced.service._handle_batch(
        [
            command_record(
                1, first, type="CreateRotation", rotation_id="b1", name="A", members=["k"]
            ),
            command_record(
                2, second, type="CreateRotation", rotation_id="b2", name="B", members=["k"]
            ),
        ]
    )
    (decide,) = traced.spans("rotations.decide")
    assert [link.context.trace_id for link in decide.links] == [
        trace_id_of(first),
        trace_id_of(second),
    ]
    replies = sorted(trace_id_of(r["headers"]["traceparent"]) for r in traced.replies)
    assert replies == sorted([trace_id_of(first), trace_id_of(second)])
    assert await traced.publisher.publish_next() == 2
    by_rotation = {
        json.loads(e.value)["rotation_id"]: dict(e.headers)["traceparent"]
        for e in traced.events.records
    }
    assert by_rotation == {"b1": first.encode(), "b2": second.encode()}
    assert len(traced.service.app.event_carriers or ()) == 0  # taken, not kept


async def test_a_rejected_commands_reply_carries_its_trace(traced: Traced) -> None:
    assert traced.tracer is not None
    with traced.tracer.start_as_current_span("client") as client:
        reply = await traced.command(type="AddMember", rotation_id="nope", user_id="x")
    assert reply["body"]["error"]["code"] == "unknown_rotation"
    trace_id = client.get_span_context().trace_id
    assert trace_id_of(reply["headers"]["traceparent"]) == trace_id
    (reply_span,) = traced.spans("rotations.reply")
    assert reply_span.context is not None and reply_span.context.trace_id == trace_id


async def test_a_suggestions_reply_carries_its_trace(traced: Traced) -> None:
    await traced.command(type="CreateRotation", rotation_id="t2", name="S", members=["kari"])
    assert traced.tracer is not None
    with traced.tracer.start_as_current_span("client") as client:
        reply = await traced.send(traced.service.settings.suggest_topic, {"rotation_id": "t2"})
    assert reply["body"]["host_id"] == "kari"
    assert trace_id_of(reply["headers"]["traceparent"]) == client.get_span_context().trace_id
    assert traced.spans("rotations.suggest-host process")


async def test_events_read_back_from_the_log_carry_no_trace(traced: Traced) -> None:
    assert traced.tracer is not None
    with traced.tracer.start_as_current_span("client"):
        await traced.command(type="CreateRotation", rotation_id="t3", name="S", members=["k"])
    traced.publisher._saved.clear()  # as if another writer had stored it: read from the log
    assert await traced.publisher.publish_next() == 1
    (event,) = traced.events.records
    assert "traceparent" not in dict(event.headers)
    assert traced.publisher.from_memory == 0


async def test_off_no_middleware_no_traceparent(untraced: Traced) -> None:
    service = untraced.service
    assert not any(
        isinstance(m, KafkaTelemetryMiddleware) for m in service.broker.config.broker_middlewares
    )
    assert service.tracing is None and service.app.event_carriers is None
    reply = await untraced.send(
        service.settings.commands_topic,
        {
            "command_id": uuid.uuid4().hex,
            "actor": "tests",
            "type": "CreateRotation",
            "rotation_id": "o1",
            "name": "S",
            "members": ["kari"],
        },
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    assert reply["body"]["status"] == "accepted"
    assert "traceparent" not in reply["headers"]
    await untraced.publisher.publish_next()
    (event,) = untraced.events.records
    assert "traceparent" not in dict(event.headers)


async def test_open_tracing_is_off_without_an_endpoint() -> None:
    assert open_tracing(Settings(OTEL_EXPORTER_OTLP_ENDPOINT=None)) is None
    tracing = open_tracing(Settings(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318"))
    assert tracing is not None
    resource = tracing.provider.resource.attributes
    assert resource["service.name"] == "rotations"
    tracing.provider.shutdown()
