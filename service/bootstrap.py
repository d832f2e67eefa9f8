"""The one composition root: settings → store → application → read model → Kafka app → HTTP.

Every entry point (the service, the CLI's audits, the AsyncAPI document, tests and the
benchmark) builds its parts here, so each part is wired the same way everywhere.
"""

from __future__ import annotations

import asyncio
import logging

from faststream.kafka import KafkaBroker

from projections.rotation_view import RotationProjector, open_view
from service.actor_tokens import ActorKeysError, ActorVerifier
from service.application import RotationsApplication
from service.cipher_check import CipherMismatch, check_store_cipher, cipher_environment
from service.http import HttpServer, start_http
from service.kafka_app import RotationsKafkaApp
from service.settings import Settings
from service.store import redacted, store_environment
from service.topics import ensure_topics
from service.tracing import open_tracing

log = logging.getLogger("rotations.service")


class StartupError(RuntimeError):
    """The store or the broker cannot be reached: say so and exit instead of hanging."""


def open_application(settings: Settings) -> RotationsApplication:
    """The write side on the configured store, with the configured directory mode; its events
    encrypted when a cipher key is configured, and the store checked to agree with the key
    (`service.cipher_check`). Any failure is one `StartupError` line."""
    store = redacted(settings.store)
    try:
        env = {**store_environment(settings.store), **cipher_environment(settings)}
        app = RotationsApplication(
            env=env, conflict_retries=settings.conflict_retries, directory=settings.directory
        )
    except CipherMismatch as error:
        raise StartupError(str(error)) from error
    except Exception as error:
        raise StartupError(f"cannot open the event store {store!r}: {_line(error)}") from error
    try:
        check_store_cipher(app, repr(store))
    except CipherMismatch as error:
        app.close()
        raise StartupError(str(error)) from error
    except Exception as error:
        app.close()
        raise StartupError(f"cannot read the event store {store!r}: {_line(error)}") from error
    return app


def _line(error: Exception) -> str:
    """The error on one line (psycopg's messages have several)."""
    return " ".join(str(error).split()) or type(error).__name__


def open_read_model(app: RotationsApplication) -> RotationProjector:
    """The live read model, caught up, following what `app` stores as it stores it."""
    projector = RotationProjector(app, open_view(app))
    caught_up = projector.catch_up()
    projector.follow_saves_of(app)
    log.info("read model caught up", extra={"applied": caught_up, "position": projector.position})
    return projector


def open_verifier(settings: Settings) -> ActorVerifier | None:
    """The signed actors' verifier (ROTATIONS_ACTOR_TOKENS=required), its keys read once."""
    if settings.actor_tokens != "required":
        return None
    try:
        return ActorVerifier.from_settings(settings)
    except ActorKeysError as error:
        raise StartupError(str(error)) from error


async def build_service(settings: Settings, broker: KafkaBroker | None = None) -> RotationsKafkaApp:
    """Store, application, read model and the Kafka app (topics created when missing).

    `broker`: faststream's test broker, for tests without a real one (no topics then).
    """
    verifier = open_verifier(settings)  # before the store: a bad keys file fails fast
    tracing = open_tracing(settings)  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    app = await asyncio.to_thread(open_application, settings)
    try:
        if await asyncio.to_thread(app.record_directory_mode):
            log.info("directory mode recorded", extra={"mode": settings.directory})
        projector = await asyncio.to_thread(open_read_model, app)
        if broker is not None:
            return RotationsKafkaApp(
                settings, app, projector, "test", broker=broker, verifier=verifier, tracing=tracing
            )
        cluster_id = await _ensure_topics(settings)
    except BaseException:
        app.close()
        raise
    return RotationsKafkaApp(
        settings, app, projector, cluster_id, verifier=verifier, tracing=tracing
    )


async def _ensure_topics(settings: Settings) -> str:
    try:
        return await asyncio.wait_for(
            ensure_topics(settings, settings.all_topics(), settings.partitions),
            timeout=30,
        )
    except Exception as error:
        raise StartupError(
            f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers}: "
            f"{error or type(error).__name__}"
        ) from error


async def open_http(settings: Settings) -> HttpServer | None:
    """Health, metrics and AsyncAPI; first, so the service is live (not ready) while starting."""
    try:
        return await start_http(settings)
    except OSError as error:
        raise StartupError(
            f"cannot serve HTTP on port {settings.http_port} (ROTATIONS_HTTP_PORT): "
            f"{error.strerror or error}"
        ) from error
