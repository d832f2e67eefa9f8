"""The service's Kafka broker: faststream's, with its consumers starting side by side.

faststream's `start` starts the subscribers one after another, and an aiokafka consumer's
`start` returns only once its group join is done. A join is held by the coordinator (Apache
Kafka: `group.initial.rebalance.delay.ms`, 3 s by default; Tansu: half the session timeout,
5 s at aiokafka's default), so the service's three groups (commands, suggestions, directory)
took three holds in a row: 15 s from start to ready on the embedded broker. Each subscriber
builds its own consumer (what they share, the admin client that ensures topics and the
logger, is safe to share), so they join at once here: one hold, 5 s.
"""

from __future__ import annotations

import asyncio

from faststream.kafka import KafkaBroker


class KafkaBrokerJoiningAtOnce(KafkaBroker):
    """`KafkaBroker` whose `start` starts every subscriber concurrently. The first start to
    fail cancels the others and its error is raised (not an ExceptionGroup; errors of other
    starts failing at the same moment are dropped), so a failed start reads as it did when
    faststream started them in turn; the service then exits."""

    async def start(self) -> None:
        await self.connect()
        try:
            async with asyncio.TaskGroup() as starting:
                for subscriber in self.subscribers:
                    starting.create_task(subscriber.start())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the error itself, not a group of one
        for publisher in self.publishers:
            await publisher.start()
        self.running = True
