"""The store, not the broker, holds the truth: the service rides out a broker restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.client import RotationsClient
from service.embedded_broker import start_broker
from tests.integration.helpers import book, send
from tests.integration.service_process import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# What aiokafka logs (at ERROR) while the broker is down, and only from aiokafka's loggers: the
# service's own errors stay unexpected. The restarted broker has forgotten the consumer group, so
# the first offset commit after it fails (the member id is unknown) and the consumer rejoins; the
# commit that faststream's ack makes then fails too, logged CRITICAL by faststream, and the
# message is delivered again (commands are idempotent by command_id, which the test checks).
AIOKAFKA = r'"logger": "aiokafka(\.[\w.]+)?", "message": '
BROKER_AWAY = (
    AIOKAFKA + r'"Unable connect to (node with id \d+|\\"[\d.]+:\d+\\"): ',
    AIOKAFKA + r'"Unable to update metadata from \[\d+\]"',
    AIOKAFKA + r'"Failed fetch messages from \d+: (KafkaConnectionError|NodeNotReadyError)',
    AIOKAFKA + r'"Group Coordinator Request failed: (NodeNotReadyError|KafkaConnectionError)',
    AIOKAFKA + r'"Heartbeat session expired - marking coordinator dead"',
    AIOKAFKA + r'"Heartbeat send request failed: \[Error \d+\] GroupCoordinatorNotAvailableError',
    AIOKAFKA + r'"Error sending OffsetCommitRequest to node \d+ \[NodeNotReadyError',
    AIOKAFKA + r'"OffsetCommit failed for group [\w.-]+ due to group error '
    r'\(\[Error 25\] UnknownMemberIdError: [\w.-]+\), will rejoin"',
    r'"logger": "rotations\.faststream", "message": "CommitFailedError\(.*"exception": '
    r'"Traceback.*UnknownMemberIdError.*faststream/kafka/message\.py.{1,20} in ack\\n',
)


@pytest.mark.expected_log_errors(*BROKER_AWAY)
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
