"""The actor verifier: keys generated here (Ed25519 and RSA), as PEM and JWKS files."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from events.errors import Forbidden
from service.actor_tokens import (
    ActorKeysError,
    ActorVerifier,
    bearer_header,
    header_value,
    load_keys,
    unverified_subject,
    verify_commands,
    without_token,
)
from service.contracts import COMMAND_ADAPTER
from service.kafka_positions import Record
from service.settings import Settings

ISSUER = "https://id.example.test"
AUDIENCE = "rotations"
SKEW = 30.0

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**data, "kid": kid, "use": "sig"}


def token(
    key: PrivateKey,
    sub: str = "kari",
    *,
    expires_in: float = 300,
    kid: str | None = None,
    omit: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(time.time()) - 5,
        "exp": int(time.time() + expires_in),
        **claims,
    }
    for name in omit:
        payload.pop(name)
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "EdDSA"
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def verifier_for(path: Path) -> ActorVerifier:
    return ActorVerifier.from_settings(
        Settings(
            ROTATIONS_ACTOR_TOKENS="required",
            ROTATIONS_ACTOR_KEYS=str(path),
            ROTATIONS_ACTOR_ISSUER=ISSUER,
            ROTATIONS_ACTOR_AUDIENCE=AUDIENCE,
            ROTATIONS_ACTOR_CLOCK_SKEW_SECONDS=SKEW,
        )
    )


@pytest.fixture(params=["ed25519-pem", "rsa-pem", "ed25519-jwks", "rsa-jwks"])
def case(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    ed_key: ed25519.Ed25519PrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> tuple[ActorVerifier, PrivateKey]:
    """A verifier whose keys file holds the public half of the key the test signs with."""
    kind, form = str(request.param).split("-")
    key: PrivateKey = ed_key if kind == "ed25519" else rsa_key
    path = tmp_path / f"keys.{form}"
    if form == "pem":
        path.write_bytes(pem(key))
    else:
        path.write_text(json.dumps({"keys": [jwk(key, "k1")]}))
    return verifier_for(path), key


def refusal(verifier: ActorVerifier, header: str | None, actor: str = "kari") -> str:
    with pytest.raises(Forbidden) as raised:
        verifier.verify(header, actor)
    assert raised.value.code == "forbidden"
    return str(raised.value)


def test_a_good_token_is_accepted(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    verifier.verify(f"Bearer {token(key)}", "kari")
    verifier.verify(f"bearer {token(key, kid='k1')}", "kari")  # the scheme is case-insensitive


def test_a_missing_header_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, _ = case
    for header in (None, "", "   "):
        assert "actor token is required" in refusal(verifier, header)


def test_not_bearer_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    assert "not `Bearer <JWT>`" in refusal(verifier, f"Basic {token(key)}")
    assert "not `Bearer <JWT>`" in refusal(verifier, token(key))  # no scheme
    assert "not `Bearer <JWT>`" in refusal(verifier, "Bearer ")
    assert "not a well-formed JWT" in refusal(verifier, "Bearer not.a-jwt")


def test_expired_beyond_the_skew_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    message = refusal(verifier, f"Bearer {token(key, expires_in=-(SKEW + 60))}")
    assert "expired at" in message and "clock skew allowed: 30s" in message


def test_expired_within_the_skew_is_accepted(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    verifier.verify(f"Bearer {token(key, expires_in=-(SKEW - 20))}", "kari")


def test_not_yet_valid_beyond_the_skew_is_forbidden(
    case: tuple[ActorVerifier, PrivateKey],
) -> None:
    verifier, key = case
    early = token(key, nbf=int(time.time() + SKEW + 60))
    assert "not valid yet" in refusal(verifier, f"Bearer {early}")


def test_wrong_issuer_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    message = refusal(verifier, f"Bearer {token(key, iss='https://evil.example.test')}")
    assert f"issuer is not {ISSUER!r}" in message


def test_wrong_audience_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    message = refusal(verifier, f"Bearer {token(key, aud='another-service')}")
    assert f"audience is not {AUDIENCE!r}" in message
    verifier.verify(f"Bearer {token(key, aud=['another-service', AUDIENCE])}", "kari")


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_a_missing_claim_is_forbidden(case: tuple[ActorVerifier, PrivateKey], claim: str) -> None:
    verifier, key = case
    assert f"no {claim!r} claim" in refusal(verifier, f"Bearer {token(key, omit=(claim,))}")


def test_a_token_signed_by_another_key_is_forbidden(
    case: tuple[ActorVerifier, PrivateKey],
) -> None:
    verifier, key = case
    other: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if isinstance(key, rsa.RSAPrivateKey)
        else ed25519.Ed25519PrivateKey.generate()
    )
    message = refusal(verifier, f"Bearer {token(other)}")
    assert "signature does not verify" in message


def test_a_tampered_payload_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    head, _, signature = token(key, sub="kari").split(".")
    forged = jwt.utils.base64url_encode(
        json.dumps({"sub": "ola", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**40}).encode()
    ).decode()
    assert "signature does not verify" in refusal(verifier, f"Bearer {head}.{forged}.{signature}")


def test_sub_other_than_the_actor_is_forbidden(case: tuple[ActorVerifier, PrivateKey]) -> None:
    verifier, key = case
    message = refusal(verifier, f"Bearer {token(key, sub='ola')}", actor="kari")
    assert "actor 'kari' is not the actor token's subject 'ola'" in message


def test_only_the_keys_algorithm_is_accepted(
    case: tuple[ActorVerifier, PrivateKey],
) -> None:
    """No HS256 with the public key as secret, no `none`, no other asymmetric algorithm."""
    verifier, key = case
    unsigned = jwt.encode(
        {"sub": "kari", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**40}, "", algorithm="none"
    )
    assert "algorithm 'none' is not accepted" in refusal(verifier, f"Bearer {unsigned}")
    head = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    _, body, signature = token(key).split(".")
    confused = f"{head.decode()}.{body}.{signature}"
    assert "algorithm 'HS256' is not accepted" in refusal(verifier, f"Bearer {confused}")


def test_a_jwks_picks_the_key_by_kid(
    tmp_path: Path, ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "jwks.json"
    keys = [jwk(other, "old"), jwk(ed_key, "new"), jwk(rsa_key, "rsa")]
    path.write_text(json.dumps({"keys": keys}))
    verifier = verifier_for(path)

    verifier.verify(f"Bearer {token(ed_key, kid='new')}", "kari")
    verifier.verify(f"Bearer {token(ed_key)}", "kari")  # no kid: every EdDSA key is tried
    verifier.verify(f"Bearer {token(rsa_key, kid='rsa')}", "kari")
    assert "signature does not verify" in refusal(verifier, f"Bearer {token(ed_key, kid='old')}")
    assert "key id 'gone' is not configured" in refusal(
        verifier, f"Bearer {token(ed_key, kid='gone')}"
    )


def test_a_pem_file_may_hold_several_keys(
    tmp_path: Path, ed_key: ed25519.Ed25519PrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "keys.pem"
    path.write_bytes(pem(ed25519.Ed25519PrivateKey.generate()) + pem(ed_key) + pem(rsa_key))
    verifier = verifier_for(path)
    verifier.verify(f"Bearer {token(ed_key)}", "kari")
    verifier.verify(f"Bearer {token(rsa_key)}", "kari")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "no PEM block"),
        (b"hello", "no PEM block"),
        (b"{not json", "not JSON"),
        (b'{"keys": "x"}', '"keys" list'),
        (b'{"keys": []}', "JWKS"),
        (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "no Ed25519"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a public key"),
    ],
)
def test_an_unusable_keys_file_is_one_clear_error(
    tmp_path: Path, content: bytes, says: str
) -> None:
    path = tmp_path / "keys"
    path.write_bytes(content)
    with pytest.raises(ActorKeysError) as raised:
        verifier_for(path)
    message = str(raised.value)
    assert says in message and "ROTATIONS_ACTOR_KEYS" in message and "\n" not in message


def test_a_private_key_or_a_small_rsa_key_is_refused(
    tmp_path: Path, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    private = tmp_path / "private.pem"
    private.write_bytes(
        ed_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ActorKeysError, match="private key"):
        load_keys(private)
    small = tmp_path / "small.pem"
    small.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    with pytest.raises(ActorKeysError, match="1024-bit RSA key"):
        load_keys(small)
    with pytest.raises(ActorKeysError, match="cannot read it"):
        load_keys(tmp_path / "missing.pem")


def test_required_needs_keys_issuer_and_audience() -> None:
    with pytest.raises(ActorKeysError) as raised:
        ActorVerifier.from_settings(Settings(ROTATIONS_ACTOR_TOKENS="required"))
    assert "ROTATIONS_ACTOR_KEYS and ROTATIONS_ACTOR_ISSUER and ROTATIONS_ACTOR_AUDIENCE" in str(
        raised.value
    )


def test_the_token_is_blanked_in_what_is_dead_lettered() -> None:
    record = _record([("reply_to", b"r"), ("authorization", b"Bearer secret")])
    assert without_token(record).headers == [("reply_to", b"r"), ("authorization", b"[redacted]")]
    assert record.headers[1] == ("authorization", b"Bearer secret")


def test_the_cli_helpers(ed_key: ed25519.Ed25519PrivateKey) -> None:
    raw = token(ed_key, sub="per")
    assert bearer_header(raw) == f"Bearer {raw}"
    assert bearer_header(f"Bearer {raw}\n") == f"Bearer {raw}"
    assert unverified_subject(raw) == unverified_subject(f"Bearer {raw}") == "per"
    assert unverified_subject("garbage") is None


class RecordingClient:
    """Stands in for RotationsClient: what `rotations send` would have sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], dict[str, str] | None]] = []

    async def command(
        self, command: dict[str, Any], timeout: float | None = None, headers: Any = None
    ) -> dict[str, Any]:
        self.sent.append((command, headers))
        return {"status": "accepted"}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> RecordingClient:
    import asyncio

    from service import cli

    client = RecordingClient()
    monkeypatch.setattr(cli, "_talk", lambda action, timeout: asyncio.run(action(client)))
    return client


def run_send(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from service.cli import cli

    result = CliRunner().invoke(
        cli, ["send", "DeleteRotation", "--rotation-id", "r", *args], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.output


def test_send_token_adds_the_header_and_defaults_the_actor_to_its_subject(
    sent: RecordingClient, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    raw = token(ed_key, sub="per")
    assert run_send("--token", raw)[0] == 0
    assert run_send("--token", raw, "--actor", "kari")[0] == 0
    (first, first_headers), (second, second_headers) = sent.sent
    assert first_headers == second_headers == {"authorization": f"Bearer {raw}"}
    assert first["actor"] == "per" and second["actor"] == "kari"


def test_send_token_file(
    sent: RecordingClient, ed_key: ed25519.Ed25519PrivateKey, tmp_path: Path
) -> None:
    raw = token(ed_key, sub="per")
    path = tmp_path / "token"
    path.write_text(f"{raw}\n")
    assert run_send("--token-file", str(path))[0] == 0
    ((command, headers),) = sent.sent
    assert headers == {"authorization": f"Bearer {raw}"} and command["actor"] == "per"


def test_send_without_a_token_sends_no_header(sent: RecordingClient) -> None:
    assert run_send()[0] == 0
    ((command, headers),) = sent.sent
    assert headers is None and command["actor"] == "cli"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--token", "a.b.c", "--token-file", "x"), "not both"),
        (("--token-file", "/nonexistent/token"), "cannot read the token file"),
        (("--token", " "), "the token is empty"),
    ],
)
def test_send_token_mistakes_exit_2_unsent(
    sent: RecordingClient, args: tuple[str, ...], says: str
) -> None:
    code, output = run_send(*args)
    assert code == 2 and says in output and "Traceback" not in output
    assert sent.sent == []


def _record(headers: list[tuple[str, bytes]]) -> Record:
    return Record(
        topic="t",
        partition=0,
        offset=1,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=headers,
    )


@pytest.mark.parametrize(
    "header",
    [
        {"alg": ["EdDSA"]},  # not a string: a set lookup of it raised TypeError
        {"alg": {}},
        {"alg": "EdDSA", "kid": 5},  # the library's own InvalidTokenError, not a DecodeError
        {"alg": "EdDSA", "crit": ["nope"]},
    ],
    ids=["alg-list", "alg-object", "kid-number", "crit"],
)
def test_a_hostile_token_header_is_forbidden_not_an_error(
    case: tuple[ActorVerifier, PrivateKey], header: dict[str, Any]
) -> None:
    verifier, _ = case
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    hostile = f"Bearer {encoded}.e30.AAAA"
    refusal(verifier, hostile)
    record = _record([("authorization", hostile.encode())])
    command = COMMAND_ADAPTER.validate_python(
        {"type": "DeleteRotation", "command_id": "c", "rotation_id": "r", "actor": "kari"}
    )
    verified, refused = verify_commands(verifier, [(record, command)])
    assert verified == [] and len(refused) == 1


def test_a_capitalised_header_is_read_and_redacted(
    case: tuple[ActorVerifier, PrivateKey],
) -> None:
    _, key = case
    good = f"Bearer {token(key)}".encode()
    record = _record([("Authorization", good), ("x-copy", good)])
    assert header_value(record) == good.decode()
    assert without_token(record).headers == [
        ("Authorization", b"[redacted]"),
        ("x-copy", b"[redacted]"),
    ]


def test_the_clock_skew_is_at_most_five_minutes() -> None:
    for skew in ("inf", "nan", "301"):
        with pytest.raises(ValueError, match="ROTATIONS_ACTOR_CLOCK_SKEW_SECONDS"):
            Settings(ROTATIONS_ACTOR_CLOCK_SKEW_SECONDS=skew)
