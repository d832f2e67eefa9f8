"""Starting and stopping the service: store, read model, topics, Kafka consumers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.events_publisher import publish_events
from service.http import start_http
from service.kafka_app import RotationsKafkaApp
from service.settings import Settings
from service.store import store_environment
from service.topics import ensure_topics

log = logging.getLogger("rotations.service")


class StartupError(RuntimeError):
    """The store or the broker cannot be reached: say so and exit instead of hanging."""


def open_application(settings: Settings) -> RotationsApplication:
    try:
        return RotationsApplication(
            env=store_environment(settings.store),
            conflict_retries=settings.conflict_retries,
            directory=settings.directory,
        )
    except Exception as error:
        raise StartupError(f"cannot open the event store {settings.store!r}: {error}") from error


async def build_service(settings: Settings) -> RotationsKafkaApp:
    app = await asyncio.to_thread(open_application, settings)
    projector = RotationProjector(app, open_view(app))
    caught_up = await asyncio.to_thread(projector.catch_up)
    projector.follow_saves_of(app)
    log.info("read model caught up", extra={"applied": caught_up, "position": projector.position})
    try:
        cluster_id = await asyncio.wait_for(
            ensure_topics(
                settings.kafka_bootstrap_servers, settings.all_topics(), settings.partitions
            ),
            timeout=30,
        )
    except Exception as error:
        raise StartupError(
            f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers}: "
            f"{error or type(error).__name__}"
        ) from error
    return RotationsKafkaApp(settings, app, projector, cluster_id)


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
            await ensure_topics(
                settings.kafka_bootstrap_servers, settings.all_topics(), settings.partitions
            )
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
    try:
        http = await start_http(settings)  # first: live (and not ready) during startup
    except OSError as error:
        raise StartupError(
            f"cannot serve HTTP on port {settings.http_port} (ROTATIONS_HTTP_PORT): "
            f"{error.strerror or error}"
        ) from error
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
