"""Kafka TLS and SASL settings reach every Kafka client of the project (built, never connected).

SASL cannot be run against the embedded broker (its own TLS and SASL do not work), so these
check what each client is given; tests/integration/test_tls.py runs TLS for real.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka import KafkaBroker
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from typer.testing import CliRunner

from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.cli import cli
from service.client import RotationsClient
from service.kafka_app import RotationsKafkaApp
from service.kafka_security import (
    KafkaSecurityError,
    SecretTokenProvider,
    broker_options,
    first_server,
    kafka_security,
)
from service.record_sender import BatchSender
from service.settings import Settings
from service.store import store_environment
from service.topics import admin_client

SECURITY_VARIABLES = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
)


@pytest.fixture(autouse=True)
def no_security_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings under test are the ones given here, not the shell's."""
    for name in SECURITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate (the CA) and its key, also used as a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = {"cert": folder / "ca.pem", "key": folder / "ca-key.pem"}
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    encrypted = folder / "encrypted-key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    paths["encrypted_key"] = encrypted
    return paths


def sasl_ssl(pki: dict[str, Path], **extra: Any) -> Settings:
    """SASL_SSL with SCRAM-SHA-512, a CA and a client certificate."""
    values: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SSL_CAFILE": str(pki["cert"]),
        "KAFKA_SSL_CERTFILE": str(pki["cert"]),
        "KAFKA_SSL_KEYFILE": str(pki["key"]),
        **extra,
    }
    return Settings(**values)


def client_attributes(client: Any) -> dict[str, Any]:
    """What an aiokafka client (its AIOKafkaClient) connects with."""
    inner = client.client if isinstance(client, AIOKafkaProducer) else client._client
    return {
        "security_protocol": inner._security_protocol,
        "ssl_context": inner._ssl_context,
        "sasl_mechanism": inner._sasl_mechanism,
        "sasl_plain_username": inner._sasl_plain_username,
        "sasl_plain_password": inner._sasl_plain_password,
    }


def assert_sasl_ssl(attributes: dict[str, Any]) -> None:
    assert attributes["security_protocol"] == "SASL_SSL"
    assert isinstance(attributes["ssl_context"], ssl.SSLContext)
    assert attributes["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert attributes["ssl_context"].check_hostname is True
    assert attributes["sasl_mechanism"] == "SCRAM-SHA-512"
    assert attributes["sasl_plain_username"] == "svc"
    assert attributes["sasl_plain_password"] == "s3cret"


def assert_broker_sasl_ssl(broker: KafkaBroker) -> None:
    """The faststream broker's producer and consumers both get the settings."""
    producer_options: dict[str, Any] = dict(broker._connection_kwargs)
    assert_sasl_ssl(producer_options)
    builder = broker.config.broker_config.builder
    assert isinstance(builder, functools.partial)
    consumer_options: dict[str, Any] = dict(builder.keywords)
    assert_sasl_ssl(consumer_options)
    assert isinstance(broker.specification.security, SASLScram512)


@pytest.fixture
def memory_app() -> Iterator[RotationsApplication]:
    app = RotationsApplication(env=store_environment("sqlite:///:memory:"))
    yield app
    app.close()


# -- every client --------------------------------------------------------------------------


async def test_service_broker_and_batch_sender(
    pki: dict[str, Path], memory_app: RotationsApplication
) -> None:
    projector = RotationProjector(memory_app, open_view(memory_app))
    service = RotationsKafkaApp(sasl_ssl(pki), memory_app, projector, "unit")
    assert_broker_sasl_ssl(service.broker)
    assert isinstance(service.sender, BatchSender)
    assert_sasl_ssl(client_attributes(service.sender.producer))
    await service.sender.stop()  # never started: only closed


async def test_service_consumers_are_built_with_the_settings(
    pki: dict[str, Path], memory_app: RotationsApplication
) -> None:
    """The consumers faststream builds for the subscribers, from its builder."""
    projector = RotationProjector(memory_app, open_view(memory_app))
    service = RotationsKafkaApp(sasl_ssl(pki), memory_app, projector, "unit")
    consumer = service.broker.config.broker_config.builder(group_id="g")
    assert isinstance(consumer, AIOKafkaConsumer)
    assert_sasl_ssl(client_attributes(consumer))
    await consumer.stop()
    assert isinstance(service.sender, BatchSender)
    await service.sender.stop()


async def test_admin_client(pki: dict[str, Path]) -> None:
    admin = admin_client(sasl_ssl(pki))
    assert_sasl_ssl(client_attributes(admin))
    assert admin._client._bootstrap_servers == "kafka.example:9093"


async def test_admin_client_from_an_address_takes_the_environment(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that passes only the address (kafka_positions, runtime) gets the process's
    own settings: the environment the service was started with."""
    for name, value in sasl_ssl(pki).model_dump(by_alias=True).items():
        if name.startswith("KAFKA_") and value is not None:
            monkeypatch.setenv(name, str(value))
    admin = admin_client("other:9093")
    assert_sasl_ssl(client_attributes(admin))
    assert admin._client._bootstrap_servers == "other:9093"


async def test_cli_request_reply_client(pki: dict[str, Path]) -> None:
    """`rotations send`, `suggest` and `directory` all talk through RotationsClient."""
    client = RotationsClient(sasl_ssl(pki))
    assert_broker_sasl_ssl(client.broker)


async def test_plaintext_builds_every_client_as_before(memory_app: RotationsApplication) -> None:
    settings = Settings()
    assert broker_options(settings) == {"security": None, "sasl_oauth_token_provider": None}
    assert kafka_security(settings).client_options() == {}
    projector = RotationProjector(memory_app, open_view(memory_app))
    service = RotationsKafkaApp(settings, memory_app, projector, "unit")
    assert "security_protocol" not in service.broker._connection_kwargs
    assert service.broker.specification.security is None
    assert isinstance(service.sender, BatchSender)
    assert client_attributes(service.sender.producer)["security_protocol"] == "PLAINTEXT"
    await service.sender.stop()
    assert client_attributes(admin_client(settings))["security_protocol"] == "PLAINTEXT"


# -- each protocol and mechanism -----------------------------------------------------------


def test_ssl_without_sasl(pki: dict[str, Path]) -> None:
    security = kafka_security(
        Settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(pki["cert"]))
    )
    options = security.client_options()
    assert options.keys() == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    faststream = security.faststream_security()
    assert type(faststream) is BaseSecurity
    assert faststream.use_ssl and faststream.ssl_context is options["ssl_context"]


def test_ssl_without_a_ca_file_trusts_the_system_cas() -> None:
    security = kafka_security(Settings(KAFKA_SECURITY_PROTOCOL="SSL"))
    assert security.ssl_context is not None
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("mechanism", "kind"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_plaintext_mechanisms(mechanism: str, kind: type[BaseSecurity]) -> None:
    settings = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM=mechanism,
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD="p",
    )
    security = kafka_security(settings)
    assert security.client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
    }
    faststream = security.faststream_security()
    assert type(faststream) is kind and not faststream.use_ssl
    # faststream turns its object back into the same aiokafka arguments
    broker = KafkaBroker("k:9092", **broker_options(settings))
    assert broker._connection_kwargs["sasl_mechanism"] == mechanism
    assert broker._connection_kwargs["security_protocol"] == "SASL_PLAINTEXT"
    assert broker._connection_kwargs["sasl_plain_password"] == "p"


def test_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    settings = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD_FILE=str(secret),
    )
    assert kafka_security(settings).password == "from-file"
    given = settings.model_copy(update={"kafka_sasl_password": "given"})
    assert kafka_security(given).password == "given"  # the variable wins over the file


def test_the_password_is_not_in_the_repr() -> None:
    settings = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD="hunter2",
    )
    assert "hunter2" not in repr(kafka_security(settings))


async def test_oauthbearer_token_from_a_file_read_at_each_connection(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    settings = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="OAUTHBEARER",
        KAFKA_SASL_PASSWORD_FILE=str(token),
    )
    security = kafka_security(settings)
    options = security.client_options()
    provider = options["sasl_oauth_token_provider"]
    assert isinstance(provider, SecretTokenProvider)
    assert options["sasl_mechanism"] == "OAUTHBEARER"
    assert await provider.token() == "first"
    token.write_text("rotated")
    assert await provider.token() == "rotated"
    broker = KafkaBroker("k:9092", **broker_options(settings))
    assert isinstance(broker.specification.security, SASLOAuthBearer)
    assert broker._connection_kwargs["sasl_oauth_token_provider"] is not None
    assert broker._connection_kwargs["sasl_mechanism"] == "OAUTHBEARER"


async def test_oauthbearer_token_from_the_password() -> None:
    settings = Settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="OAUTHBEARER",
        KAFKA_SASL_PASSWORD="tok",
    )
    provider = kafka_security(settings).token_provider
    assert provider is not None
    assert await provider.token() == "tok"


# -- one clear error at start --------------------------------------------------------------


def refused(**values: Any) -> str:
    with pytest.raises(KafkaSecurityError) as raised:
        kafka_security(Settings(**values))
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_missing_files_are_named(tmp_path: Path, pki: dict[str, Path]) -> None:
    gone = str(tmp_path / "gone.pem")
    assert refused(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=gone) == (
        f"KAFKA_SSL_CAFILE={gone}: cannot read it: No such file or directory"
    )
    assert f"KAFKA_SSL_CERTFILE={gone}" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERTFILE=gone
    )
    assert f"KAFKA_SSL_KEYFILE={gone}" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CERTFILE=str(pki["cert"]),
        KAFKA_SSL_KEYFILE=gone,
    )
    assert f"KAFKA_SASL_PASSWORD_FILE={gone}: cannot read it" in refused(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD_FILE=gone,
    )


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    """A directory where the file should be (a mode would not stop root, as in CI)."""
    assert (
        refused(
            KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
            KAFKA_SASL_USERNAME="u",
            KAFKA_SASL_PASSWORD_FILE=str(tmp_path),
        )
        == f"KAFKA_SASL_PASSWORD_FILE={tmp_path}: cannot read it: Is a directory"
    )
    assert refused(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(tmp_path)) == (
        f"KAFKA_SSL_CAFILE={tmp_path}: cannot read it: Is a directory"
    )


def test_unusable_files(tmp_path: Path, pki: dict[str, Path]) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "not a PEM CA certificate" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(junk)
    )
    assert "not a PEM certificate and its key" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CERTFILE=str(junk)
    )
    assert "is encrypted" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CERTFILE=str(pki["cert"]),
        KAFKA_SSL_KEYFILE=str(pki["encrypted_key"]),
    )
    assert "the file is empty" in refused(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD_FILE=str(empty),
    )
    assert "without KAFKA_SSL_CERTFILE" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_KEYFILE=str(pki["key"])
    )


def test_missing_credentials() -> None:
    assert "KAFKA_SASL_USERNAME is required" in refused(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_PASSWORD="p"
    )
    assert "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE is required" in refused(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="u"
    )
    assert "neither is set" in refused(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="OAUTHBEARER"
    )


def test_settings_the_protocol_would_ignore(pki: dict[str, Path]) -> None:
    """A CA with PLAINTEXT, or a password without SASL, would connect without them."""
    assert "uses no TLS" in refused(KAFKA_SSL_CAFILE=str(pki["cert"]))
    assert "uses no SASL" in refused(
        KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p"
    )


def test_first_server() -> None:
    assert first_server("a:9093,b:9094") == ("a", 9093)
    assert first_server("kafka") == ("kafka", 9092)
    assert first_server("[::1]:9093") == ("::1", 9093)


# -- the command line: one line, exit 2 ----------------------------------------------------


@pytest.mark.parametrize("command", [["suggest", "r1"], ["send", "DeleteRotation"]])
def test_cli_says_one_line_and_exits_2(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(tmp_path / "gone.pem"))
    monkeypatch.setenv("ROTATIONS_STORE", f"sqlite:///{tmp_path}/s.sqlite")
    args = [*command, "--rotation-id", "r1"] if command[0] == "send" else command
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        f"error: KAFKA_SSL_CAFILE={tmp_path / 'gone.pem'}: cannot read it: "
        "No such file or directory"
    ], result.output
