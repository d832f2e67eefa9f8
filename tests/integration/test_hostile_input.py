"""Anything a client can send: the service answers what it can, dead-letters the rest, goes on."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from service.client import RotationsClient
from tests.environment import SEED_VARIABLE, seed_for, session_seed
from tests.integration.helpers import book, dead_letters_where, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

COMMAND_TYPES = ["CreateRotation", "AddMember", "BookMeeting", "ToggleAvailability", "Nope"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
command_like = st.fixed_dictionaries(
    {"type": st.sampled_from(COMMAND_TYPES)},
    optional={
        "command_id": st.text(max_size=250) | json_values,
        "rotation_id": st.text(max_size=250) | json_values,
        "actor": st.text(max_size=5) | json_values,
        "user_id": st.text(max_size=250) | json_values,
        "name": st.text(max_size=5) | json_values,
        "available": json_values,
        "meeting_id": st.text(max_size=5) | json_values,
        "record": json_values
        | st.fixed_dictionaries({"type": st.text(max_size=8), "id": json_values}),
        "members": st.lists(st.text(max_size=5), max_size=3) | json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    command_like.map(lambda v: json.dumps(v).encode()),
)
garbage_headers = st.lists(
    st.tuples(
        st.sampled_from(["reply_to", "correlation_id", "x", "content-type"]),
        st.binary(max_size=20) | st.none(),
    ),
    max_size=3,
)


@dataclass
class Hostile:
    body: bytes
    headers: list[tuple[str, bytes | None]]
    wants_reply: bool


def generate(count: int, generator_seed: int) -> list[Hostile]:
    """Use hypothesis as the generator of `count` hostile messages, seeded: nothing fails inside
    the generator, so hypothesis would never print what it drew, and the seed is what repeats
    a run."""
    found: list[Hostile] = []

    @seed(generator_seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(body=bodies, headers=garbage_headers, wants_reply=st.booleans())
    def collect(body: bytes, headers: list[tuple[str, bytes | None]], wants_reply: bool) -> None:
        found.append(Hostile(body, headers, wants_reply))

    collect()
    return found


async def test_a_thousand_hostile_messages(
    client: RotationsClient, uid: str, request: pytest.FixtureRequest
) -> None:
    messages = generate(1000, seed_for(request.node.nodeid))
    assert len(messages) >= 1000
    producer = AIOKafkaProducer(
        bootstrap_servers=client.settings.kafka_bootstrap_servers, linger_ms=5
    )
    await producer.start()
    futures: list[asyncio.Future[bytes]] = []
    try:
        for message in messages:
            headers = [
                (k, v) for k, v in message.headers if k not in ("reply_to", "correlation_id")
            ]
            if message.wants_reply:
                correlation_id = uuid.uuid4().hex
                futures.append(client.expect_reply(correlation_id))
                headers += [
                    ("reply_to", client.reply_topic.encode()),
                    ("correlation_id", correlation_id.encode()),
                ]
            await producer.send(
                client.settings.commands_topic,
                message.body,
                key=b"hostile",
                headers=headers,
            )
        await producer.flush()
    finally:
        await producer.stop()
    replies = [json.loads(r) for r in await asyncio.wait_for(asyncio.gather(*futures), 120)]
    print(
        f"\nhostile messages sent: {len(messages)}, replies awaited and received: {len(replies)}"
        f" ({SEED_VARIABLE}={session_seed()})"
    )
    assert all(r["status"] in ("accepted", "rejected") for r in replies)
    rejected = [r for r in replies if r["status"] == "rejected"]
    assert all(r["error"]["code"] and r["error"]["message"] for r in rejected)

    rotation = f"after-hostile-{uid}"
    assert (await send(client, "CreateRotation", rotation, name="S", members=["a", "b"]))[
        "status"
    ] == "accepted"
    assert (await book(client, rotation))["host_id"] == "a"
    assert (await client.suggest(rotation))["host_id"] == "b"


async def test_oversized_and_unanswerable_messages(client: RotationsClient, uid: str) -> None:
    big = json.dumps(
        {
            "type": "RenameRotation",
            "command_id": uid,
            "rotation_id": "r",
            "actor": "a",
            "name": "x" * 2_000_000,
        }
    ).encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=client.settings.kafka_bootstrap_servers, max_request_size=12_000_000
    )
    await producer.start()
    try:
        correlation_id = uuid.uuid4().hex
        reply = client.expect_reply(correlation_id)
        await producer.send_and_wait(
            client.settings.commands_topic,
            big,
            key=b"big",
            headers=[
                ("reply_to", client.reply_topic.encode()),
                ("correlation_id", correlation_id.encode()),
            ],
        )
        answer = json.loads(await asyncio.wait_for(reply, 60))
        assert answer["error"]["code"] == "invalid_message"
        assert "over the limit" in answer["error"]["message"]

        unanswerable = json.dumps({"type": "Nope", "marker": uid}).encode()
        await producer.send_and_wait(
            client.settings.commands_topic,
            unanswerable,
            key=b"x",
            headers=[("reply_to", b"no such topic!"), ("correlation_id", b"c")],
        )
    finally:
        await producer.stop()
    rotation = f"after-big-{uid}"
    assert (await send(client, "CreateRotation", rotation, name="S", members=["a"]))["status"] == (
        "accepted"
    )
    truncated = await dead_letters_where(client, lambda x: x["original_size"] == len(big))
    assert len(truncated) == 1
    assert truncated[0]["original_truncated"] is True
    assert big.startswith(truncated[0]["original_bytes"])
    (unanswered,) = await dead_letters_where(client, lambda x: x["original_bytes"] == unanswerable)
    assert "not a legal topic name" in unanswered["error"]["message"]
