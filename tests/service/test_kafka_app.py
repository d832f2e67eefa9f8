"""The Kafka edges with faststream's in-memory TestKafkaBroker: fast, no broker process."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from faststream import ContextRepo
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.response import KafkaPublishCommand
from faststream.response.publish_type import PublishType

from projections.rotation_view import RotationProjector, open_view
from service import contracts as c
from service.answering import Answering, AnsweringMiddleware
from service.application import RotationsApplication
from service.kafka_app import RotationsKafkaApp
from service.kafka_positions import Record
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

    async def send(
        self, topic: str, body: bytes, reply_to: str = REPLIES, **headers: str
    ) -> dict[str, Any] | None:
        correlation_id = uuid.uuid4().hex
        await self.service.broker.publish(
            body,
            topic=topic,
            key=b"k",
            correlation_id=correlation_id,
            reply_to=reply_to,
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
        replies.append(
            {
                "correlation_id": msg.correlation_id,
                "content_type": msg.content_type,
                "body": json.loads(msg.body),
            }
        )

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


async def test_suggestion_is_the_handlers_return_value_on_reply_to(harness: Harness) -> None:
    await harness.command(type="CreateRotation", rotation_id="r2", name="S", members=["a"])
    correlation_id = uuid.uuid4().hex
    body = json.dumps({"rotation_id": "r2"}).encode()
    await harness.service.broker.publish(
        body,
        topic=harness.service.settings.suggest_topic,
        headers={"reply_to": REPLIES, "correlation_id": correlation_id},
    )
    (reply,) = [r for r in harness.replies if r["correlation_id"] == correlation_id]
    assert reply["content_type"] == "application/json"
    assert reply["body"]["host_id"] == "a"


async def test_malformed_suggestion_is_dead_lettered(harness: Harness) -> None:
    reply = await harness.send(harness.service.settings.suggest_topic, b'{"exclude": 5}')
    assert reply is not None
    assert "rotation_id" in reply["body"]["error"]["message"]
    assert harness.dead[-1]["source_topic"] == harness.service.settings.suggest_topic
    assert harness.dead[-1]["error"]["code"] == "invalid_message"


async def test_an_illegal_reply_to_is_not_published_to_but_dead_lettered(
    harness: Harness,
) -> None:
    await harness.command(type="CreateRotation", rotation_id="r3", name="S", members=["a"])
    before = len(harness.replies)
    body = json.dumps({"rotation_id": "r3"}).encode()
    reply = await harness.send(
        harness.service.settings.suggest_topic, body, reply_to="no such topic!"
    )
    assert reply is None and len(harness.replies) == before
    letter = harness.dead[-1]
    assert letter["source_topic"] == harness.service.settings.suggest_topic
    assert letter["error"]["code"] == "reply_undelivered"
    assert "not a legal topic name" in letter["error"]["message"]


async def test_directory_fact_is_stored_and_replied(harness: Harness) -> None:
    fact = {
        "type": "UserUpdated",
        "message_id": uuid.uuid4().hex,
        "user_id": "u1",
        "seat": True,
        "calendar_connected": True,
        "calendar_sync": True,
    }
    topic = harness.service.settings.directory_topic
    reply = await harness.send(topic, json.dumps(fact).encode())
    assert reply is not None and reply["body"]["status"] == "accepted"
    bad = await harness.send(topic, json.dumps({"type": "UserUpdated"}).encode())
    assert bad is not None and bad["body"]["error"]["code"] == "invalid_message"
    assert "message_id" in bad["body"]["error"]["message"]
    assert harness.dead[-1]["source_topic"] == topic


def record(topic: str = "t") -> Record:
    return Record(
        topic=topic,
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=b"{}",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=[],
    )


async def test_a_failed_or_slow_reply_is_dead_lettered_not_raised() -> None:
    letters: list[tuple[Record, c.ErrorBody]] = []

    async def dead_letter(rec: Record, error: c.ErrorBody) -> None:
        letters.append((rec, error))

    answering = Answering(lambda e: c.CommandReply(status="rejected"), dead_letter, 0.05)

    async def fails(cmd: KafkaPublishCommand) -> None:
        raise ConnectionError("down")

    async def hangs(cmd: KafkaPublishCommand) -> None:
        await asyncio.sleep(5)

    for publish, says in ((fails, "ConnectionError"), (hangs, "TimeoutError")):
        middleware = AnsweringMiddleware(record(), context=ContextRepo(), answering=answering)
        cmd = KafkaPublishCommand(b"{}", topic="replies", _publish_type=PublishType.REPLY)
        assert await middleware.publish_scope(publish, cmd) is None
        assert await middleware.after_processed() is False
        assert says in letters[-1][1].message
        assert letters[-1][1].code == "reply_undelivered"
