"""Health, metrics and the AsyncAPI document over HTTP, from the real service process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.client import RotationsClient
from tests.integration.helpers import book, send
from tests.integration.service_process import ServiceProcess

pytestmark = pytest.mark.integration
session_loop = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(url: str, accept: str | None = None, timeout: float = 10) -> Response:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, answer.headers.get("content-type", ""), answer.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.headers.get("content-type", ""), error.read())


async def get(url: str, accept: str | None = None) -> Response:
    return await asyncio.to_thread(fetch, url, accept)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(service: ServiceProcess) -> Samples:
    response = await get(f"{service.http_url}/metrics")
    assert response.status == 200
    assert response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@session_loop
async def test_live_and_ready(client: RotationsClient, service: ServiceProcess) -> None:
    live = await get(f"{service.http_url}/health/live")
    assert (live.status, live.json()) == (200, {"status": "alive"})

    ready = await get(f"{service.http_url}/health/ready")
    assert ready.status == 200, ready.body
    assert ready.json()["checks"] == {"partitions_assigned": True, "store": "ok"}


@session_loop
async def test_metrics_count_commands_suggestions_and_dead_letters(
    client: RotationsClient, service: ServiceProcess, uid: str
) -> None:
    rotation = f"r-{uid}"
    before = await scrape(service)

    assert (await send(client, "CreateRotation", rotation, name="M", members=["a", "b"]))[
        "status"
    ] == "accepted"
    booked = await book(client, rotation)
    assert booked["status"] == "accepted"
    unknown = await book(client, f"missing-{uid}")
    assert unknown["error"]["code"] == "unknown_rotation"
    garbage = json.loads(
        await client.request_raw(client.settings.commands_topic, b"{not json", key=rotation)
    )
    assert garbage["error"]["code"] == "invalid_message"
    assert (await client.suggest(rotation))["host_id"] == "b"

    after = await scrape(service)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    commands = "rotations_commands_total"
    assert delta(commands, type="CreateRotation", outcome="accepted", code="") == 1
    assert delta(commands, type="BookMeeting", outcome="accepted", code="") == 1
    assert delta(commands, type="BookMeeting", outcome="rejected", code="unknown_rotation") == 1
    assert delta(commands, type="invalid", outcome="rejected", code="invalid_message") == 1
    assert delta("rotations_suggestion_latency_seconds_count", as_of="false") >= 1
    assert delta("rotations_suggestion_latency_seconds_sum", as_of="false") > 0
    assert delta("rotations_dead_letters_total") == 2
    assert value(after, "rotations_partitions_assigned") == 1
    assert value(after, "rotations_store_up") == 1
    position = booked["events"][0]["position"]
    assert value(after, "rotations_store_position") >= position
    assert value(after, "rotations_projection_position") >= position
    lag = value(after, "rotations_projection_lag_events")
    assert lag == value(after, "rotations_store_position") - value(
        after, "rotations_projection_position"
    )
    assert lag >= 0


@session_loop
async def test_asyncapi_document_describes_the_running_topics(
    client: RotationsClient, service: ServiceProcess
) -> None:
    settings = service.settings
    document = await get(f"{service.http_url}/asyncapi.json")
    assert document.status == 200 and document.content_type == "application/json"
    addresses = {channel["address"] for channel in document.json()["channels"].values()}
    assert set(settings.all_topics()) | {"{reply_to}"} == addresses

    negotiated = await get(f"{service.http_url}/asyncapi", accept="application/json")
    assert negotiated.json() == document.json()

    page = await get(f"{service.http_url}/asyncapi", accept="text/html")
    assert page.status == 200 and page.content_type.startswith("text/html")
    # Rendered by the service itself: nothing loaded from the internet, so it works offline.
    assert settings.commands_topic.encode() in page.body and b"<script" not in page.body
    assert b"https://" not in page.body and b'href="/asyncapi.yaml"' in page.body

    as_yaml = await get(f"{service.http_url}/asyncapi.yaml")
    assert yaml.safe_load(as_yaml.body) == document.json()


@session_loop
async def test_the_compose_healthcheck_passes(
    client: RotationsClient, service: ServiceProcess
) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    command = compose["services"]["rotations"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", command[3]],
        env={"ROTATIONS_HTTP_PORT": service.env["ROTATIONS_HTTP_PORT"]},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_ready_only_after_the_partition_assignment(bootstrap_servers: str, data_dir: Path) -> None:
    """A fresh process: live at once, 503 until the group assigns partitions, then 200."""
    store = f"sqlite:///{data_dir}/http-{uuid.uuid4().hex[:8]}.sqlite"
    process = ServiceProcess(bootstrap_servers, store, data_dir)
    process.start()
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.process is not None and process.process.poll() is None, (
                process.log_tail()
            )
            try:
                live = fetch(f"{process.http_url}/health/live", timeout=2)
                ready = fetch(f"{process.http_url}/health/ready", timeout=5)
            except OSError:  # not listening yet
                time.sleep(0.1)
                continue
            assert live.status == 200
            if not seen or seen[-1] != ready.status:
                seen.append(ready.status)
            if ready.status == 200:
                break
            assert ready.json()["status"] in ("starting", "not ready")
            time.sleep(0.1)
        assert seen[-1] == 200, process.log_tail()
        assert seen[0] == 503, "ready before the consumer group assigned partitions"
    finally:
        code = process.stop()
    assert code == 0, process.log_tail()
    with pytest.raises(OSError):
        fetch(f"{process.http_url}/health/live", timeout=2)


def test_a_taken_port_is_one_clear_startup_error(bootstrap_servers: str, data_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = ServiceProcess(bootstrap_servers, f"sqlite:///{data_dir}/taken.sqlite", data_dir)
        process.env["ROTATIONS_HTTP_PORT"] = str(port)
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "serve"],
            env=process.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert f"cannot serve HTTP on port {port}" in done.stderr
    assert "Traceback" not in done.stderr


@session_loop
async def test_readiness_follows_the_service_lifecycle_in_process() -> None:
    """Starting (no service yet), then stopping: both 503, through the ASGI app itself."""
    from service.http import HttpApp
    from service.settings import Settings

    app = HttpApp(Settings.model_construct())

    async def call(path: str) -> tuple[int, Any]:
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send_message(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        await app.asgi(scope, receive, send_message)
        return sent[0]["status"], json.loads(sent[1]["body"])

    assert await call("/health/live") == (200, {"status": "alive"})
    assert await call("/health/ready") == (503, {"status": "starting"})
    app.mark_stopping()
    assert await call("/health/ready") == (503, {"status": "stopping"})
