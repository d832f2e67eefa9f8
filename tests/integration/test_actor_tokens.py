"""Signed actors through the real broker: `rotations serve` with ROTATIONS_ACTOR_TOKENS=required,
talked to with `rotations send --token`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from service.client import RotationsClient
from tests.integration.helpers import dead_letters_where
from tests.integration.service_process import ServiceProcess

pytestmark = pytest.mark.integration
ISSUER = "https://id.example.test"
AUDIENCE = "rotations-it"
KEY = ed25519.Ed25519PrivateKey.generate()


def signed(sub: str, key: ed25519.Ed25519PrivateKey = KEY) -> str:
    payload = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}
    return jwt.encode(payload, key, algorithm="EdDSA")


@pytest.fixture(scope="module")
def signed_service(bootstrap_servers: str, data_dir: Path) -> Iterator[ServiceProcess]:
    keys = data_dir / "actor-keys.pem"
    keys.write_bytes(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    process = ServiceProcess(
        bootstrap_servers,
        f"sqlite:///{data_dir}/signed-actors.sqlite",
        data_dir,
        extra_env={
            "ROTATIONS_ACTOR_TOKENS": "required",
            "ROTATIONS_ACTOR_KEYS": str(keys),
            "ROTATIONS_ACTOR_ISSUER": ISSUER,
            "ROTATIONS_ACTOR_AUDIENCE": AUDIENCE,
        },
    )
    process.start()
    yield process
    process.stop()
    process.check_shutdown_log()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def signed_client(signed_service: ServiceProcess) -> AsyncIterator[RotationsClient]:
    async with RotationsClient(signed_service.settings, timeout=30) as client:
        await signed_service.wait_ready(client)  # its unsigned command is refused: a reply
        yield client


def rotations_send(service: ServiceProcess, *args: str) -> tuple[int, dict[str, Any], str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": service.env["KAFKA_BOOTSTRAP_SERVERS"],
        "ROTATIONS_TOPIC_PREFIX": service.env["ROTATIONS_TOPIC_PREFIX"],
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "send", *args, "--timeout", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    try:
        reply = json.loads(result.stdout)
    except ValueError:
        reply = {}
    return result.returncode, reply, output


@pytest.mark.asyncio(loop_scope="session")
async def test_send_with_a_token_is_accepted_and_a_forged_one_refused(
    signed_service: ServiceProcess, signed_client: RotationsClient, uid: str, tmp_path: Path
) -> None:
    rotation = f"signed-{uid}"
    create = ["CreateRotation", "--rotation-id", rotation, "--field", "name=Sales"]

    code, reply, output = rotations_send(signed_service, *create, "--token", signed("kari"))
    assert code == 0 and reply["status"] == "accepted", output

    forged = signed("kari", key=ed25519.Ed25519PrivateKey.generate())
    add = ["AddMember", "--rotation-id", rotation, "--field", "user_id=ola"]
    code, reply, output = rotations_send(signed_service, *add, "--token", forged)
    assert code == 1, output
    assert reply["error"]["code"] == "forbidden"
    assert "signature does not verify" in reply["error"]["message"]

    token_file = tmp_path / "token"
    token_file.write_text(signed("ola") + "\n")
    code, reply, output = rotations_send(
        signed_service, *add, "--actor", "kari", "--token-file", str(token_file)
    )
    assert code == 1 and reply["error"]["code"] == "forbidden", output
    assert "actor 'kari' is not the actor token's subject 'ola'" in reply["error"]["message"]

    code, reply, output = rotations_send(signed_service, *add, "--token-file", str(token_file))
    assert code == 0 and reply["status"] == "accepted", output  # actor: the token's subject

    letters = await dead_letters_where(
        signed_client,
        lambda x: x["error"]["code"] == "forbidden" and rotation in x["original_bytes"].decode(),
        count=2,
    )
    assert len(letters) == 2
    assert all(letter["headers"]["authorization"] == "[redacted]" for letter in letters)
    assert not any(forged.encode() in repr(letter).encode() for letter in letters)


def test_an_unusable_keys_file_stops_serve_with_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": []}')
    env = {
        **os.environ,
        "ROTATIONS_HTTP_PORT": "0",
        "ROTATIONS_STORE": f"sqlite:///{tmp_path}/s.sqlite",
        "ROTATIONS_ACTOR_TOKENS": "required",
        "ROTATIONS_ACTOR_KEYS": str(keys),
        "ROTATIONS_ACTOR_ISSUER": ISSUER,
        "ROTATIONS_ACTOR_AUDIENCE": AUDIENCE,
    }
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot use the actor keys" in result.stderr and "JWKS" in result.stderr
    assert "Traceback" not in result.stderr
