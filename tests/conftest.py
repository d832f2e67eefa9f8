"""Session-wide fixtures: one broker, one service per store, unique ids per test, seeded
randomness."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.environment import (
    SEED_VARIABLE,
    describe_postgres_choice,
    docker_works,
    in_ci,
    seed_for,
    session_seed,
    stop_postgres_container,
    unavailable,
)

# Hypothesis: derandomized in CI, so a red build is the same build when rerun and a pull
# request is never failed by an example nobody's change introduced; random elsewhere, so runs on
# laptops keep exploring. Both print the failing example's blob (@reproduce_failure), which
# repeats it exactly whatever the seed was. HYPOTHESIS_PROFILE picks one explicitly.
settings.register_profile("rotations-ci", derandomize=True, print_blob=True)
settings.register_profile("rotations-dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("rotations-ci" if in_ci() else "rotations-dev")
)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"broker: {describe_broker_choice()}",
        f"store: {describe_postgres_choice()}",
        f"CI: {in_ci()}",
        f"random seed: {session_seed()} (repeat with {SEED_VARIABLE}={session_seed()}); "
        f"hypothesis profile: {settings.get_current_profile_name()}",
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Every failure says how to repeat the run's randomness."""
    report = yield
    if report.failed:
        report.sections.append(
            ("random seed", f"{SEED_VARIABLE}={session_seed()} repeats this run's random choices")
        )
    return report


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
def rng(request: pytest.FixtureRequest) -> random.Random:
    """The test's random choices, seeded from the session seed and the test's id."""
    return random.Random(seed_for(request.node.nodeid))


@pytest.fixture
def uid() -> str:
    """A unique id so tests never share rotations."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")
