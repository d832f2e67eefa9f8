"""The rotation read model: follows the notification log, answers host suggestions.

The fold is the aggregate's own: each rotation event mutates a copy of the Rotation exactly
as it did on the write side, so read and write sides cannot drift apart. The folded state is
stored as a snapshot row per rotation, next to a tracking record of the last applied event.
Each booking and lifecycle event also changes its meeting's row (`meeting_change`, from the
event's own facts), in the same transaction.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    Notification,
    Recording,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresRecorder
from eventsourcing.sqlite import SQLiteRecorder
from eventsourcing.utils import get_topic

from events.errors import RotationDeleted, UnknownRotation
from events.fold import aggregate_events, fold
from events.ranking import Suggestion
from events.rotation import Rotation, rotation_uuid
from projections.ports import SavedTransactions, ViewSource
from projections.view_store import (
    BOOKED,
    CANCELLED,
    NO_SHOW,
    MeetingChange,
    MeetingSeal,
    PostgresRotationView,
    RotationViewStore,
    SQLiteRotationView,
    ViewRow,
)

ROTATION_TOPIC_PREFIX = get_topic(Rotation).rsplit(":", 1)[0] + ":Rotation."


def key_of(rotation_id: str) -> str:
    """View rows are keyed by the aggregate id, which every event carries."""
    return str(rotation_uuid(rotation_id))


@dataclass(frozen=True)
class ViewAnswer:
    """A suggestion and the global event position it reflects."""

    suggestion: Suggestion
    position: int
    rotation: Rotation


def open_view(app: ViewSource, table_name: str = "rotation_view") -> RotationViewStore:
    """Open (and create if needed) a view table in the application's own database."""
    view = reading_view(app, table_name)
    view.create_table()
    return view


def reading_view(
    app: ViewSource, table_name: str = "rotation_view"
) -> SQLiteRotationView | PostgresRotationView:
    """A view table's recorder, creating nothing (for readers: its tables may not exist)."""
    recorder = app.recorder
    seal = MeetingSeal(app.mapper.cipher)  # the meetings' ids as secret as the events'
    if isinstance(recorder, PostgresRecorder):
        return PostgresRotationView(
            recorder.datastore,
            table_name=table_name,
            tracking_table_name=f"{table_name}_tracking",
            seal=seal,
        )
    if isinstance(recorder, SQLiteRecorder):
        return SQLiteRotationView(recorder.datastore, table_name=table_name, seal=seal)
    raise TypeError(f"no view table for a {type(recorder).__name__}")


def meeting_change(event: object, rotation_key: str) -> MeetingChange | None:
    """What a booking or lifecycle event did to its meeting (None for any other event):
    the facts the event carries, its status (cancelled wins over no_show over booked), and
    whether it reassigned or rescheduled the meeting."""
    if not isinstance(
        event,
        Rotation.MeetingBooked
        | Rotation.MeetingCancelled
        | Rotation.MeetingRescheduled
        | Rotation.MeetingReassigned
        | Rotation.MeetingMarkedNoShow,
    ):
        return None
    facts = event.facts()
    record = facts["record"] or {}
    status = CANCELLED if facts["cancelled"] else NO_SHOW if facts["no_show"] else BOOKED
    return MeetingChange(
        rotation_key=rotation_key,
        meeting_id=facts["meeting_id"],
        host_id=facts["host_id"],
        record_type=record.get("type"),
        record_id=record.get("id"),
        booked_at=facts["booked_at"],
        booked_version=facts["booked_version"],
        starts_at=facts["starts_at"],
        status=status,
        reassigned=isinstance(event, Rotation.MeetingReassigned),
        rescheduled=isinstance(event, Rotation.MeetingRescheduled),
        version=event.originator_version,
        changed_at=event.at,
    )


class RotationProjector:
    """Applies new notifications to the view in batches; thread-safe; restartable."""

    def __init__(
        self,
        app: ViewSource,
        view: RotationViewStore,
        tracking_name: str = "rotation_view",
        cache_size: int = 20_000,
        batch_size: int = 1_000,
    ) -> None:
        self.recorder = app.recorder
        self.mapper: Mapper[UUID] = app.mapper
        self.view = view
        self.tracking_name = tracking_name
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Rotation, int]] = OrderedDict()
        self.lock = threading.RLock()  # one reader or writer of the view at a time
        self._known_position = self.position  # where this instance last saw the view
        self._refreshed_from = float("-inf")  # when the last finished `refresh` started
        if self._known_position == 0:
            # A view dropped and made again under its name starts with no meetings either.
            view.forget_untracked_meetings(tracking_name)

    @property
    def position(self) -> int:
        return self.view.max_tracking_id(self.tracking_name) or 0

    def refresh(self, requested_at: float) -> None:
        """Catch up, unless a catch-up that started after `requested_at` (a `time.monotonic()`
        value) has finished since: concurrent readers then share one read of the log."""
        with self.lock:
            if self._refreshed_from >= requested_at:
                return
            started = time.monotonic()
            self.catch_up()
            self._refreshed_from = started

    def catch_up(self, limit: int | None = None) -> int:
        """Apply every notification after the tracked position; returns how many."""
        applied = 0
        with self.lock:
            while limit is None or applied < limit:
                start = self.position
                if start != self._known_position:
                    # Another instance moved the shared view on: our folded copies are old.
                    self._cache.clear()
                    self._known_position = start
                batch = self.recorder.select_notifications(start=start + 1, limit=self.batch_size)
                if not batch:
                    break
                try:
                    self._apply_batch(batch)
                except IntegrityError:
                    # Another instance's read model stored this batch first (they share the
                    # view): its rows are in, so read on from the position it recorded.
                    if self.position <= start:
                        raise
                    continue
                applied += len(batch)
                if len(batch) < self.batch_size:
                    break
        return applied

    def _apply_batch(self, notifications: Sequence[Notification]) -> None:
        touched: dict[str, tuple[Rotation, int]] = {}
        meetings: list[MeetingChange] = []
        try:
            mine = [n for n in notifications if n.topic.startswith(ROTATION_TOPIC_PREFIX)]
            absent = self._prefetch({str(n.originator_id) for n in mine})
            for notification in mine:
                (event,) = aggregate_events([self.mapper.to_domain_event(notification)])
                key = str(event.originator_id)
                current = touched.get(key) or (None if key in absent else self._load(key))
                if current is not None and notification.id <= current[1]:
                    # Already in the row: another instance sharing the view stored it after
                    # this catch-up read its position. Its tracking record is at least as
                    # far, so this batch's save fails and the catch-up reads on from there.
                    continue
                rotation = fold([event], current[0] if current else None)
                assert isinstance(rotation, Rotation)
                touched[key] = (rotation, notification.id)
                if (meeting := meeting_change(event, key)) is not None:
                    meetings.append(meeting)
            rows = [self._to_row(rid, rot, pos) for rid, (rot, pos) in touched.items()]
            self.view.put_rows(rows, Tracking(self.tracking_name, notifications[-1].id), meetings)
            self._known_position = notifications[-1].id
        except BaseException:
            self._cache.clear()  # folded copies may be ahead of what was stored
            raise
        for rotation_id, entry in touched.items():
            self._remember(rotation_id, entry)

    def follow_saves_of(self, app: SavedTransactions) -> None:
        """Apply what `app` stores as it stores it, from memory."""
        app.on_saved(self.follow_saved)

    def follow_saved(
        self, recordings: Sequence[Recording[UUID]], aggregates: Mapping[UUID, object]
    ) -> bool:
        """Apply a transaction just stored, from the aggregates that made it: no read back.

        Only when its events are exactly the next notifications after this view's position;
        otherwise (another writer came between) the next `catch_up` reads them from the log.
        Returns whether they were applied.
        """
        ids = sorted(r.notification.id for r in recordings)
        if not ids:
            return False
        with self.lock:
            if ids[0] != self._known_position + 1 or ids[-1] - ids[0] + 1 != len(ids):
                return False
            positions: dict[UUID, int] = {}
            meetings: list[MeetingChange] = []
            for recording in sorted(recordings, key=lambda r: r.notification.id):
                notification = recording.notification
                if notification.topic.startswith(ROTATION_TOPIC_PREFIX):
                    key = recording.domain_event.originator_id
                    positions[key] = max(positions.get(key, 0), notification.id)
                    if (meeting := meeting_change(recording.domain_event, str(key))) is not None:
                        meetings.append(meeting)
            touched = {
                str(key): (_rotation_copy(aggregates[key]), position)
                for key, position in positions.items()
            }
            rows = [self._to_row(key, rotation, pos) for key, (rotation, pos) in touched.items()]
            try:
                self.view.put_rows(rows, Tracking(self.tracking_name, ids[-1]), meetings)
            except IntegrityError:
                # Another instance applied these already (they share the view): start over.
                self._cache.clear()
                return False
            self._known_position = ids[-1]
            for rotation_key, entry in touched.items():
                self._remember(rotation_key, entry)
            return True

    def _prefetch(self, keys: set[str]) -> set[str]:
        """Load the stored rows of rotations not in memory with one query, not one each;
        returns the keys that have no row (new rotations)."""
        missing = [key for key in keys if key not in self._cache]
        if len(missing) < 2:
            return set()
        rows = self.view.get_rows(missing)
        for key, row in rows.items():
            self._remember(key, (self._from_row(row), row.position))
        return set(missing) - rows.keys()

    def _load(self, key: str) -> tuple[Rotation, int] | None:
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        row = self.view.get_row(key)
        if row is None:
            return None
        entry = (self._from_row(row), row.position)
        self._remember(key, entry)
        return entry

    def _from_row(self, row: ViewRow) -> Rotation:
        stored = StoredEvent(
            originator_id=UUID(row.rotation_key),
            originator_version=row.version,
            topic=row.topic,
            state=row.state,
        )
        snapshot: Any = self.mapper.to_domain_event(stored)
        rotation: Rotation = snapshot.mutate(None)
        return rotation

    def _to_row(self, key: str, rotation: Rotation, position: int) -> ViewRow:
        snapshot = Snapshot.take(rotation)
        stored = self.mapper.to_stored_event(snapshot)
        return ViewRow(key, position, rotation.version, stored.topic, stored.state)

    def _remember(self, key: str, entry: tuple[Rotation, int]) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # -- queries -------------------------------------------------------------------------

    def suggest(
        self,
        rotation_id: str,
        exclude: Sequence[str] = (),
        ineligible: Callable[[list[str]], Mapping[str, str]] | None = None,
        at: datetime | None = None,
        starts_at: datetime | None = None,
        preferred_host_id: str | None = None,
    ) -> ViewAnswer:
        """Rank the rotation's members as the read model has them, for a decision at `at`
        (now by default) about a meeting starting at `starts_at`.

        `ineligible` says which users cannot host (from the directory), by user id.
        """
        with self.lock:
            entry = self._load(key_of(rotation_id))
            if entry is None:
                raise UnknownRotation(f"no rotation {rotation_id!r}")
            rotation, _ = entry
            if rotation.deleted:
                raise RotationDeleted(f"rotation {rotation_id!r} was deleted")
            members = list(rotation.members)
        why = ineligible(members) if ineligible else None
        with self.lock:
            suggestion = rotation.suggest(
                at or datetime.now(UTC), tuple(exclude), why, starts_at, preferred_host_id
            )
            return ViewAnswer(suggestion, self.position, rotation)

    def state(self, rotation_id: str) -> Rotation | None:
        with self.lock:
            entry = self._load(key_of(rotation_id))
            return None if entry is None else entry[0]


def _rotation_copy(aggregate: object) -> Rotation:
    """A copy of a rotation just saved: the writer may go on to change the original."""
    assert isinstance(aggregate, Rotation)
    return copy.deepcopy(aggregate)
