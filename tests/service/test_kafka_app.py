"""The Kafka edges with faststream's in-memory TestKafkaBroker: fast, no broker process."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.kafka_app import RotationsKafkaApp
from service.kafka_records import whole_message
from service.settings import Settings
from service.store import store_environment

pytestmark = pytest.mark.asyncio(loop_scope="session")
REPLIES = "test.replies"


class Harness:
    """The service's faststream app on an in-memory broker, with a reply-topic recorder."""

    def __init__(self, service: RotationsKafkaApp, replies: list[dict[str, Any]]) -> None:
        self.service = service
        self.replies = replies
        self.dead: list[dict[str, Any]] = []

    async def send(self, topic: str, body: bytes, **headers: str) -> dict[str, Any] | None:
        correlation_id = uuid.uuid4().hex
        await self.service.broker.publish(
            body,
            topic=topic,
            key=b"k",
            correlation_id=correlation_id,
            reply_to=REPLIES,
            headers=headers,
        )
        return next((r for r in self.replies if r["correlation_id"] == correlation_id), None)

    async def command(self, **fields: Any) -> dict[str, Any]:
        body = {"command_id": uuid.uuid4().hex, "actor": "tests", **fields}
        reply = await self.send(self.service.settings.commands_topic, json.dumps(body).encode())
        assert reply is not None
        return dict(reply["body"])

    async def suggest(self, **fields: Any) -> dict[str, Any]:
        reply = await self.send(self.service.settings.suggest_topic, json.dumps(fields).encode())
        assert reply is not None
        return dict(reply["body"])


@pytest_asyncio.fixture(loop_scope="session")
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(ROTATIONS_STORE=f"sqlite:///{tmp_path}/store.sqlite")
    app = RotationsApplication(env=store_environment(settings.store))
    service = RotationsKafkaApp(
        settings,
        app,
        RotationProjector(app, open_view(app)),
        cluster_id="test",
        broker=KafkaBroker(apply_types=False),
    )
    replies: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []

    @service.broker.subscriber(REPLIES, decoder=whole_message)
    async def on_reply(msg: KafkaMessage) -> None:
        replies.append({"correlation_id": msg.correlation_id, "body": json.loads(msg.body)})

    @service.broker.subscriber(settings.dead_letter_topic, decoder=whole_message)
    async def on_dead(msg: KafkaMessage) -> None:
        dead.append(json.loads(msg.body))

    async with TestKafkaBroker(service.broker):
        harness = Harness(service, replies)
        harness.dead = dead
        yield harness
    app.close()


async def test_command_then_suggestion(harness: Harness) -> None:
    created = await harness.command(
        type="CreateRotation", rotation_id="r1", name="Sales", members=["kari", "ola"]
    )
    assert created["status"] == "accepted"
    booked = await harness.command(
        type="BookMeeting", rotation_id="r1", meeting_id="m1", record={"type": "deal", "id": "1"}
    )
    assert booked["host_id"] == "kari"
    answer = await harness.suggest(rotation_id="r1")
    assert answer["host_id"] == "ola"
    assert answer["reason"] == "fewest_meetings"
    assert [c["user_id"] for c in answer["candidates"]] == ["ola", "kari"]


async def test_rejection_is_replied_and_dead_lettered(harness: Harness) -> None:
    reply = await harness.command(type="AddMember", rotation_id="nope", user_id="x")
    assert reply["error"]["code"] == "unknown_rotation"
    assert harness.dead[-1]["error"]["code"] == "unknown_rotation"
    assert harness.dead[-1]["source_topic"] == harness.service.settings.commands_topic


async def test_schema_violation_names_the_field(harness: Harness) -> None:
    reply = await harness.command(type="ToggleAvailability", rotation_id="r", user_id="u")
    assert reply["error"]["code"] == "invalid_message"
    assert "available" in reply["error"]["message"]


async def test_identifier_over_200_characters_is_invalid(harness: Harness) -> None:
    reply = await harness.command(type="CreateRotation", rotation_id="r" * 201, name="n")
    assert reply["error"]["code"] == "invalid_message"
    assert "rotation_id" in reply["error"]["message"]


async def test_malformed_suggestion_request(harness: Harness) -> None:
    reply = await harness.send(harness.service.settings.suggest_topic, b"nope")
    assert reply is not None
    assert reply["body"]["error"]["code"] == "invalid_message"
