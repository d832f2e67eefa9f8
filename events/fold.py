"""The one fold: events become state by the aggregate's own mutators, nowhere else.

Point-in-time answers, the audit, explanations and the report all fold through here, so
none of them can come to interpret an event differently from the write side (the read
model, `projections.rotation_view`, applies the same mutators to its stored snapshots).
What a rotation event changed (who joined, who left, whether counts were reset) is read
off the aggregate's state before and after it, never off the event's fields.

Resets, defined once: a join under `on_join: reset` (the default, version 1's rule) runs
`Rotation._join`'s reset, which clears what counts since the last reset and records the
event's version as `reset_version`. So an event reset the counts exactly when it moved
`reset_version`. A creation with members is a reset; a team whose members were all members
already is not; under `on_join: level` or `none` no join resets anything.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eventsourcing.domain import Aggregate, BaseAggregate, DomainEventProtocol

from events.rotation import Rotation

A = TypeVar("A", bound=BaseAggregate[Any])


def aggregate_events(stored: Iterable[DomainEventProtocol[Any]]) -> Iterator[Aggregate.Event]:
    """The store's events typed as what they are here: events that mutate an aggregate.

    Lazy, so a fold that stops early (point in time) reads no further than it needs.
    """
    for event in stored:
        if not isinstance(event, Aggregate.Event):
            raise TypeError(f"not an aggregate event: {type(event).__qualname__}")
        yield event


def fold(events: Iterable[Aggregate.Event], start: A | None = None) -> A | None:
    """The aggregate these events make, as the repository would return it (None: no events).

    Annotate the result (`rotation: Rotation | None = fold(...)`): the type comes from
    there. `start` is advanced in place, as the library's mutators do; pass a copy to keep it.
    """
    state = start
    for event in events:
        state = event.mutate(state)
    return state


@dataclass(frozen=True)
class Change:
    """What one event did to a rotation's membership."""

    joined: tuple[str, ...] = ()  # in join order
    left: tuple[str, ...] = ()  # in the order they had joined
    reset: bool = False  # every count went back to 0 (see the module docstring)


def change(before: Rotation | None, after: Rotation) -> Change:
    """Read off the states: joiners took join numbers from `before.next_join_seq` on, and a
    reset moved `reset_version` (see the module docstring)."""
    first = before.next_join_seq if before is not None else 0
    had = list(before.members) if before is not None else []
    return Change(
        joined=tuple(m for m, r in after.members.items() if r["join_seq"] >= first),
        left=tuple(m for m in had if m not in after.members),
        reset=after.reset_version != (before.reset_version if before is not None else 0),
    )


@dataclass(frozen=True)
class Step:
    """One event, where it sits in the log, the rotation it left, and what it changed."""

    event: Aggregate.Event
    position: int | None  # global position, when the caller gave positions
    state: Rotation  # this step's own copy: later events do not change it
    change: Change

    @property
    def joined(self) -> tuple[str, ...]:
        return self.change.joined

    @property
    def left(self) -> tuple[str, ...]:
        return self.change.left

    @property
    def reset(self) -> bool:
        return self.change.reset

    @property
    def booking(self) -> Rotation.MeetingBooked | None:
        """The booking this event recorded, if it is one."""
        return self.event if isinstance(self.event, Rotation.MeetingBooked) else None


def fold_steps(
    events: Iterable[Aggregate.Event],
    positions: Sequence[int] | None = None,
    start: Rotation | None = None,
) -> Iterator[Step]:
    """Fold a rotation's events one at a time, yielding a `Step` after each.

    `positions`, if given, are the events' global positions in the same order, as many.
    Each step's state is a copy, so the previous step's state is the state before an event
    (what a booking's decision saw). `start` is advanced in place, as in `fold`.
    """
    pairs: Iterable[tuple[Aggregate.Event, int | None]]
    if positions is None:
        pairs = ((event, None) for event in events)
    else:
        pairs = zip(events, positions, strict=True)
    state = start
    before = copy.deepcopy(start)
    for event, position in pairs:
        state = event.mutate(state)
        if not isinstance(state, Rotation):
            raise TypeError(f"{type(event).__qualname__} did not leave a Rotation")
        after = copy.deepcopy(state)
        yield Step(event=event, position=position, state=after, change=change(before, after))
        before = after
