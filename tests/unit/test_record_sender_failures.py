"""A batch send that fails midway loses no delivery future: aiokafka leaves the explicit
batch API's futures to the caller, and a lost one that fails is logged as never retrieved."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from service.record_sender import BatchSender, OutgoingRecord


class _Batch:
    def __init__(self, room: int) -> None:
        self.records: list[bytes] = []
        self.room = room

    def append(self, *, key: Any, value: bytes, timestamp: Any, headers: Any) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append(value)
        return object()

    def record_count(self) -> int:
        return len(self.records)


class _Producer:
    """One record per batch; the first batch fails after a moment, the second cannot even
    be enqueued. It keeps no strong reference to what it returns: aiokafka's accumulator
    lets go of a batch once it failed."""

    def __init__(self) -> None:
        self.futures: list[weakref.ref[asyncio.Future[None]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> _Batch:
        return _Batch(room=1)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        if self.futures:
            raise RuntimeError("the accumulator is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, _fail, weakref.ref(future))
        self.futures.append(weakref.ref(future))
        return future


def _fail(future: weakref.ref[asyncio.Future[None]]) -> None:
    alive = future()
    if alive is not None:
        alive.set_exception(ConnectionError("leader gone"))


async def _sender(producer: _Producer) -> BatchSender:
    sender = BatchSender("127.0.0.1:1", linger_ms=0, client_id="test")
    await sender.producer.stop()  # never started: only closed
    sender.producer = producer
    return sender


async def _unretrieved(work: Any) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        await work()
        await asyncio.sleep(0.05)  # the late failure lands
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    return reported


async def test_a_send_that_fails_midway_still_settles_the_batches_already_sent() -> None:
    producer = _Producer()
    sender = await _sender(producer)
    records = [OutgoingRecord("t", b"a"), OutgoingRecord("t", b"b")]

    async def work() -> None:
        with pytest.raises((RuntimeError, ConnectionError)):
            await sender.send(records)

    reported = await _unretrieved(work)
    assert len(producer.futures) == 1
    assert not [c for c in reported if "never retrieved" in c.get("message", "")]
