"""The service exits non-zero with one clear line when its store or broker is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.embedded_broker import free_port

pytestmark = pytest.mark.integration


def serve(env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        env={**os.environ, "ROTATIONS_HTTP_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_unreachable_broker(tmp_path: Path) -> None:
    result = serve(
        {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "ROTATIONS_STORE": f"sqlite:///{tmp_path}/s.sqlite",
        }
    )
    assert result.returncode == 2
    assert "cannot reach the Kafka broker" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_store(bootstrap_servers: str) -> None:
    result = serve(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "ROTATIONS_STORE": f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        }
    )
    assert result.returncode == 2
    assert "cannot open the event store" in result.stderr
    assert "Traceback" not in result.stderr
