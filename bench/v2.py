"""Version 2 of the rule in the benchmark: the policy, the weights, bookings with a start,
and a long history written with a moving clock (no Kafka; see `bench.seed`).

The history rotation's bookings are decided by the service's own write path
(`RotationsApplication.execute_batch`) under a clock that moves from `days` ago to now, one
step a booking, so nearly all of them lie in past windows of the policy (a month of
Europe/Oslo, counted by the meetings' starts, each starting up to 30 days after its booking).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, Snapshot

from bench.infra import BenchStore, say
from bench.seed import ACTOR, BATCH, MEMBERS, _chunks, _execute, directory_facts
from events.rotation import rotation_uuid
from service import contracts as c
from service.application import RotationsApplication
from service.store import store_environment

CAP_MEETINGS = 100_000
"""Per member and week: above what any member gets in any round, so the cap is worked out
at every decision but never stops one (a full history books about 19,000 a week)."""
POLICY: dict[str, Any] = {
    "window": "month",
    "count_by": "starts_at",
    "time_zone": "Europe/Oslo",
    "cap": {"meetings": CAP_MEETINGS, "per": "week"},
}
WEIGHTS = tuple(50 * (k + 1) for k in range(len(MEMBERS)))
"""The i-th member's weight: 50, 100, ... 500."""
ZONE = "Europe/Oslo"
GOLDEN = 0.6180339887498949
MAX_LEAD = timedelta(days=30)
VIEW_TABLE = "rotation_view"
"""The service's read-model table (`projections.rotation_view.open_view`'s default)."""
CHECKPOINTS = 4
"""The history's aggregate is measured after each quarter of its bookings."""


def month_spread(now: datetime) -> Callable[[int], str]:
    """The i-th meeting's start, spread evenly over the month (of Europe/Oslo) of `now`."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(ZONE))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = (first + timedelta(days=32)).replace(day=1)
    length = after.astimezone(UTC) - first.astimezone(UTC)
    start = first.astimezone(UTC)

    def starts_at(i: int) -> str:
        offset = length * ((i * GOLDEN) % 1.0)
        return (start + timedelta(minutes=offset // timedelta(minutes=1))).isoformat()

    return starts_at


def lead(i: int) -> timedelta:
    """How long after its booking the i-th history meeting starts: an hour to 30 days."""
    minutes = MAX_LEAD // timedelta(minutes=1) - 60
    return timedelta(minutes=60 + (i * 7919) % minutes)


class SteppingClock:
    """The seeding application's clock: `step` later at each reading from `start` on, or
    the real time (after `real()`)."""

    def __init__(self) -> None:
        self.next: datetime | None = None
        self.step = timedelta(0)

    def set(self, start: datetime, step: timedelta) -> None:
        self.next, self.step = start, step

    def real(self) -> None:
        self.next = None

    def __call__(self) -> datetime:
        if self.next is None:
            return datetime.now(UTC)
        now, self.next = self.next, self.next + self.step
        return now


def create(rotation_id: str) -> c.CreateRotation:
    return c.CreateRotation.model_validate(
        {
            "type": "CreateRotation",
            "command_id": f"create-{rotation_id}",
            "rotation_id": rotation_id,
            "actor": ACTOR,
            "name": f"Bench {rotation_id}",
            "members": MEMBERS,
            "policy": POLICY,
        }
    )


def weigh(rotation_id: str, members: int = len(MEMBERS)) -> list[c.SetMemberOptions]:
    return [
        c.SetMemberOptions.model_validate(
            {
                "type": "SetMemberOptions",
                "command_id": f"weigh-{rotation_id}-{user_id}",
                "rotation_id": rotation_id,
                "actor": ACTOR,
                "user_id": user_id,
                "weight": weight,
            }
        )
        for user_id, weight in list(zip(MEMBERS, WEIGHTS, strict=True))[:members]
    ]


def book(rotation_id: str, meeting_id: str, starts_at: datetime) -> c.BookMeeting:
    return c.BookMeeting.model_validate(
        {
            "type": "BookMeeting",
            "command_id": f"book-{rotation_id}-{meeting_id}",
            "rotation_id": rotation_id,
            "actor": ACTOR,
            "meeting_id": meeting_id,
            "record": {"type": "deal", "id": meeting_id},
            "starts_at": starts_at,
        }
    )


def old_meeting(i: int) -> str:
    """The id of the history rotation's i-th booking (h0 was booked first)."""
    return f"h{i}"


@dataclass
class SeededV2:
    """The two policy rotations written, and what their aggregates measured."""

    long_rotation: str
    short_rotation: str
    long_events: int
    short_events: int
    history_days: int
    first_booked_at: str
    last_booked_at: str
    seconds: float
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    """After each quarter of the bookings: events so far, days of history, state bytes."""
    long_state_bytes: int = 0
    short_state_bytes: int = 0


def state_bytes(app: RotationsApplication, key: UUID) -> int:
    """The size of the aggregate: its snapshot's state as the store would keep it."""
    rotation: Aggregate = app.repository.get(key)
    return len(app.mapper.to_stored_event(Snapshot.take(rotation)).state)


def seed_history_v2(
    store_url: str, run: str, events: int, days: int, directory: bool = True
) -> SeededV2:
    """A policy rotation with `events` events (its creation, 10 weights, then bookings with
    the clock moving from `days` ago to now) and one with 10 (its creation, 5 weights and 4
    bookings now). `directory`: store the benchmark's users first (a store of its own)."""
    started = time.perf_counter()
    clock = SteppingClock()
    app = RotationsApplication(env=store_environment(store_url), clock=clock, directory="open")
    long_id, short_id = f"policy-history-{run}", f"policy-short-{run}"
    bookings = events - 1 - len(MEMBERS)
    if bookings < 1:
        raise ValueError(f"a history of {events} events has no bookings")
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    first = end - timedelta(days=days)
    step = (end - first) / bookings
    checkpoints: list[dict[str, Any]] = []
    try:
        if directory:
            for fact in directory_facts():
                if app.record_directory(fact).status != "accepted":
                    raise RuntimeError(f"seeding the directory was refused: {fact}")
        say(
            f"seeding a policy rotation with {events:,} events over {days} days "
            f"({bookings:,} bookings, one every {step.total_seconds():.0f}s of clock)"
        )
        clock.set(first, timedelta(0))
        _execute(app, [create(long_id), *weigh(long_id)])
        marks = {bookings * (q + 1) // CHECKPOINTS for q in range(CHECKPOINTS)}
        for chunk in _chunks(bookings, BATCH):
            clock.set(first + chunk.start * step, step)
            _execute(
                app,
                [book(long_id, old_meeting(i), first + i * step + lead(i)) for i in chunk],
            )
            if any(chunk.start < m <= chunk.stop for m in marks):
                size = state_bytes(app, rotation_uuid(long_id))
                checkpoints.append(
                    {
                        "events": 1 + len(MEMBERS) + chunk.stop,
                        "history_days": round((chunk.stop * step) / timedelta(days=1), 1),
                        "state_bytes": size,
                    }
                )
                rate = chunk.stop / (time.perf_counter() - started)
                say(
                    f"  {chunk.stop:,} bookings written ({rate:,.0f}/s), aggregate state "
                    f"{size:,} bytes"
                )
        clock.real()
        now = datetime.now(UTC)
        _execute(app, [create(short_id), *weigh(short_id, 5)])
        _execute(app, [book(short_id, f"s{i}", now + lead(i)) for i in range(4)])
        long_bytes = state_bytes(app, rotation_uuid(long_id))
        short_bytes = state_bytes(app, rotation_uuid(short_id))
    finally:
        app.close()
    seconds = time.perf_counter() - started
    say(f"seeded the policy rotations in {seconds:,.0f}s")
    return SeededV2(
        long_id,
        short_id,
        events,
        10,
        days,
        first.isoformat(),
        (first + (bookings - 1) * step).isoformat(),
        round(seconds, 1),
        checkpoints,
        long_bytes,
        short_bytes,
    )


def view_row_bytes(store: BenchStore, rotation_ids: list[str]) -> dict[str, int]:
    """The size of each rotation's read-model row (the state in the service's view table)."""
    keys = {rotation_id: str(rotation_uuid(rotation_id)) for rotation_id in rotation_ids}
    found = store.state_lengths(VIEW_TABLE, list(keys.values()))
    missing = [rotation_id for rotation_id, key in keys.items() if key not in found]
    if missing:
        raise RuntimeError(f"no read-model row for {missing}")
    return {rotation_id: found[key] for rotation_id, key in keys.items()}
