"""Signed actors: with `ROTATIONS_ACTOR_TOKENS=required` a command's actor is the `sub` of the
JWT in its `authorization: Bearer <JWT>` Kafka header, signed by the identity provider.

The keys (`ROTATIONS_ACTOR_KEYS`: one or more PEM public keys, or a JWKS file) are read once,
at start; only EdDSA (Ed25519) and RS256 are accepted, each key with its own algorithm only
(no algorithm confusion). Issuer, audience and expiry are required and checked, with
`ROTATIONS_ACTOR_CLOCK_SKEW_SECONDS` of leeway. Every refusal is a domain `Forbidden` whose
message says what was wrong and never repeats the token.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from events.errors import Forbidden

if TYPE_CHECKING:
    from service.contracts import CommandBase
    from service.kafka_positions import Record
    from service.settings import Settings

log = logging.getLogger("rotations.actor_tokens")

HEADER = "authorization"
REDACTED = b"[redacted]"
MIN_RSA_BITS = 2048
PublicKey: TypeAlias = Ed25519PublicKey | RSAPublicKey
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


class ActorKeysError(ValueError):
    """The keys file (or the settings around it) cannot be used: the service must not start."""


@dataclasses.dataclass(frozen=True)
class VerificationKey:
    algorithm: str  # "EdDSA" or "RS256": the only one this key verifies
    key: PublicKey
    kid: str | None = None


def algorithm_of(key: object) -> str | None:
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, RSAPublicKey):
        return "RS256"
    return None


def _checked(key: object, where: str, kid: str | None = None) -> VerificationKey:
    if isinstance(key, Ed25519PrivateKey | RSAPrivateKey):
        raise ActorKeysError(f"{where} is a private key; the service needs only the public key")
    algorithm = algorithm_of(key)
    if algorithm is None:
        raise ActorKeysError(f"{where} is a {type(key).__name__}: only Ed25519 and RSA are taken")
    assert isinstance(key, Ed25519PublicKey | RSAPublicKey)
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ActorKeysError(f"{where} is a {key.key_size}-bit RSA key; {MIN_RSA_BITS} at least")
    return VerificationKey(algorithm, key, kid)


def _pem_keys(data: bytes) -> list[VerificationKey]:
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        raise ActorKeysError("it holds no PEM block and is not a JWKS (JSON) document")
    keys = []
    for number, block in enumerate(blocks, 1):
        kind, where = block.group(1), f"PEM block {number}"
        if b"PRIVATE" in kind:
            raise ActorKeysError(f"{where} is a private key; the service needs only the public key")
        try:
            if kind == b"CERTIFICATE":
                key: object = x509.load_pem_x509_certificate(block.group(0)).public_key()
            else:
                key = load_pem_public_key(block.group(0))
        except ValueError as error:
            raise ActorKeysError(f"{where} is not a public key: {error}") from None
        keys.append(_checked(key, where))
    return keys


def _jwks_keys(data: bytes) -> list[VerificationKey]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ActorKeysError(f"it is not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ActorKeysError('a JWKS is a JSON object with a "keys" list')
    try:
        key_set = jwt.PyJWKSet.from_dict(document)
    except jwt.PyJWTError as error:
        raise ActorKeysError(f"JWKS: {error}") from None
    keys = []
    for jwk in key_set.keys:
        if jwk.public_key_use not in (None, "sig") or jwk.algorithm_name not in ("EdDSA", "RS256"):
            continue  # an encryption key, or another algorithm: never used to verify
        key = jwk.key
        if isinstance(key, Ed25519PrivateKey | RSAPrivateKey):
            key = key.public_key()  # a JWKS that includes private parts: use the public half
        keys.append(_checked(key, f"JWKS key {jwk.key_id or '(no kid)'}", jwk.key_id))
    if not keys:
        raise ActorKeysError("JWKS: no Ed25519 (EdDSA) or RSA (RS256) signing key")
    return keys


def load_keys(path: str | Path) -> list[VerificationKey]:
    """The public keys of a PEM file (one or more blocks) or a JWKS file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ActorKeysError(f"cannot read it: {error.strerror or error}") from None
    if data.lstrip().startswith(b"{"):
        return _jwks_keys(data)
    return _pem_keys(data)


def _bearer(header_value: str | None) -> str:
    if header_value is None or not header_value.strip():
        raise Forbidden(
            f"an actor token is required: the command has no `{HEADER}: Bearer <JWT>` header"
        )
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Forbidden(f"the `{HEADER}` header is not `Bearer <JWT>`")
    return token.strip()


def _when(timestamp: object) -> str:
    if isinstance(timestamp, int | float):
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    return "?"


class ActorVerifier:
    """Checks each command's bearer token: signed by a configured key, from the issuer, for the
    audience, not expired (beyond the clock skew), and its `sub` is the command's actor."""

    def __init__(
        self,
        keys: Sequence[VerificationKey],
        issuer: str,
        audience: str,
        clock_skew_seconds: float = 30.0,
    ) -> None:
        if not keys:
            raise ActorKeysError("no verification key")
        self.keys = tuple(keys)
        self.issuer = issuer
        self.audience = audience
        self.leeway = clock_skew_seconds
        self.algorithms = {key.algorithm for key in self.keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> ActorVerifier:
        """Made once at start; any setting or key that cannot be used is an `ActorKeysError`."""
        missing = [
            name
            for name, value in (
                ("ROTATIONS_ACTOR_KEYS", settings.actor_keys),
                ("ROTATIONS_ACTOR_ISSUER", settings.actor_issuer),
                ("ROTATIONS_ACTOR_AUDIENCE", settings.actor_audience),
            )
            if not value
        ]
        if missing:
            raise ActorKeysError(
                f"ROTATIONS_ACTOR_TOKENS=required needs {' and '.join(missing)} set"
            )
        assert settings.actor_keys and settings.actor_issuer and settings.actor_audience
        try:
            keys = load_keys(settings.actor_keys)
        except ActorKeysError as error:
            raise ActorKeysError(
                f"cannot use the actor keys {settings.actor_keys!r} (ROTATIONS_ACTOR_KEYS): {error}"
            ) from None
        return cls(
            keys,
            settings.actor_issuer,
            settings.actor_audience,
            settings.actor_clock_skew_seconds,
        )

    def _candidates(self, token: str) -> list[VerificationKey]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Forbidden("the actor token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            accepted = " or ".join(sorted(self.algorithms))
            raise Forbidden(
                f"the actor token's algorithm {algorithm!r} is not accepted ({accepted})"
            )
        keys = [key for key in self.keys if key.algorithm == algorithm]
        kid = header.get("kid")
        if kid is not None:
            # The key with that id; keys without an id (PEM) may be tried when none has it.
            keys = [k for k in keys if k.kid == kid] or [k for k in keys if k.kid is None]
            if not keys:
                raise Forbidden(f"the actor token's key id {str(kid)[:80]!r} is not configured")
        return keys

    def claims(self, header_value: str | None) -> dict[str, Any]:
        """The verified claims of the header's token, or `Forbidden` saying why not."""
        token = _bearer(header_value)
        for key in self._candidates(token):
            try:
                return jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.InvalidSignatureError:
                continue  # maybe another configured key signed it
            except jwt.ExpiredSignatureError:
                exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
                raise Forbidden(
                    f"the actor token expired at {_when(exp)} "
                    f"(clock skew allowed: {self.leeway:g}s)"
                ) from None
            except jwt.ImmatureSignatureError:
                raise Forbidden(
                    "the actor token is not valid yet (nbf or iat in the future)"
                ) from None
            except jwt.InvalidIssuerError:
                raise Forbidden(f"the actor token's issuer is not {self.issuer!r}") from None
            except jwt.InvalidAudienceError:
                raise Forbidden(f"the actor token's audience is not {self.audience!r}") from None
            except jwt.MissingRequiredClaimError as error:
                raise Forbidden(f"the actor token has no {error.claim!r} claim") from None
            except jwt.InvalidTokenError as error:
                raise Forbidden(f"the actor token is not valid: {error}") from None
        raise Forbidden("the actor token's signature does not verify with any configured key")

    def verify(self, header_value: str | None, body_actor: str) -> None:
        """`Forbidden` unless the header holds a valid token whose `sub` is `body_actor`."""
        subject = self.claims(header_value).get("sub")
        if not isinstance(subject, str):
            raise Forbidden("the actor token's 'sub' claim is not a string")
        if subject != body_actor:
            raise Forbidden(
                f"actor {body_actor[:200]!r} is not the actor token's subject {subject[:200]!r}"
            )


# -- the command path --------------------------------------------------------------------


def without_token(record: Record) -> Record:
    """The record with its bearer token blanked: dead letters and logs never carry a token."""
    headers = record.headers or ()
    if not any(_is_token(key, value) for key, value in headers):
        return record
    redacted = [(key, REDACTED if _is_token(key, value) else value) for key, value in headers]
    return dataclasses.replace(record, headers=redacted)


def _is_token(key: str, value: bytes | None) -> bool:
    """The authorization header under any capitalisation, or any header holding a bearer."""
    if key.lower() == HEADER:
        return True
    return value is not None and bytes(value)[:7].lower() == b"bearer "


def header_value(record: Record) -> str | None:
    for key, value in record.headers or ():
        if key.lower() == HEADER:  # Kafka header keys are case-sensitive; HTTP habit is not
            return bytes(value).decode("utf-8", "replace") if value is not None else None
    return None


def verify_commands(
    verifier: ActorVerifier, parsed: Sequence[tuple[Record, CommandBase]]
) -> tuple[list[tuple[Record, CommandBase]], list[tuple[Record, CommandBase, Forbidden]]]:
    """Split a batch's parsed commands into the verified and the refused, every record's token
    blanked (a refused command, or one the domain rejects, is dead-lettered with its headers)."""
    verified: list[tuple[Record, CommandBase]] = []
    refused: list[tuple[Record, CommandBase, Forbidden]] = []
    for record, command in parsed:
        try:
            verifier.verify(header_value(record), command.actor)
        except Forbidden as error:
            refused.append((without_token(record), command, error))
        except Exception as error:  # whatever a hostile token trips: refused, never a stop
            log.warning("actor token check failed: %s", type(error).__name__)
            refused.append(
                (without_token(record), command, Forbidden("the actor token is invalid"))
            )
        else:
            verified.append((without_token(record), command))
    return verified, refused


# -- the command line --------------------------------------------------------------------


def bearer_header(token: str) -> str:
    """The header value for a token given with or without its `Bearer ` scheme."""
    token = token.strip()
    scheme, _, rest = token.partition(" ")
    return token if scheme.lower() == "bearer" and rest.strip() else f"Bearer {token}"


def unverified_subject(token: str) -> str | None:
    """The token's `sub`, unverified (the service verifies): the CLI's default actor."""
    scheme, _, rest = token.strip().partition(" ")
    raw = rest.strip() if scheme.lower() == "bearer" and rest.strip() else token.strip()
    try:
        subject = jwt.decode(raw, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    return subject if isinstance(subject, str) and subject else None
