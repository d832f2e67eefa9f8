"""`rotations simulate` and `rotations preview` on what the session service stored through the
real broker, on SQLite and on PostgreSQL: the commands read the store alone (no broker)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.client import RotationsClient
from tests.integration.service_process import ServiceProcess
from tests.integration.store_check import open_store
from tests.integration.test_lifecycle import booking
from tests.integration.test_rule_v2 import create

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def rotations(service: ServiceProcess, *args: str) -> Any:
    """One read command on the service's store; its JSON output (it must exit with 0)."""
    env = {**service.env, "COLUMNS": "200"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def head(service: ServiceProcess) -> int:
    app = open_store(service.env["ROTATIONS_STORE"])
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


async def test_simulate_a_weight_change_of_bookings_made_through_the_broker(
    client: RotationsClient, service: ServiceProcess, uid: str, tmp_path: Path
) -> None:
    rotation = f"sim-{uid}"
    await create(client, rotation, ["kari", "ola", "per"])
    hosts = [(await booking(client, rotation, f"m{i}"))["host_id"] for i in range(6)]
    assert hosts == ["kari", "ola", "per"] * 2
    what_if = tmp_path / "what-if.json"
    what_if.write_text(json.dumps({"members": {"kari": {"weight": 200}}}), encoding="utf-8")

    result = await rotations(service, "simulate", rotation, "--policy", str(what_if), "--json")

    # kari at 200: kari, ola, per, kari, kari, then ola (assigned longer ago than per).
    assert result == {
        "rotation_id": rotation,
        "bookings": 6,
        "members": [
            {"user_id": "kari", "actual": 2, "simulated": 3},
            {"user_id": "ola", "actual": 2, "simulated": 2},
            {"user_id": "per", "actual": 2, "simulated": 1},
        ],
        "fairness": {
            "actual": {"meetings": 6, "spread": 0, "deviation": 0.0},
            "simulated": {"meetings": 6, "spread": 2, "deviation": 0.166667},
        },
        "changed": ["m4", "m5"],
    }
    own = tmp_path / "own.json"
    own.write_text("{}", encoding="utf-8")
    same = await rotations(service, "simulate", rotation, "--policy", str(own), "--json")
    assert same["changed"] == []
    assert all(m["actual"] == m["simulated"] for m in same["members"])


async def test_preview_the_next_hosts_stores_nothing(
    client: RotationsClient, service: ServiceProcess, uid: str
) -> None:
    rotation = f"preview-{uid}"
    await create(client, rotation, ["kari", "ola", "per"])
    await booking(client, rotation, "m1")  # kari
    before = head(service)

    found = await rotations(service, "preview", rotation, "--next", "3", "--json")

    assert [b["host_id"] for b in found["next"]] == ["ola", "per", "kari"]
    assert head(service) == before
    assert (await booking(client, rotation, "m2"))["host_id"] == "ola"  # as previewed
