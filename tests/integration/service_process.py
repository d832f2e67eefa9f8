"""The real service as a child process, the way operators run it (`rotations serve`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from service.client import RotationsClient
from service.embedded_broker import free_port
from service.settings import Settings
from tests.environment import without_password
from tests.integration.log_check import LogReader, Record, records, report, unexpected


class ServiceProcess:
    """Starts, stops, kills and restarts `rotations serve` on a fixed store and topic prefix."""

    # Every one made this session, so the log check after each test reads them all; never
    # pruned, since a stopped one can be started again (and there are only a few dozen).
    instances: ClassVar[list[ServiceProcess]] = []

    def __init__(
        self,
        bootstrap_servers: str,
        store_url: str,
        log_dir: Path,
        directory: str = "open",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "ROTATIONS_STORE": store_url,
            "ROTATIONS_TOPIC_PREFIX": f"it{run}.",
            "ROTATIONS_GROUP_ID": f"rotations-it{run}",
            "ROTATIONS_HTTP_PORT": str(free_port()),  # health and metrics; kept on restarts
            "ROTATIONS_DIRECTORY": directory,
            **(extra_env or {}),
        }
        self.log_path = log_dir / f"service-{run}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_reader = LogReader(self.log_path)
        ServiceProcess.instances.append(self)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ROTATIONS_HTTP_PORT']}"

    @property
    def settings(self) -> Settings:
        return Settings(
            KAFKA_BOOTSTRAP_SERVERS=self.env["KAFKA_BOOTSTRAP_SERVERS"],
            ROTATIONS_TOPIC_PREFIX=self.env["ROTATIONS_TOPIC_PREFIX"],
            ROTATIONS_STORE=self.env["ROTATIONS_STORE"],
            ROTATIONS_GROUP_ID=self.env["ROTATIONS_GROUP_ID"],
        )

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.starts += 1

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def describe_log(self) -> str:
        return f"{self.log_path} (ROTATIONS_STORE={without_password(self.env['ROTATIONS_STORE'])})"

    def new_log_records(self) -> list[Record]:
        """What it logged since the last call: the log check's cursor into its log."""
        first, lines = self.log_reader.read_new()
        return list(records(lines, first))

    def check_shutdown_log(self) -> None:
        """A session service's last lines (its shutdown) come after every test's check: they
        are checked here, with nothing expected."""
        if bad := unexpected(self.new_log_records(), []):
            pytest.fail(report({self.describe_log(): bad}, "while shutting down"), pytrace=False)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    async def wait_ready(self, client: RotationsClient, timeout: float = 120) -> None:
        """Ready when both consumer groups answer (group joins take seconds here)."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"service exited {self.process.returncode}:\n{self.log_tail()}")
        try:
            await client.suggest(f"ready-{uuid.uuid4().hex}", timeout=timeout)
            await client.command(
                {
                    "type": "DeleteRotation",
                    "command_id": uuid.uuid4().hex,
                    "rotation_id": f"ready-{uuid.uuid4().hex}",
                    "actor": "tests",
                },
                timeout=timeout,
            )
        except TimeoutError:
            raise RuntimeError(f"service not ready after {timeout}s:\n{self.log_tail()}") from None
