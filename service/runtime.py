"""Running the service: what `bootstrap` composed, with its background tasks, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from service.bootstrap import StartupError, build_service, open_http
from service.events_publisher import publish_events
from service.kafka_app import RotationsKafkaApp
from service.settings import Settings
from service.store import missing_store
from service.topics import ensure_topics

__all__ = ["StartupError", "serve"]

log = logging.getLogger("rotations.service")


async def follow_store(service: RotationsKafkaApp, interval: float) -> None:
    """Poll the notification log for events written by other instances."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(service.projector.catch_up)
        except Exception:
            log.exception("read model catch-up failed; will retry")


async def keep_topics(settings: Settings, interval: float = 10.0) -> None:
    """Recreate missing topics, e.g. after an in-memory broker restarted empty."""
    while True:
        await asyncio.sleep(interval)
        try:
            await ensure_topics(settings, settings.all_topics(), settings.partitions)
        except Exception as error:
            log.warning("topic check failed: %r", error)


class EventsPublishing:
    """Runs the events publisher while the broker is up (started after, stopped before it)."""

    def __init__(self, service: RotationsKafkaApp, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(
            publish_events(
                self.service.app,
                self.service.broker,
                self.settings,
                self.stopping,
                cluster_id=lambda: self.service.listener.cluster_id,
                wake=self.service.stored,
                sender=self.service.sender,
            )
        )

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 10)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, with health, metrics and AsyncAPI over HTTP alongside."""
    http = await open_http(settings)  # first: live (and not ready) during startup
    if (path := missing_store(settings.store)) is not None:
        # Said once, so a store that "lost" its data is seen to be a different file.
        log.info(f"no store at {path}; starting an empty one")
    try:
        service = await build_service(settings)
    except BaseException:
        if http is not None:
            await http.stop()
        raise
    if http is not None:
        http.app.attach(service)
        service.faststream.on_shutdown(http.app.mark_stopping)
    follower = asyncio.create_task(follow_store(service, settings.projection_poll_seconds))
    topics = asyncio.create_task(keep_topics(settings))
    publishing = EventsPublishing(service, settings)
    service.faststream.after_startup(publishing.start)
    service.faststream.on_shutdown(publishing.stop)
    password = urlsplit(settings.store).password
    store = settings.store.replace(f":{password}@", ":***@", 1) if password else settings.store
    log.info(
        "service starting",
        extra={
            "bootstrap": settings.kafka_bootstrap_servers,
            "store": store,
            "commands": settings.commands_topic,
            "http_port": http.port if http is not None else None,
        },
    )
    try:
        await service.faststream.run()
    finally:
        for task in (follower, topics):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if http is not None:
            await http.stop()
        service.app.close()
        log.info("service stopped")
