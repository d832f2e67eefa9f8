"""What projections need of the application, as protocols: typed seams, no service import.

`service.application.RotationsApplication` satisfies these structurally (its `events`,
`recorder`, `mapper` and `directory_required`); a test double needs only what a projection
reads. Members are read-only properties, so an application may hold narrower types (its
recorder is a `ProcessRecorder`, an `ApplicationRecorder` too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder, EventStore, Mapper, Recording

from events.fold import aggregate_events
from projections.positions import positions_of


@runtime_checkable
class EventSource(Protocol):
    """An aggregate's stored events, and the log that says where each one sits."""

    @property
    def events(self) -> EventStore[UUID]: ...

    @property
    def recorder(self) -> ApplicationRecorder: ...


@runtime_checkable
class AuditSource(EventSource, Protocol):
    """Events, and whether the directory decides who may host (else everyone may)."""

    @property
    def directory_required(self) -> bool: ...


@runtime_checkable
class ViewSource(Protocol):
    """The log and the mapper that (de)serialises its events: enough to rebuild a view."""

    @property
    def recorder(self) -> ApplicationRecorder: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...


SavedListener = Callable[[Sequence[Recording[UUID]], Mapping[UUID, object]], object]
"""Told of a transaction just stored: its recordings and the aggregates that made them."""


@runtime_checkable
class SavedTransactions(Protocol):
    """A writer that tells followers what it stored, so they need not read it back."""

    def on_saved(self, listener: SavedListener) -> None: ...


@runtime_checkable
class FollowedStore(EventSource, ViewSource, SavedTransactions, Protocol):
    """A store whose log is followed, and whose writer says what it saved (the read model,
    the events publisher)."""


@runtime_checkable
class RotationsStore(AuditSource, ViewSource, Protocol):
    """Everything the projections read of the application, in one."""


def history(source: EventSource, originator_id: UUID) -> tuple[list[Aggregate.Event], list[int]]:
    """An aggregate's events in order and the global position of each (both empty: none)."""
    events = list(aggregate_events(source.events.get(originator_id)))
    if not events:
        return [], []
    positions = positions_of(
        source.recorder,
        originator_id,
        events[0].originator_version,
        events[-1].originator_version,
    )
    return events, positions
