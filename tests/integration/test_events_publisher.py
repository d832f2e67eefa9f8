"""The events publisher over a real Kafka-protocol broker, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import Tracking
from faststream.kafka import KafkaBroker

from projections.rotation_view import ROTATION_TOPIC_PREFIX
from service.application import RotationsApplication
from service.events_publisher import EventsPublisher, open_tracking, publish_events, tracking_name
from service.settings import Settings
from service.store import store_environment
from service.topics import ensure_topics
from tests.environment import postgres_schema_url
from tests.integration.helpers import read_topic
from tests.unit.commands import book, ok

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PARTITIONS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/publisher.sqlite"
        return
    with postgres_schema_url() as url:
        yield url


@pytest.fixture
def settings(bootstrap_servers: str, store_url: str, uid: str) -> Settings:
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        ROTATIONS_TOPIC_PREFIX=f"pub{uid}.",
        ROTATIONS_STORE=store_url,
        ROTATIONS_PROJECTION_POLL_SECONDS=0.05,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[RotationsApplication]:
    application = RotationsApplication(env=store_environment(settings.store))
    yield application
    application.close()


def history(app: RotationsApplication, rotation_id: str, bookings: int) -> None:
    ok(app, "CreateRotation", rotation_id, name="Sales", members=["a", "b", "c"])
    for i in range(bookings):
        book(app, rotation_id, f"m{i}", host_id="c" if i % 4 == 3 else None)
    ok(app, "ToggleAvailability", rotation_id, user_id="b", available=False)
    ok(app, "RenameRotation", rotation_id, name="Sales EMEA")


def rotation_positions(app: RotationsApplication) -> list[int]:
    """Global positions of every stored Rotation event, in store order."""
    notifications = app.recorder.select_notifications(start=1, limit=1_000_000)
    return [n.id for n in notifications if n.topic.startswith(ROTATION_TOPIC_PREFIX)]


async def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(condition):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def run_until_caught_up(app: RotationsApplication, settings: Settings) -> None:
    """Start a broker and `publish_events`, wait for the tracked position, stop both."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    await broker.start()
    stop = asyncio.Event()
    task = asyncio.create_task(publish_events(app, broker, settings, stop))
    tracking = open_tracking(app)
    last = app.recorder.max_notification_id()
    try:
        await wait_until(lambda: tracking.max_tracking_id(tracking_name(settings)) == last)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await broker.stop()


async def consume_all(settings: Settings) -> list[Any]:
    """Every record on the events topic, read with manually assigned partitions."""
    return await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)


def position_of(record: Any) -> int:
    return int(dict(record.headers)["position"].decode())


def check_store_order(records: list[Any]) -> None:
    """Per partition, first deliveries come in store order; redeliveries only repeat."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(position_of(record))
    for positions in by_partition.values():
        first_seen = list(dict.fromkeys(positions))
        assert first_seen == sorted(first_seen)


async def test_every_event_in_store_order_and_a_restart_resumes_without_gaps(
    app: RotationsApplication, settings: Settings, uid: str
) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [settings.events_topic], PARTITIONS)
    for name in ("x", "y", "z"):
        history(app, f"{uid}-{name}", bookings=6)
    await run_until_caught_up(app, settings)
    first_run = rotation_positions(app)

    history(app, f"{uid}-w", bookings=3)
    book(app, f"{uid}-x", "later")
    await run_until_caught_up(app, settings)  # a restart: resumes from its tracking record

    records = await consume_all(settings)
    positions = [position_of(r) for r in records]
    assert sorted(positions) == rotation_positions(app)  # every event, once, no gaps
    assert len(rotation_positions(app)) > len(first_run)
    check_store_order(records)

    bodies = [json.loads(r.value) for r in records]
    for record, body in zip(records, bodies, strict=True):
        assert record.key.decode() == body["rotation_id"]
        assert body["position"] == position_of(record)
        assert dict(record.headers)["content-type"] == b"application/json"
    versions: dict[str, list[int]] = defaultdict(list)
    for body in sorted(bodies, key=lambda b: b["position"]):
        versions[body["rotation_id"]].append(body["version"])
    assert versions[f"{uid}-x"] == list(range(1, 11))
    assert versions[f"{uid}-w"] == list(range(1, 7))

    booked = next(b for b in bodies if b["type"] == "MeetingBooked" and b["override"])
    assert booked["host_id"] == "c" and booked["reason"] == "override"
    assert {"suggested_host_id", "candidates", "record", "starts_at", "at"} <= booked.keys()
    assert booked["timestamp"].endswith("Z")
    created = next(b for b in bodies if b["type"] == "Created")
    assert created["members"] == ["a", "b", "c"] and created["version"] == 1


class FailOnce:
    """A tracking recorder whose first write fails after the broker acknowledged a batch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed = False

    def max_tracking_id(self, name: str) -> int | None:
        result: int | None = self.inner.max_tracking_id(name)
        return result

    def insert_tracking(self, tracking: Tracking) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("the database went away")
        self.inner.insert_tracking(tracking)


async def test_a_failure_after_publishing_republishes_never_skips(
    app: RotationsApplication, settings: Settings, uid: str
) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [settings.events_topic], PARTITIONS)
    history(app, f"{uid}-x", bookings=5)
    tracking = FailOnce(open_tracking(app))
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    await broker.start()
    publisher = EventsPublisher(
        app,
        broker,
        settings,
        batch_size=4,
        poll_seconds=0.05,
        tracking=tracking,  # type: ignore[arg-type]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    last = app.recorder.max_notification_id()
    try:
        await wait_until(lambda: publisher.position == last)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await broker.stop()

    records = await consume_all(settings)
    positions = [position_of(r) for r in records]
    assert tracking.failed
    assert sorted(set(positions)) == rotation_positions(app)  # nothing skipped
    assert len(positions) > len(set(positions))  # the first batch came twice
    check_store_order(records)


class FlakyBroker:
    """The real broker, except that one publish in the middle of a batch fails."""

    def __init__(self, broker: KafkaBroker, fail_at: int) -> None:
        self.broker = broker
        self.calls = 0
        self.fail_at = fail_at

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("broker connection lost")
        return await self.broker.publish(*args, **kwargs)


async def test_a_failed_publish_is_retried_from_the_tracked_position(
    app: RotationsApplication, settings: Settings, uid: str
) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [settings.events_topic], PARTITIONS)
    history(app, f"{uid}-x", bookings=5)
    history(app, f"{uid}-y", bookings=5)
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    await broker.start()
    flaky = FlakyBroker(broker, fail_at=6)
    flaky_broker: Any = flaky  # publishes like a KafkaBroker
    publisher = EventsPublisher(app, flaky_broker, settings, batch_size=10, poll_seconds=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    last = app.recorder.max_notification_id()
    try:
        await wait_until(lambda: publisher.position == last)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await broker.stop()

    positions = [position_of(r) for r in await consume_all(settings)]
    assert flaky.calls > len(rotation_positions(app))  # the failed batch was sent again
    assert sorted(set(positions)) == rotation_positions(app)


async def test_a_new_cluster_gets_every_event_again(
    app: RotationsApplication, settings: Settings, uid: str
) -> None:
    """Positions are tracked per cluster: a fresh (in-memory) broker must see everything."""
    await ensure_topics(settings.kafka_bootstrap_servers, [settings.events_topic], PARTITIONS)
    history(app, f"{uid}-x", bookings=3)
    cluster = ["c1"]
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    await broker.start()
    publisher = EventsPublisher(
        app, broker, settings, cluster_id=lambda: cluster[0], poll_seconds=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    last = app.recorder.max_notification_id()
    try:
        await wait_until(lambda: publisher.position == last)
        cluster[0] = "c2"
        await wait_until(lambda: publisher.name.endswith(f"c2:{settings.events_topic}"))
        await wait_until(lambda: publisher.position == last)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await broker.stop()

    positions = [position_of(r) for r in await consume_all(settings)]
    assert sorted(positions) == sorted(rotation_positions(app) * 2)


async def test_own_saves_sent_from_memory_match_the_log_and_interleave_with_other_writers(
    app: RotationsApplication, settings: Settings, uid: str
) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, [settings.events_topic], PARTITIONS)
    other = RotationsApplication(env=store_environment(settings.store))
    broker = KafkaBroker(settings.kafka_bootstrap_servers, logger=None)
    await broker.start()
    publisher = EventsPublisher(app, broker, settings, batch_size=7, poll_seconds=0.05)
    publisher.follow_saves_of(app)
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        for i in range(4):  # this instance and another writer take turns
            await asyncio.to_thread(history, app, f"{uid}-own{i}", 5)
            await asyncio.to_thread(history, other, f"{uid}-other{i}", 2)
        last = app.recorder.max_notification_id()
        await wait_until(lambda: publisher.position == last)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await broker.stop()
        other.close()

    records = await consume_all(settings)
    assert sorted(position_of(r) for r in records) == rotation_positions(app)
    check_store_order(records)
    assert 0 < publisher.from_memory < len(records)  # both paths were taken
    notifications = app.recorder.select_notifications(start=1, limit=1_000_000)
    from_log = {item.position: item.body for item in publisher.outgoing(notifications)}
    assert {position_of(r): r.value for r in records} == from_log  # byte for byte
