"""One service process per store (SQLite and PostgreSQL) for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from service.client import RotationsClient
from tests.environment import postgres_schema_url
from tests.integration.service_process import ServiceProcess


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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(service: ServiceProcess) -> AsyncIterator[RotationsClient]:
    async with RotationsClient(service.settings, timeout=30) as rotations:
        await service.wait_ready(rotations)
        yield rotations
