"""Work measured in a process of its own, so its peak RSS and CPU are its alone.

    python -m bench.child rebuild STORE_URL EVENTS TABLE   # RotationProjector on a fresh table
    python -m bench.child read STORE_URL EVENTS            # the library alone: read + decode
    python -m bench.child fold STORE_URL ROTATION_ID       # one rotation through its mutators
    python -m bench.child simulate STORE_URL ROTATION_ID USER WEIGHT   # what-if: USER's weight
    python -m bench.child idle BOOTSTRAP WAIT_MS PARTITIONS TOPIC...   # idle raw consumers
    python -m bench.child echo BOOTSTRAP WAIT_MS PARTITIONS TOPIC      # raw request/reply

The first four print one JSON line: events, seconds, peak RSS (VmHWM) in MB.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any


def peak_rss_mb() -> float:
    """This process's own peak: Linux's VmHWM, the high-water mark of the memory it has
    had since it started. `ru_maxrss` survives exec on Linux, so a child forked from a
    large parent reported the parent's size as its floor (both simulations measured the
    bench's own 159 MB, to the kB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def rebuild(store_url: str, events: int, table: str) -> dict[str, Any]:
    from projections.rotation_view import RotationProjector, open_view
    from service.application import RotationsApplication
    from service.store import store_environment

    app = RotationsApplication(env=store_environment(store_url))
    try:
        projector = RotationProjector(app, open_view(app, table_name=table), tracking_name=table)
        started = time.perf_counter()
        applied = projector.catch_up(limit=events)
        seconds = time.perf_counter() - started
    finally:
        app.close()
    return {"events": applied, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def read(store_url: str, events: int, page: int = 1000) -> dict[str, Any]:
    """The baseline: page through the notification log and decode every domain event."""
    from service.application import RotationsApplication
    from service.store import store_environment

    app = RotationsApplication(env=store_environment(store_url))
    try:
        started = time.perf_counter()
        done = 0
        position = 0
        while done < events:
            batch = app.recorder.select_notifications(
                start=position + 1, limit=min(page, events - done)
            )
            if not batch:
                break
            for notification in batch:
                app.mapper.to_domain_event(notification)
            done += len(batch)
            position = batch[-1].id
        seconds = time.perf_counter() - started
    finally:
        app.close()
    return {"events": done, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


FOLD_PAGE = 1000
"""Events read at once by `fold_rotation` (as `projections.simulation` pages them)."""


def fold_rotation(store_url: str, rotation_id: str) -> dict[str, Any]:
    """The rebuild of one rotation: its events, a page at a time, through the mutators."""
    from events.fold import aggregate_events, fold
    from events.rotation import Rotation, rotation_uuid
    from service.application import RotationsApplication
    from service.store import store_environment

    app = RotationsApplication(env=store_environment(store_url))
    try:
        key = rotation_uuid(rotation_id)
        started = time.perf_counter()
        state: Rotation | None = None
        done = 0
        after = 0
        while True:
            page = list(aggregate_events(app.events.get(key, gt=after, limit=FOLD_PAGE)))
            if not page:
                break
            state = fold(page, state)
            done += len(page)
            after = page[-1].originator_version
            if len(page) < FOLD_PAGE:
                break
        seconds = time.perf_counter() - started
        if state is None:
            raise SystemExit(f"no rotation {rotation_id!r}")
    finally:
        app.close()
    return {"events": done, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def simulate(store_url: str, rotation_id: str, user_id: str, weight: int) -> dict[str, Any]:
    """`projections.simulation.simulate` of one rotation with one member's weight changed."""
    from events.rotation import rotation_uuid
    from projections.simulation import WhatIf
    from projections.simulation import simulate as replay
    from service.application import RotationsApplication
    from service.store import store_environment

    app = RotationsApplication(env=store_environment(store_url))
    try:
        started = time.perf_counter()
        result = replay(app, rotation_id, WhatIf(members={user_id: {"weight": weight}}))
        seconds = time.perf_counter() - started
        last = list(app.events.get(rotation_uuid(rotation_id), desc=True, limit=1))
        events = last[0].originator_version if last else 0
    finally:
        app.close()
    return {
        "events": events,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "bookings": result.bookings,
        "decisions": result.decisions,
        "differing": result.differing,
    }


async def idle(bootstrap: str, wait_ms: int, partitions: int, topics: list[str]) -> None:
    """Consumers on empty topics, fetching forever with the given wait (until terminated)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumers = []
    for topic in topics:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=wait_ms
        )
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumers.append(consumer)
    print("ready", flush=True)

    async def drain(consumer: Any) -> None:
        while True:
            await consumer.getmany(timeout_ms=1000)

    await asyncio.gather(*(drain(c) for c in consumers))


ECHO_REPLY = b'{"status":"accepted"}'


async def echo(bootstrap: str, wait_ms: int, partitions: int, topic: str) -> None:
    """The transport alone: answer every request on its reply_to topic, unread (forever).

    Raw aiokafka, as a service with no work would be: a fetched batch at a time, each
    record answered with its correlation id, the batch's sends awaited together.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=wait_ms,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    print("ready", flush=True)
    while True:
        batches = await consumer.getmany(timeout_ms=1000, max_records=500)
        sent = []
        for records in batches.values():
            for record in records:
                headers = dict(record.headers)
                correlation = [("correlation_id", headers["correlation_id"])]
                sent.append(
                    await producer.send(
                        headers["reply_to"].decode(), ECHO_REPLY, headers=correlation
                    )
                )
        await asyncio.gather(*sent)


def main(argv: list[str]) -> None:
    mode, *args = argv
    if mode == "rebuild":
        print(json.dumps(rebuild(args[0], int(args[1]), args[2])), flush=True)
    elif mode == "read":
        print(json.dumps(read(args[0], int(args[1]))), flush=True)
    elif mode == "fold":
        print(json.dumps(fold_rotation(args[0], args[1])), flush=True)
    elif mode == "simulate":
        print(json.dumps(simulate(args[0], args[1], args[2], int(args[3]))), flush=True)
    elif mode == "idle":
        asyncio.run(idle(args[0], int(args[1]), int(args[2]), args[3:]))
    elif mode == "echo":
        asyncio.run(echo(args[0], int(args[1]), int(args[2]), args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
