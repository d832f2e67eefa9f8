"""Writing a store's contents directly, before the service starts (no Kafka).

Commands go through `RotationsApplication.execute_batch`, the service's own write path, so
the store holds exactly what the service would have written: each CreateRotation stores the
rotation's Created event and a command receipt, each BookMeeting a MeetingBooked event, a
meeting claim and a command receipt.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from bench.infra import say
from service import contracts as c
from service.application import RotationsApplication
from service.cipher_check import cipher_environment
from service.settings import Settings
from service.store import store_environment

MEMBERS = [f"user-{i:02d}" for i in range(10)]
ACTOR = "bench-manager"
BATCH = 1000


def directory_facts() -> list[c.UserUpdated]:
    """The users the benchmark needs: a manager (the actor) and 10 eligible members."""
    facts = [
        {
            "type": "UserUpdated",
            "message_id": uuid.uuid4().hex,
            "user_id": ACTOR,
            "name": "Bench Manager",
            "seat": True,
            "calendar_connected": True,
            "calendar_sync": True,
            "permissions": ["manage_rotations", "schedule_for_others"],
        }
    ]
    facts += [
        {
            "type": "UserUpdated",
            "message_id": uuid.uuid4().hex,
            "user_id": user_id,
            "name": user_id,
            "seat": True,
            "calendar_connected": True,
            "calendar_sync": True,
            "permissions": [],
        }
        for user_id in MEMBERS
    ]
    return [c.UserUpdated.model_validate(fact) for fact in facts]


def create(rotation_id: str, members: list[str] = MEMBERS) -> c.CreateRotation:
    return c.CreateRotation.model_validate(
        {
            "type": "CreateRotation",
            "command_id": uuid.uuid4().hex,
            "rotation_id": rotation_id,
            "actor": ACTOR,
            "name": f"Bench {rotation_id}",
            "members": members,
        }
    )


def book(rotation_id: str, meeting_id: str) -> c.BookMeeting:
    return c.BookMeeting.model_validate(
        {
            "type": "BookMeeting",
            "command_id": uuid.uuid4().hex,
            "rotation_id": rotation_id,
            "actor": ACTOR,
            "meeting_id": meeting_id,
            "record": {"type": "deal", "id": meeting_id},
        }
    )


def memory_rotation_id(run: str, i: int) -> str:
    return f"mem-{run}-{i}"


@dataclass(frozen=True)
class Seeded:
    """What was written: ids to query and how many events the store then held."""

    run: str
    memory_rotations: int
    short_rotation: str | None
    history_rotation: str | None
    history_events: int
    store_events: int
    seconds: float


def _chunks(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


def _execute(app: RotationsApplication, commands: list[c.CommandBase]) -> None:
    replies = app.execute_batch([(command, None) for command in commands])
    rejected = [r for r in replies if r.status != "accepted"]
    if rejected:
        raise RuntimeError(f"seeding was refused: {rejected[0].model_dump_json()}")


def seed_store(
    store_url: str,
    run: str,
    memory_rotations: int = 0,
    history_events: int = 0,
    cipher_key: str | None = None,
) -> Seeded:
    """The directory's users; then N rotations of 10 members, and (if `history_events`) a
    rotation with 10 events and one with `history_events` events.

    A rotation's events are its Created event plus one MeetingBooked per booking. The
    directory's users are stored first, as the service needs them; the seeding application
    itself skips the directory checks (`directory="open"`): they only read, and on every
    booking they look up 11 users, which would make a million bookings take hours.
    `cipher_key`: the events encrypted with it, as the service started with it stores them.
    """
    started = time.perf_counter()
    env = store_environment(store_url)
    if cipher_key is not None:
        env |= cipher_environment(Settings(store=store_url, cipher_key=cipher_key))
    app = RotationsApplication(env=env, directory="open")
    short = history = None
    try:
        for fact in directory_facts():
            reply = app.record_directory(fact)
            if reply.status != "accepted":
                raise RuntimeError(f"seeding the directory was refused: {reply}")
        if memory_rotations:
            say(f"seeding {memory_rotations:,} rotations of {len(MEMBERS)} members")
        for chunk in _chunks(memory_rotations, BATCH):
            _execute(app, [create(memory_rotation_id(run, i)) for i in chunk])
        if history_events:
            short = f"short-{run}"
            _execute(app, [create(short)])
            _execute(app, [book(short, f"s{i}") for i in range(9)])
            history = f"history-{run}"
            _execute(app, [create(history)])
            bookings = history_events - 1
            say(f"seeding a rotation with {history_events:,} events ({bookings:,} bookings)")
            step = max(bookings // 10, BATCH)
            for chunk in _chunks(bookings, BATCH):
                _execute(app, [book(history, f"h{i}") for i in chunk])
                if chunk.stop % step < BATCH and chunk.stop < bookings:
                    rate = chunk.stop / (time.perf_counter() - started)
                    say(f"  {chunk.stop:,} bookings written ({rate:,.0f}/s)")
        store_events = app.recorder.max_notification_id() or 0
    finally:
        app.close()
    seconds = time.perf_counter() - started
    if memory_rotations or history_events:
        say(f"seeded {store_events:,} stored events in {seconds:,.0f}s")
    return Seeded(run, memory_rotations, short, history, history_events, store_events, seconds)
