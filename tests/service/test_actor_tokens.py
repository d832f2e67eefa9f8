"""Signed actors on the command path, with faststream's in-memory TestKafkaBroker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from service.bootstrap import StartupError, build_service
from service.kafka_records import whole_message
from service.settings import Settings
from tests.service.test_kafka_app import REPLIES, Harness

pytestmark = pytest.mark.asyncio(loop_scope="session")
ISSUER = "https://id.example.test"
AUDIENCE = "rotations"
KEY = ed25519.Ed25519PrivateKey.generate()


def signed(sub: str, key: ed25519.Ed25519PrivateKey = KEY, **claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, **claims}
    return jwt.encode(payload, key, algorithm="EdDSA")


def settings_for(tmp_path: Path, tokens: str = "required") -> Settings:
    keys = tmp_path / "actor-keys.pem"
    keys.write_bytes(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Settings(
        ROTATIONS_STORE=f"sqlite:///{tmp_path}/store.sqlite",
        ROTATIONS_DIRECTORY="open",
        ROTATIONS_ACTOR_TOKENS=tokens,
        ROTATIONS_ACTOR_KEYS=str(keys),
        ROTATIONS_ACTOR_ISSUER=ISSUER,
        ROTATIONS_ACTOR_AUDIENCE=AUDIENCE,
    )


async def started(settings: Settings) -> AsyncIterator[Harness]:
    """The service as bootstrap builds it (verifier included), on the in-memory broker."""
    service = await build_service(settings, broker=KafkaBroker(apply_types=False))
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
    service.app.close()


@pytest_asyncio.fixture(loop_scope="session")
async def signed_service(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in started(settings_for(tmp_path)):
        yield harness


@pytest_asyncio.fixture(loop_scope="session")
async def unsigned_service(tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in started(settings_for(tmp_path, tokens="off")):
        yield harness


async def command(
    harness: Harness, actor: str, token: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"command_id": uuid.uuid4().hex, "actor": actor, **fields}
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    topic = harness.service.settings.commands_topic
    reply = await harness.send(topic, json.dumps(body).encode(), **headers)
    assert reply is not None
    return dict(reply["body"])


def create(rotation_id: str) -> dict[str, Any]:
    return {"type": "CreateRotation", "rotation_id": rotation_id, "name": "Sales"}


async def test_a_command_without_a_token_is_forbidden_and_dead_lettered(
    signed_service: Harness,
) -> None:
    reply = await command(signed_service, "kari", **create("r-unsigned"))

    assert reply["status"] == "rejected"
    assert reply["error"]["code"] == "forbidden"
    assert "actor token is required" in reply["error"]["message"]
    letter = signed_service.dead[-1]
    assert letter["error"]["code"] == "forbidden"
    assert letter["source_topic"] == signed_service.service.settings.commands_topic
    # Not executed: the same rotation can still be created, with a good token.
    created = await command(signed_service, "kari", signed("kari"), **create("r-unsigned"))
    assert created["status"] == "accepted"


async def test_a_good_token_is_accepted(signed_service: Harness) -> None:
    reply = await command(signed_service, "kari", signed("kari"), **create("r-signed"))

    assert reply["status"] == "accepted", reply
    assert signed_service.dead == []


@pytest.mark.parametrize(
    ("make_token", "says"),
    [
        (lambda: signed("ola"), "actor 'kari' is not the actor token's subject 'ola'"),
        (
            lambda: signed("kari", key=ed25519.Ed25519PrivateKey.generate()),
            "signature does not verify",
        ),
        (lambda: signed("kari", exp=int(time.time()) - 3600), "expired at"),
        (lambda: signed("kari", iss="https://evil.example.test"), "issuer is not"),
    ],
    ids=["other-subject", "other-key", "expired", "other-issuer"],
)
async def test_a_bad_token_is_forbidden_and_its_token_not_dead_lettered(
    signed_service: Harness, make_token: Callable[[], str], says: str
) -> None:
    token = make_token()  # signed when the test runs: a token made at collection expires
    reply = await command(signed_service, "kari", token, **create(f"r-{uuid.uuid4().hex}"))

    assert reply["error"]["code"] == "forbidden"
    assert says in reply["error"]["message"]
    (letter,) = signed_service.dead
    assert letter["error"]["code"] == "forbidden"
    assert letter["headers"]["authorization"] == "[redacted]"
    assert token not in json.dumps(letter)


async def test_a_domain_rejection_of_a_signed_command_carries_no_token(
    signed_service: Harness,
) -> None:
    token = signed("kari")
    reply = await command(
        signed_service, "kari", token, type="AddMember", rotation_id="nope", user_id="x"
    )

    assert reply["error"]["code"] == "unknown_rotation"
    (letter,) = signed_service.dead
    assert letter["headers"]["authorization"] == "[redacted]"


async def test_with_tokens_off_the_header_is_ignored(unsigned_service: Harness) -> None:
    forged = signed("ola", key=ed25519.Ed25519PrivateKey.generate())

    reply = await command(unsigned_service, "kari", forged, **create("r-off"))

    assert reply["status"] == "accepted"
    assert unsigned_service.service.verifier is None


async def test_an_unusable_keys_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    Path(settings.actor_keys or "").write_text("not a key")

    with pytest.raises(StartupError) as raised:
        await build_service(settings, broker=KafkaBroker(apply_types=False))

    message = str(raised.value)
    assert "cannot use the actor keys" in message and "ROTATIONS_ACTOR_KEYS" in message
    assert "\n" not in message
