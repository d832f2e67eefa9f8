"""The service's broker starts its consumers side by side: each consumer's start waits for
its group join, so one after another the joins' holds add up."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import pytest
from faststream.kafka import KafkaBroker

from service.kafka_broker import KafkaBrokerJoiningAtOnce

TOPICS = ("commands", "suggest", "directory")


def _topic(subscriber: Any) -> str:
    (topic,) = subscriber.topics
    return str(topic.name)


def _broker() -> KafkaBrokerJoiningAtOnce:
    broker = KafkaBrokerJoiningAtOnce("127.0.0.1:1")  # never connected: connect is patched
    for topic in TOPICS:
        broker.subscriber(topic, group_id=f"g-{topic}")(lambda body: None)
    return broker


async def test_every_consumer_starts_while_the_others_still_join() -> None:
    joins = asyncio.Barrier(len(TOPICS))  # passes once every consumer is in its join
    started: list[str] = []

    async def join(subscriber: Any) -> None:
        await asyncio.wait_for(joins.wait(), timeout=5)
        started.append(_topic(subscriber))

    broker = _broker()
    with (
        mock.patch.object(KafkaBroker, "connect", mock.AsyncMock()),
        mock.patch.object(type(broker.subscribers[0]), "start", join),
    ):
        await broker.start()
    assert sorted(started) == sorted(TOPICS) and broker.running


async def test_a_consumer_that_cannot_start_fails_the_start_with_its_own_error() -> None:
    class NoCoordinator(Exception):
        pass

    async def join(subscriber: Any) -> None:
        if _topic(subscriber) == "suggest":
            raise NoCoordinator("suggest")
        await asyncio.sleep(10)  # cancelled when the other fails

    broker = _broker()
    with (
        mock.patch.object(KafkaBroker, "connect", mock.AsyncMock()),
        mock.patch.object(type(broker.subscribers[0]), "start", join),
        pytest.raises(NoCoordinator, match="suggest"),
    ):
        await asyncio.wait_for(broker.start(), timeout=5)
    assert not broker.running
