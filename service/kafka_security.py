"""Kafka TLS and SASL from the settings: the one place every Kafka client of the project gets
them (the service's broker and batch producer, its admin client, the CLI's request/reply
client).

- `kafka_security(settings)` reads and checks the files once, at start: a missing or
  unusable file, or a credential the protocol needs and lacks, is a `KafkaSecurityError`
  with one line naming the setting.
- `KafkaSecurity.broker_options()` is faststream's `security=` (and the OAUTHBEARER token
  provider) for `KafkaBroker(...)`; `KafkaSecurity.client_options()` the keyword arguments
  of a raw aiokafka client. Both are empty for PLAINTEXT, so a plaintext client is built
  exactly as before.
- `KafkaSecurity.tls_failure(bootstrap)` says why a TLS broker could not be bootstrapped
  (aiokafka only logs the cause and raises "Unable to bootstrap").

OAUTHBEARER: aiokafka needs a token provider. The token is KAFKA_SASL_PASSWORD, or the
content of KAFKA_SASL_PASSWORD_FILE, read again at every connection, so a token that an
orchestrator rotates in place is picked up; KAFKA_SASL_USERNAME is not used.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from service.settings import Settings

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROBE_SECONDS = 5.0


class KafkaSecurityError(RuntimeError):
    """The Kafka security settings cannot be used, or the broker's TLS is refused: one line
    (the CLI prints it and exits with 2)."""


class BrokerOptions(TypedDict):
    """`KafkaBroker(..., **options)`: both None for PLAINTEXT (faststream's defaults)."""

    security: BaseSecurity | None
    sasl_oauth_token_provider: AbstractTokenProvider | None


class SecretTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """An OAUTHBEARER token: a fixed one, or a file's content read at every connection."""

    def __init__(self, token: str | None = None, path: str | None = None) -> None:
        self._token = token
        self.path = path

    async def token(self) -> str:
        if self._token is not None:
            return self._token
        assert self.path is not None
        return await asyncio.to_thread(read_secret, self.path, "KAFKA_SASL_PASSWORD_FILE")

    def __repr__(self) -> str:
        return f"SecretTokenProvider(path={self.path!r})"


@dataclass(frozen=True)
class KafkaSecurity:
    """What the settings say about how to talk to the brokers, files already read."""

    protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    cafile: str | None = None  # only to name it in errors
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token_provider: AbstractTokenProvider | None = None

    @property
    def uses_tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    def faststream_security(self) -> BaseSecurity | None:
        """faststream's security object (it also documents the servers' security)."""
        if self.protocol == "PLAINTEXT":
            return None
        if self.protocol == "SSL":
            return BaseSecurity(ssl_context=self.ssl_context, use_ssl=True)
        use_ssl = self.protocol == "SASL_SSL"
        if self.mechanism == "OAUTHBEARER":
            return SASLOAuthBearer(ssl_context=self.ssl_context, use_ssl=use_ssl)
        assert self.username is not None and self.password is not None
        credentials = (self.username, self.password)
        if self.mechanism == "SCRAM-SHA-256":
            return SASLScram256(*credentials, ssl_context=self.ssl_context, use_ssl=use_ssl)
        if self.mechanism == "SCRAM-SHA-512":
            return SASLScram512(*credentials, ssl_context=self.ssl_context, use_ssl=use_ssl)
        return SASLPlaintext(*credentials, ssl_context=self.ssl_context, use_ssl=use_ssl)

    def broker_options(self) -> BrokerOptions:
        return BrokerOptions(
            security=self.faststream_security(), sasl_oauth_token_provider=self.token_provider
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.protocol in SASL_PROTOCOLS:
            options["sasl_mechanism"] = self.mechanism
            if self.mechanism == "OAUTHBEARER":
                options["sasl_oauth_token_provider"] = self.token_provider
            else:
                options["sasl_plain_username"] = self.username
                options["sasl_plain_password"] = self.password
        return options

    async def tls_failure(self, bootstrap_servers: str) -> KafkaSecurityError | None:
        """Why a TLS handshake with the first bootstrap server fails, if it does; None when
        it succeeds, the protocol has no TLS, or nothing answers (not a TLS matter)."""
        if not self.uses_tls or self.ssl_context is None:
            return None
        try:
            host, port = first_server(bootstrap_servers)
        except ValueError:
            return None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.ssl_context, server_hostname=host),
                TLS_PROBE_SECONDS,
            )
        except ssl.SSLCertVerificationError as error:
            trusted = f"KAFKA_SSL_CAFILE={self.cafile}" if self.cafile else "the system's CAs"
            return KafkaSecurityError(
                f"the broker at {host}:{port} presented a TLS certificate that is not trusted "
                f"({error.verify_message or error.reason}); trusted: {trusted}"
            )
        except ssl.SSLError as error:
            return KafkaSecurityError(
                f"the TLS handshake with the broker at {host}:{port} failed "
                f"({error.reason or error}): is it a TLS listener "
                f"(KAFKA_SECURITY_PROTOCOL={self.protocol})?"
            )
        except (OSError, TimeoutError):
            return None
        writer.close()
        return None


def kafka_security(settings: Settings) -> KafkaSecurity:
    """The settings' Kafka security, its files read and checked (`KafkaSecurityError`)."""
    protocol = settings.kafka_security_protocol
    tls_files = {
        "KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    credentials = {
        "KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
        "KAFKA_SASL_PASSWORD_FILE": settings.kafka_sasl_password_file,
    }
    # Configured but unused would be a silent plaintext or unauthenticated connection.
    if protocol not in TLS_PROTOCOLS and (named := [n for n, v in tls_files.items() if v]):
        raise KafkaSecurityError(
            f"{', '.join(named)} set, but KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS: "
            "set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL"
        )
    if protocol not in SASL_PROTOCOLS and (named := [n for n, v in credentials.items() if v]):
        raise KafkaSecurityError(
            f"{', '.join(named)} set, but KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL: "
            "set KAFKA_SECURITY_PROTOCOL to SASL_SSL or SASL_PLAINTEXT"
        )
    if protocol == "PLAINTEXT":
        return KafkaSecurity()
    context = _ssl_context(settings) if protocol in TLS_PROTOCOLS else None
    if protocol not in SASL_PROTOCOLS:
        return KafkaSecurity(protocol, context, settings.kafka_ssl_cafile)
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "OAUTHBEARER":
        return KafkaSecurity(
            protocol,
            context,
            settings.kafka_ssl_cafile,
            mechanism,
            token_provider=_token_provider(settings),
        )
    if not settings.kafka_sasl_username:
        raise KafkaSecurityError(
            f"KAFKA_SASL_USERNAME is required for KAFKA_SASL_MECHANISM={mechanism} "
            f"(KAFKA_SECURITY_PROTOCOL={protocol})"
        )
    return KafkaSecurity(
        protocol,
        context,
        settings.kafka_ssl_cafile,
        mechanism,
        settings.kafka_sasl_username,
        _password(settings, mechanism),
    )


def broker_options(settings: Settings) -> BrokerOptions:
    """`KafkaBroker(..., **broker_options(settings))`."""
    return kafka_security(settings).broker_options()


def read_secret(path: str, setting: str) -> str:
    """A mounted secret's content without its final line break; empty is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KafkaSecurityError(f"{setting}={path}: cannot read it: {_reason(error)}") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise KafkaSecurityError(f"{setting}={path}: the file is empty")
    return secret


def first_server(bootstrap_servers: str) -> tuple[str, int]:
    """Host and port of the first of `host:port,...` (`[v6]:port`; the port defaults to 9092)."""
    first = bootstrap_servers.split(",")[0].strip()
    host, colon, port = first.rpartition(":")
    if not colon or "]" in port or (host.count(":") and not host.startswith("[")):
        host, port = first, "9092"
    return host.strip("[]"), int(port)


def _password(settings: Settings, mechanism: str) -> str:
    if settings.kafka_sasl_password:
        return settings.kafka_sasl_password
    if settings.kafka_sasl_password_file:
        return read_secret(settings.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD_FILE")
    raise KafkaSecurityError(
        f"KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE is required for "
        f"KAFKA_SASL_MECHANISM={mechanism}"
    )


def _token_provider(settings: Settings) -> SecretTokenProvider:
    if settings.kafka_sasl_password:
        return SecretTokenProvider(token=settings.kafka_sasl_password)
    if settings.kafka_sasl_password_file:
        read_secret(settings.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD_FILE")  # at start
        return SecretTokenProvider(path=settings.kafka_sasl_password_file)
    raise KafkaSecurityError(
        "KAFKA_SASL_MECHANISM=OAUTHBEARER takes its token from KAFKA_SASL_PASSWORD or "
        "KAFKA_SASL_PASSWORD_FILE: neither is set"
    )


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """CA verification and host name checks always (aiokafka's helper); the system's CAs
    without KAFKA_SSL_CAFILE; a client certificate when KAFKA_SSL_CERTFILE is set (its key
    in KAFKA_SSL_KEYFILE, or in the same file)."""
    cafile, certfile, keyfile = (
        settings.kafka_ssl_cafile,
        settings.kafka_ssl_certfile,
        settings.kafka_ssl_keyfile,
    )
    if keyfile and not certfile:
        raise KafkaSecurityError("KAFKA_SSL_KEYFILE set without KAFKA_SSL_CERTFILE")
    for setting, path in (
        ("KAFKA_SSL_CAFILE", cafile),
        ("KAFKA_SSL_CERTFILE", certfile),
        ("KAFKA_SSL_KEYFILE", keyfile),
    ):
        if path:
            _check_readable(setting, path)
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=cafile or None)
    except (ssl.SSLError, ValueError) as error:
        raise KafkaSecurityError(
            f"KAFKA_SSL_CAFILE={cafile}: not a PEM CA certificate: {_reason(error)}"
        ) from None
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile or None, password=_no_passphrase)
        except KafkaSecurityError:
            raise
        except (ssl.SSLError, ValueError) as error:
            key = f", KAFKA_SSL_KEYFILE={keyfile}" if keyfile else ""
            raise KafkaSecurityError(
                f"KAFKA_SSL_CERTFILE={certfile}{key}: not a PEM certificate and its key: "
                f"{_reason(error)}"
            ) from None
    return context


def _no_passphrase() -> str:
    """An encrypted key would make OpenSSL prompt on the terminal: refuse instead."""
    raise KafkaSecurityError(
        "KAFKA_SSL_KEYFILE (or the key in KAFKA_SSL_CERTFILE) is encrypted: there is no "
        "setting for its passphrase; give an unencrypted key (a mounted secret)"
    )


def _check_readable(setting: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise KafkaSecurityError(f"{setting}={path}: cannot read it: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
