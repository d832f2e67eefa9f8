"""`rotations dev` and `rotations broker` as a user runs them: stopped by Ctrl-C (SIGINT to the
terminal's whole process group) or SIGTERM, they stop quietly and leave no broker behind; a
second one on a busy port says so in one line before printing anything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.embedded_broker import free_port, port_in_use, wait_for_port
from tests.integration.log_check import is_severe, records

pytestmark = pytest.mark.integration


def environment(tmp_path: Path, http_port: int) -> dict[str, str]:
    """A tmp store and data folder (never the user's own), open directory, free HTTP port."""
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "ROTATIONS_STORE": f"sqlite:///{tmp_path}/dev.sqlite",
        "ROTATIONS_DIRECTORY": "open",
        "ROTATIONS_HTTP_PORT": str(http_port),
        "COLUMNS": "200",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return env


def rotations(*args: str, env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """The CLI in a session of its own: a terminal's Ctrl-C reaches its whole group."""
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"not ready after {timeout}s")


@pytest.fixture
def stop_afterwards() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("sig", ["ctrl-c", "sigterm"])
def test_dev_stops_quietly_consumers_before_the_broker(
    sig: str, tmp_path: Path, stop_afterwards: list[subprocess.Popen[bytes]]
) -> None:
    broker_port, http_port = free_port(), free_port()
    output = tmp_path / "dev.out"
    dev = rotations(
        "dev", "--port", str(broker_port), env=environment(tmp_path, http_port), output=output
    )
    stop_afterwards.append(dev)
    wait_ready(f"http://127.0.0.1:{http_port}", dev)
    broker_pids = children(dev.pid)
    before = output.read_bytes()

    if sig == "ctrl-c":
        os.killpg(dev.pid, signal.SIGINT)  # what a terminal does
    else:
        dev.send_signal(signal.SIGTERM)  # right after the command consumer's assignment
    code = dev.wait(60)

    text = output.read_text(errors="replace")
    started, after = text[: len(before)], text[len(before) :].splitlines()
    assert f"no store at {tmp_path / 'dev.sqlite'}; starting an empty one" in started
    bad = [r for r in records(after) if is_severe(r) or "Unclosed" in r.text]
    assert bad == [], "\n".join(map(str, bad))
    assert after and "service stopped" in after[-1], after[-5:]
    assert code == 0
    assert not port_in_use("127.0.0.1", broker_port)
    assert broker_pids and all(gone(pid) for pid in broker_pids)


def test_a_second_dev_fails_on_the_busy_broker_port_before_printing(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "dev", "--port", str(port)],
            env=environment(tmp_path, free_port()),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port} (the broker's port, --port) is already in use: is another "
        "`rotations dev` or `rotations broker` running?"
    ]
    assert not (tmp_path / "dev.sqlite").exists()


def test_a_second_dev_fails_on_the_busy_http_port_before_starting_a_broker(
    tmp_path: Path,
) -> None:
    broker_port = free_port()
    with socket.create_server(("127.0.0.1", 0)) as busy:
        http_port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "dev", "--port", str(broker_port)],
            env=environment(tmp_path, http_port),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{http_port} (the HTTP port" in lines[0]
    assert not port_in_use("127.0.0.1", broker_port)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_broker_command_stops_its_broker(
    sig: signal.Signals, tmp_path: Path, stop_afterwards: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    output = tmp_path / "broker.out"
    command = rotations("broker", "--port", str(port), env=environment(tmp_path, 0), output=output)
    stop_afterwards.append(command)
    wait_for_port("127.0.0.1", port)
    tansu = children(command.pid)
    assert len(tansu) == 1

    command.send_signal(sig)
    code = command.wait(30)

    assert code == 0, output.read_text()
    assert gone(tansu[0])
    assert not port_in_use("127.0.0.1", port)
    assert "Traceback" not in output.read_text()


def test_a_second_broker_fails_on_the_busy_port(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "broker", "--port", str(port)],
            env=environment(tmp_path, 0),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "already in use" in result.stderr
