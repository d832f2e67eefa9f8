"""Session-wide fixtures: one broker, one service per store, unique ids per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.environment import (
    describe_postgres_choice,
    docker_works,
    in_ci,
    stop_postgres_container,
    unavailable,
)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"broker: {describe_broker_choice()}",
        f"store: {describe_postgres_choice()}",
        f"CI: {in_ci()}",
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_postgres_container()


def describe_broker_choice() -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return f"KAFKA_BOOTSTRAP_SERVERS={os.environ['KAFKA_BOOTSTRAP_SERVERS']}"
    if docker_works():
        return "testcontainers Apache Kafka (Docker engine found)"
    return "embedded Tansu broker (no Docker engine)"


@pytest.fixture(scope="session")
def bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker picked by the one rule: env var, else testcontainers, else embedded."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    if docker_works():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:
            try:  # testcontainers before the community namespace
                from testcontainers.kafka import KafkaContainer
            except ImportError:
                unavailable("testcontainers (pip install testcontainers) with a Docker engine")
        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from service.embedded_broker import start_broker

    try:
        broker = start_broker(log_file=tmp_path_factory.mktemp("broker") / "tansu.log")
    except Exception as error:
        unavailable(f"the embedded broker ({error})")
        raise
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture
def uid() -> str:
    """A unique id so tests never share rotations."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")
