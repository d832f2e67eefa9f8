"""The store, not the broker, holds the truth: the service rides out a broker restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.client import RotationsClient
from service.embedded_broker import start_broker
from tests.integration.helpers import book, send
from tests.integration.service_process import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_service_reconnects_after_broker_restart(tmp_path: Path, uid: str) -> None:
    broker = start_broker(log_file=tmp_path / "tansu.log")
    service = ServiceProcess(broker.bootstrap_servers, f"sqlite:///{tmp_path}/s.sqlite", tmp_path)
    service.start()
    rotation = f"restart-{uid}"
    try:
        async with RotationsClient(service.settings, timeout=30) as client:
            await service.wait_ready(client)
            await send(client, "CreateRotation", rotation, name="S", members=["a", "b", "c"])
            assert (await book(client, rotation))["host_id"] == "a"
            # The queries consumer has read this rotation's partition past offset 0: the
            # restarted (empty) broker starts it at 0 again, which must still be read.
            assert (await client.suggest(rotation))["host_id"] == "b"

        broker.stop()
        broker = start_broker(port=broker.port, log_file=tmp_path / "tansu.log")

        async with RotationsClient(service.settings, timeout=30) as client:
            await service.wait_ready(client, timeout=180)
            assert (await book(client, rotation))["host_id"] == "b"
            answer = await client.suggest(rotation)
            assert answer["host_id"] == "c"
            assert [c["meetings"] for c in answer["candidates"]] == [0, 1, 1]
    finally:
        service.stop()
        broker.stop()
