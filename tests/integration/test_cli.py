"""The README's first command: `rotations dev`, talked to with `rotations send`/`suggest`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.embedded_broker import free_port

pytestmark = pytest.mark.integration


def rotations(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_dev_send_suggest_and_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "ROTATIONS_HTTP_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    env.pop("ROTATIONS_STORE", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # the default store, never the real one
    dev = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert dev.stdout is not None
        first_line = dev.stdout.readline()
        assert f"127.0.0.1:{port}" in first_line, first_line
        created = rotations(
            "send",
            "CreateRotation",
            "--rotation-id",
            "demo",
            "--field",
            "name=Sales",
            "--field",
            "members=kari,ola",
            cwd=tmp_path,
            env=env,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        assert json.loads(created.stdout)["status"] == "accepted"

        booked = rotations(
            "send",
            "BookMeeting",
            "--rotation-id",
            "demo",
            "--field",
            "meeting_id=m1",
            "--field",
            "record=deal:42",
            cwd=tmp_path,
            env=env,
        )
        assert json.loads(booked.stdout)["host_id"] == "kari"

        table = rotations("suggest", "demo", cwd=tmp_path, env=env)
        assert table.returncode == 0, table.stderr
        assert "suggest ola" in table.stdout
        assert "kari" in table.stdout

        refused = rotations(
            "send",
            "AddMember",
            "--rotation-id",
            "demo",
            "--field",
            "user_id=kari",
            cwd=tmp_path,
            env=env,
        )
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["error"]["code"] == "already_member"
        assert (tmp_path / "xdg" / "rotations" / "rotations.sqlite").exists()

        seeded = rotations(
            "directory", "user", "per", "--permission", "manage_rotations", cwd=tmp_path, env=env
        )
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
        team = rotations(
            "directory",
            "team",
            "sales",
            "--member",
            "per",
            "--member",
            "liv",
            cwd=tmp_path,
            env=env,
        )
        assert json.loads(team.stdout)["status"] == "accepted"
        with_team = rotations(
            "send",
            "CreateRotation",
            "--rotation-id",
            "team-demo",
            "--field",
            "name=Team",
            "--field",
            "teams=sales",
            cwd=tmp_path,
            env=env,
        )
        assert json.loads(with_team.stdout)["status"] == "accepted"
        members = rotations("suggest", "team-demo", "--json", cwd=tmp_path, env=env)
        assert {c["user_id"] for c in json.loads(members.stdout)["candidates"]} == {"per", "liv"}
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the broker went down with it: the port is free
        try:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the embedded broker still listens after Ctrl-C")


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = rotations("--help", cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0
    for name in ("serve", "broker", "dev", "send", "suggest"):
        assert name in result.stdout


def test_send_without_service_fails_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    result = rotations("suggest", "x", "--timeout", "3", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
