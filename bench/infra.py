"""What the benchmark runs on: stores, the service as a child process, process statistics."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console

from service.client import RotationsClient
from service.embedded_broker import free_port
from service.settings import Settings
from service.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
StoreKind = Literal["sqlite", "postgresql"]
T = TypeVar("T")

_err = Console(stderr=True, highlight=False)
_started = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, so stdout carries only the results table."""
    _err.print(f"[dim]{time.monotonic() - _started:7.1f}s[/dim] {message}")


def child_env() -> dict[str, str]:
    """Children import `bench` from the project root, wherever the benchmark was started."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def postgres_base_url() -> str:
    return os.environ.get("ROTATIONS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


# -- stores ------------------------------------------------------------------------------


@dataclass
class BenchStore:
    """A fresh event store: an SQLite file in the work directory or a PostgreSQL schema."""

    kind: StoreKind
    url: str
    path: Path | None = None
    schema: str | None = None

    @classmethod
    def create(cls, kind: StoreKind, workdir: Path, label: str) -> BenchStore:
        if kind == "sqlite":
            path = workdir / f"{label}.sqlite"
            return cls(kind, f"sqlite:///{path}", path=path)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        return cls(kind, f"{postgres_base_url()}?schema={schema}", schema=schema)

    def sibling(self, workdir: Path, label: str) -> str:
        """A store URL for a baseline application next to this store.

        PostgreSQL: the same schema (the library names tables after the application);
        SQLite: another file in the same directory (the library's table name is fixed).
        """
        if self.kind == "sqlite":
            return f"sqlite:///{workdir / f'{label}.sqlite'}"
        return self.url

    def drop_view(self, table: str) -> None:
        """Drop a read-model table made by `open_view` and its tracking record."""
        if self.kind == "sqlite":
            assert self.path is not None
            with sqlite3.connect(self.path) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.execute("DELETE FROM tracking WHERE application_name = ?", (table,))
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(postgres_base_url(), autocommit=True) as conn:
            for name in (table, f"{table}_tracking"):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                        sql.Identifier(self.schema or "public"), sql.Identifier(name)
                    )
                )

    def state_lengths(self, table: str, keys: list[str]) -> dict[str, int]:
        """The length in bytes of each of these rows' `state` in a view table (read with
        SQL alone: the bench does not depend on how the read model opens its tables)."""
        if self.kind == "sqlite":
            assert self.path is not None
            with sqlite3.connect(self.path) as conn:
                return {
                    key: length
                    for key in keys
                    for (length,) in conn.execute(
                        f"SELECT length(state) FROM {table} WHERE rotation_key = ?", (key,)
                    )
                }
        import psycopg
        from psycopg import sql

        with psycopg.connect(postgres_base_url(), autocommit=True) as conn:
            query = sql.SQL("SELECT octet_length(state) FROM {}.{} WHERE rotation_key = %s")
            statement = query.format(sql.Identifier(self.schema or "public"), sql.Identifier(table))
            return {
                key: int(row[0])
                for key in keys
                for row in conn.execute(statement, (key,)).fetchall()
            }

    def destroy(self) -> None:
        if self.kind == "sqlite":
            assert self.path is not None
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        import psycopg
        from psycopg import sql

        assert self.schema is not None
        with psycopg.connect(postgres_base_url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.schema or "")
                )
            )


def postgres_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(postgres_base_url(), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


# -- process statistics ------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def loadavg() -> float:
    """The machine's 1-minute load average (other work on it shows here)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def test_runs() -> int:
    """How many pytest processes run on the machine now (others' test suites share the
    cores: a figure taken meanwhile says so in the JSON)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:  # it ended meanwhile
            continue
        if any(w == b"pytest" or w.endswith(b"/pytest") for w in words):
            count += 1
    return count


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    versions = {}
    for package in ("eventsourcing", "faststream", "aiokafka", "pydantic", "psycopg"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "versions": versions,
    }


def postgres_version() -> str:
    import psycopg

    with psycopg.connect(postgres_base_url()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


# -- the service -------------------------------------------------------------------------


class ServiceRunner:
    """`python -m service.cli serve` as a child process, with its own topics and groups."""

    def __init__(
        self,
        bootstrap_servers: str,
        store_url: str,
        log_dir: Path,
        label: str,
        fetch_wait_ms: int = 10,
    ) -> None:
        run = f"{label}{uuid.uuid4().hex[:6]}"
        self.label = label
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "ROTATIONS_STORE": store_url,
            "ROTATIONS_TOPIC_PREFIX": f"bench{run}.",
            "ROTATIONS_GROUP_ID": f"rotations-bench{run}",
            "ROTATIONS_FETCH_MAX_WAIT_MS": str(fetch_wait_ms),
            # Health and metrics over HTTP stay on, as in production, on a port of their own.
            "ROTATIONS_HTTP_PORT": str(free_port()),
        }
        self.settings = Settings.model_validate(
            {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "ROTATIONS_STORE": store_url,
                "ROTATIONS_TOPIC_PREFIX": self.env["ROTATIONS_TOPIC_PREFIX"],
                "ROTATIONS_GROUP_ID": self.env["ROTATIONS_GROUP_ID"],
                "ROTATIONS_FETCH_MAX_WAIT_MS": fetch_wait_ms,
            }
        )
        self.log_path = log_dir / f"service-{run}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        """Create the topics first (as the service would), so no request creates them."""
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            self.settings.all_topics(),
            self.settings.partitions,
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        say(f"service {self.label} started, pid {self.process.pid}, log {self.log_path}")

    def client(self, timeout: float = 120.0) -> RotationsClient:
        return RotationsClient(self.settings, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    async def watch(self, work: Awaitable[T], timeout: float, what: str) -> T:
        """Await `work` unless the service dies or the timeout passes first."""
        task = asyncio.ensure_future(work)
        deadline = time.monotonic() + timeout
        assert self.process is not None
        try:
            while not task.done():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    state = (
                        f"exited with {self.process.returncode}"
                        if self.process.poll() is not None
                        else f"gave no answer in {timeout:.0f}s"
                    )
                    raise RuntimeError(f"service {self.label} {state} ({what}):\n{self.log_tail()}")
                await asyncio.wait({task}, timeout=1.0)
        finally:
            if not task.done():
                task.cancel()
        return task.result()

    async def wait_ready(self, client: RotationsClient, timeout: float) -> float:
        """Ready when all three consumer groups answer; returns the seconds it took."""
        started = time.monotonic()
        probe = f"ready-{uuid.uuid4().hex}"
        await self.watch(client.suggest(probe, timeout=timeout), timeout, "suggestion probe")
        reply = await self.watch(
            client.command(
                {
                    "type": "DeleteRotation",
                    "command_id": uuid.uuid4().hex,
                    "rotation_id": probe,
                    "actor": "bench",
                },
                timeout=timeout,
            ),
            timeout,
            "command probe",
        )
        if reply.get("status") not in ("accepted", "rejected"):
            raise RuntimeError(f"unexpected probe reply {json.dumps(reply)}")
        # The directory consumer joins its group last; the events publisher starts after it.
        fact = {
            "type": "UserUpdated",
            "message_id": uuid.uuid4().hex,
            "user_id": "bench-probe",
            "seat": False,
            "calendar_connected": False,
            "calendar_sync": False,
            "permissions": [],
        }
        await self.watch(
            client.request_raw(
                self.settings.directory_topic,
                json.dumps(fact).encode(),
                key="bench-probe",
                timeout=timeout,
            ),
            timeout,
            "directory probe",
        )
        return time.monotonic() - started

    async def wait_quiet(
        self, timeout: float, threshold: float = 0.25, window: float = 2.0, windows: int = 3
    ) -> float:
        """Wait until the service has finished its start-up work; returns the seconds.

        Quiet means: for `windows` windows in a row it used under `threshold` of a core and
        published nothing on its events topic (a service on a fresh topic first publishes
        every stored event there).
        """
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            topic = self.settings.events_topic
            partitions = [TopicPartition(topic, p) for p in range(self.settings.partitions)]

            async def published() -> int:
                return sum((await consumer.end_offsets(partitions)).values())

            calm = 0
            while calm < windows:
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"service {self.label} still busy after {timeout:.0f}s")
                cpu_before, events_before = self.cpu_seconds(), await published()
                await self.watch(asyncio.sleep(window), window + 5, "settling")
                busy = (self.cpu_seconds() - cpu_before) / window >= threshold
                calm = 0 if busy or await published() != events_before else calm + 1
            return time.monotonic() - started
        finally:
            await consumer.stop()

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_child(args: list[str], timeout: float = 3600.0) -> dict[str, Any]:
    """Run `python -m bench.child ...` and return the JSON object it prints last."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.child", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.child {args} failed:\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"bench.child {args} printed no result:\n{result.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


class RawKafkaChild:
    """A raw aiokafka process (`bench.child idle` or `echo`) on the given topics.

    idle: consumers that fetch forever, the baseline of the service's idle CPU; echo: a
    responder answering every request unread, the transport's ceiling for commands.
    """

    def __init__(
        self, bootstrap_servers: str, wait_ms: int, topics: list[str], mode: str = "idle"
    ) -> None:
        self.mode = mode
        self.bootstrap_servers = bootstrap_servers
        self.wait_ms = wait_ms
        self.topics = topics
        self.process: subprocess.Popen[str] | None = None

    async def start(self, partitions: int) -> None:
        await ensure_topics(self.bootstrap_servers, self.topics, partitions)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.child",
                self.mode,
                self.bootstrap_servers,
                str(self.wait_ms),
                str(partitions),
                *self.topics,
            ],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        if line.strip() != "ready":
            raise RuntimeError(f"bench.child {self.mode} did not start: {line!r}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
