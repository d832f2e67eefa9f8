"""Puts every stored Rotation event on `rotations.events`: in store order, at least once.

The publisher follows the event store's notification log and publishes each Rotation event
(key = rotation id; header `position` = global notification id, also in the body so
consumers can deduplicate). Its own position is a tracking record in the same database,
written only after the broker acknowledged every message of a batch: a crash between
acknowledgement and tracking republishes that batch (duplicates, never gaps).

The tracking name includes the events topic and, when given, the Kafka cluster id, as the
service's consumed positions do: a fresh (e.g. in-memory) cluster gets every event again.

Order: a rotation's events share a key, so one partition, and the producer keeps one batch
per partition in flight, so they arrive in store order. After a failed publish the batch is
sent again from its start: a partition may then see a later record before the retried one.
Consumers should deduplicate by position (or by the rotation's version), never assume that
a higher position means every lower one was already seen.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification, Recording, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresRecorder
from eventsourcing.sqlite import SQLiteRecorder
from faststream.kafka import KafkaBroker
from pydantic_core import to_json

from events.rotation import Rotation
from projections.ports import EventSource, FollowedStore, SavedTransactions
from projections.rotation_view import ROTATION_TOPIC_PREFIX
from service.record_sender import BrokerSender, OutgoingRecord, RecordSender
from service.settings import Settings

log = logging.getLogger("rotations.events_publisher")

POSTGRES_TRACKING_TABLE = "events_publisher_tracking"
ClusterId = str | Callable[[], str | None] | None
JSON_CONTENT = ("content-type", b"application/json")
_HIDDEN = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def tracking_name(settings: Settings, cluster_id: str | None = None) -> str:
    """Positions only mean something for one topic (on one cluster, when it is known)."""
    where = f"{cluster_id}:" if cluster_id else ""
    return f"events-publisher:{where}{settings.events_topic}"


def open_tracking(app: EventSource) -> TrackingRecorder:
    """A tracking recorder in the application's own database (created if missing)."""
    store = app.recorder
    recorder: TrackingRecorder
    if isinstance(store, PostgresRecorder):
        from eventsourcing.postgres import PostgresTrackingRecorder

        recorder = PostgresTrackingRecorder(
            store.datastore, tracking_table_name=POSTGRES_TRACKING_TABLE
        )
    elif isinstance(store, SQLiteRecorder):
        from eventsourcing.sqlite import SQLiteTrackingRecorder

        recorder = SQLiteTrackingRecorder(store.datastore)
    else:
        raise TypeError(f"no tracking table for a {type(store).__name__}")
    recorder.create_table()
    return recorder


@dataclass(frozen=True)
class OutgoingEvent:
    """One Kafka record to publish for one stored event."""

    position: int
    key: bytes
    body: bytes
    traceparent: bytes | None = None  # the W3C trace of the command that stored it


def event_body(event: Any, rotation_id: str, position: int) -> bytes:
    """JSON: type, rotation_id, version, timestamp, position and the event's own fields."""
    body: dict[str, Any] = {
        "type": type(event).__name__,
        "rotation_id": rotation_id,
        "version": event.originator_version,
        "timestamp": event.timestamp,
        "position": position,
    }
    body.update((k, v) for k, v in vars(event).items() if k not in _HIDDEN and k not in body)
    return to_json(body)


class EventsPublisher:
    """Follows the notification log from its tracked position and publishes Rotation events."""

    def __init__(
        self,
        app: FollowedStore,
        broker: KafkaBroker,
        settings: Settings,
        *,
        cluster_id: ClusterId = None,
        batch_size: int = 500,
        poll_seconds: float | None = None,
        tracking: TrackingRecorder | None = None,
        sender: RecordSender | None = None,
    ) -> None:
        self.app = app
        self.broker = broker
        self.sender = sender or BrokerSender(broker)
        self.settings = settings
        self.topic = settings.events_topic
        self.cluster_id = cluster_id
        self.name = ""
        self.batch_size = batch_size
        self.poll_seconds = (
            settings.projection_poll_seconds if poll_seconds is None else poll_seconds
        )
        self.tracking = tracking or open_tracking(app)
        self.position = 0
        self.published = 0
        self.from_memory = 0  # of those published, how many without reading the log
        self._rotation_ids: OrderedDict[UUID, str] = OrderedDict()
        # The application's own transactions, ready to send (None: not a Rotation event).
        self._saved: dict[int, OutgoingEvent | None] = {}
        self._saved_lock = threading.Lock()
        self.max_buffered = 20_000
        self._saves_of: SavedTransactions | None = None

    def follow_saves_of(self, app: SavedTransactions, max_buffered: int | None = None) -> None:
        """Take the application's own saves from memory instead of reading them back.

        When the next position to publish was saved by this application, the run of
        positions after it comes from memory (encoded once, never decoded); a position
        written by anyone else, or a gap, is read from the notification log as before.
        """
        self.max_buffered = max_buffered or self.max_buffered
        self._saves_of = app
        app.on_saved(self._remember_saved)

    def _remember_saved(
        self, recordings: Sequence[Recording[UUID]], aggregates: Mapping[UUID, object]
    ) -> None:
        items: dict[int, OutgoingEvent | None] = {}
        # Tracing on: the trace of the command that decided each event (`service.tracing`).
        carriers = getattr(self._saves_of, "event_carriers", None)
        for recording in recordings:
            notification = recording.notification
            if not notification.topic.startswith(ROTATION_TOPIC_PREFIX):
                items[notification.id] = None
                continue
            event: Any = recording.domain_event
            rotation = aggregates.get(event.originator_id)
            rotation_id = (
                rotation.rotation_id if isinstance(rotation, Rotation) else self.rotation_id(event)
            )
            items[notification.id] = OutgoingEvent(
                notification.id,
                rotation_id.encode(),
                event_body(event, rotation_id, notification.id),
                None
                if carriers is None
                else carriers.take(event.originator_id, event.originator_version),
            )
        with self._saved_lock:
            if len(self._saved) > self.max_buffered:  # not being published: read later
                self._saved.clear()
            self._saved.update(items)

    def _take_saved(self) -> tuple[int, list[OutgoingEvent]] | None:
        """The saved run right after the position (its last position and events), if any."""
        with self._saved_lock:
            for stale in [p for p in self._saved if p <= self.position]:
                del self._saved[stale]
            position, items = self.position, []
            while position + 1 in self._saved and position - self.position < self.batch_size:
                position += 1
                item = self._saved.pop(position)
                if item is not None:
                    items.append(item)
        return None if position == self.position else (position, items)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Publish until `stop` is set; `wake` (optional) cuts a poll interval short."""
        failures = 0
        while not stop.is_set():
            if wake is not None:
                wake.clear()  # a wake-up from now on means: look again
            try:
                await self.follow_cluster()
                published = await self.publish_next()
            except Exception as error:
                failures += 1
                log.warning(
                    "publishing events failed; will retry from the tracked position",
                    extra={"position": self.position, "error": repr(error), "attempt": failures},
                )
                await _wait(stop, min(0.1 * 2**failures, 5.0))
                continue
            failures = 0
            if not published:
                await _wait(stop, self.poll_seconds, wake)
        log.info("events publisher stopped", extra={"position": self.position})

    async def follow_cluster(self) -> None:
        """(Re)load the tracked position when starting or when the cluster id changed."""
        cluster = self.cluster_id() if callable(self.cluster_id) else self.cluster_id
        name = tracking_name(self.settings, cluster)
        if name == self.name:
            return
        stored: int | None = await asyncio.to_thread(self.tracking.max_tracking_id, name)
        self.name, self.position = name, stored or 0
        log.info("events publisher following", extra={"tracking": name, "position": stored})

    async def publish_next(self) -> int:
        """Publish the next batch after the tracked position; returns how many notifications."""
        saved = self._take_saved()
        if saved is not None:
            last, outgoing = saved
        else:
            notifications: Sequence[Notification] = await asyncio.to_thread(
                self.app.recorder.select_notifications,
                start=self.position + 1,
                limit=self.batch_size,
            )
            if not notifications:
                return 0
            last = notifications[-1].id
            outgoing = await asyncio.to_thread(self.outgoing, notifications)
        if getattr(self._saves_of, "event_carriers", None) is None:  # tracing off
            records = [
                OutgoingRecord(
                    self.topic,
                    item.body,
                    item.key,
                    (("position", str(item.position).encode()), JSON_CONTENT),
                )
                for item in outgoing
            ]
        else:
            records = [self._traced_record(item) for item in outgoing]
        await self.sender.send(records)
        # Every record is acknowledged by the broker ...
        await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.name, last))
        count = last - self.position
        self.position = last  # ... before the position is recorded
        self.published += len(outgoing)
        self.from_memory += len(outgoing) if saved is not None else 0
        return count

    def _traced_record(self, item: OutgoingEvent) -> OutgoingRecord:
        headers: tuple[tuple[str, bytes], ...] = (
            ("position", str(item.position).encode()),
            JSON_CONTENT,
        )
        if item.traceparent is not None:
            headers += (("traceparent", item.traceparent),)
        return OutgoingRecord(self.topic, item.body, item.key, headers)

    def outgoing(self, notifications: Sequence[Notification]) -> list[OutgoingEvent]:
        """Decode the batch's Rotation events (other aggregates' events are skipped)."""
        items = []
        for notification in notifications:
            if not notification.topic.startswith(ROTATION_TOPIC_PREFIX):
                continue
            event: Any = self.app.mapper.to_domain_event(notification)
            rotation_id = self.rotation_id(event)
            items.append(
                OutgoingEvent(
                    notification.id,
                    rotation_id.encode(),
                    event_body(event, rotation_id, notification.id),
                )
            )
        return items

    def rotation_id(self, event: Any) -> str:
        """The client's rotation id: carried by Created, else read from the first event."""
        key: UUID = event.originator_id
        if isinstance(event, Rotation.Created):
            found = event.rotation_id
        elif key in self._rotation_ids:
            self._rotation_ids.move_to_end(key)
            return self._rotation_ids[key]
        else:
            (created,) = self.app.events.get(key, lte=1)
            assert isinstance(created, Rotation.Created)
            found = created.rotation_id
        self._rotation_ids[key] = found
        while len(self._rotation_ids) > 100_000:
            self._rotation_ids.popitem(last=False)
        return found


async def publish_events(
    app: FollowedStore,
    broker: KafkaBroker,
    settings: Settings,
    stop: asyncio.Event,
    *,
    cluster_id: ClusterId = None,
    wake: asyncio.Event | None = None,
    sender: RecordSender | None = None,
) -> None:
    """Run the events publisher until `stop` is set (the broker must be started).

    `cluster_id` may be a callable (e.g. `lambda: service.cluster_id`): when its answer
    changes, publishing restarts from that cluster's own tracked position.
    """
    publisher = EventsPublisher(app, broker, settings, cluster_id=cluster_id, sender=sender)
    publisher.follow_saves_of(app)
    await publisher.run(stop, wake)


async def _wait(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Sleep up to `seconds`, waking early when `stop` (or `wake`) is set."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
