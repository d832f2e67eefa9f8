"""One service process per store (SQLite and PostgreSQL) for the whole session, and the check
that no service logged an error the test did not expect."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from service.client import RotationsClient
from tests.environment import postgres_schema_url
from tests.integration.log_check import MARKER, Record, report, unexpected
from tests.integration.service_process import ServiceProcess


def _expected_patterns(item: pytest.Item) -> list[re.Pattern[str]]:
    """Every pattern the test (or its module/class) declares with the marker."""
    patterns: list[re.Pattern[str]] = []
    for marker in item.iter_markers(MARKER):
        if not marker.args or not all(isinstance(a, str) and a for a in marker.args):
            pytest.fail(f"@pytest.mark.{MARKER} takes one or more non-empty regexes", False)
        patterns.extend(re.compile(pattern) for pattern in marker.args)
    return patterns


@pytest.fixture(autouse=True)
def no_unexpected_service_log_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, every ServiceProcess's new log lines hold no error or traceback but the
    ones the test declares: a retry or a lenient assertion must not hide a bug.

    Lines logged since the previous test's check are included: session services start (and
    may fail) in this test's setup, before this fixture runs."""
    expected = _expected_patterns(request.node)
    read: dict[ServiceProcess, list[Record]] = {
        process: process.new_log_records() for process in ServiceProcess.instances
    }
    yield
    for process in ServiceProcess.instances:  # including the ones this test made
        read.setdefault(process, []).extend(process.new_log_records())
    found = {
        p.describe_log(): bad for p, logged in read.items() if (bad := unexpected(logged, expected))
    }
    if found:
        pytest.fail(report(found, "during this test or its setup"), pytrace=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{data_dir}/integration-{id(request)}.sqlite"
        return
    with postgres_schema_url() as url:
        yield url


@pytest.fixture(scope="session")
def service(bootstrap_servers: str, store_url: str, data_dir: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(bootstrap_servers, store_url, data_dir)
    process.start()
    yield process
    process.stop()
    process.check_shutdown_log()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(service: ServiceProcess) -> AsyncIterator[RotationsClient]:
    async with RotationsClient(service.settings, timeout=30) as rotations:
        await service.wait_ready(rotations)
        yield rotations
