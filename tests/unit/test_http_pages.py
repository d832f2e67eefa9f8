"""The HTTP app's AsyncAPI routes through ASGI (no server, no broker), and where it binds."""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from faststream.kafka import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families

from projections.rotation_view import RotationProjector, open_view
from service import contracts as c
from service.application import RotationsApplication
from service.asyncapi import build_asyncapi
from service.embedded_broker import free_port
from service.http import (
    FairnessGauge,
    HttpApp,
    MetricsObserver,
    ServiceMetrics,
    asyncapi_html,
    start_http,
)
from service.kafka_app import RotationsKafkaApp
from service.settings import Settings
from service.store import store_environment
from tests.unit.commands import book, ok


async def call(app: HttpApp, path: str, accept: str | None = None) -> tuple[int, str, bytes]:
    """One GET through the app's ASGI interface: status, content type, body."""
    headers = [(b"accept", accept.encode())] if accept else []
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app.asgi(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content_type = dict(start["headers"]).get(b"content-type", b"").decode()
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], content_type, body


class _Resources(HTMLParser):
    """Every script, stylesheet link, image or frame a page would load, and its anchors."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.ids: set[str] = set()
        self.links: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img", "iframe", "link"):
            self.loads.append(f"{tag} {values}")
        if values.get("id"):
            self.ids.add(str(values["id"]))
        href = values.get("href") or ""
        if href.startswith("#"):
            self.links.add(href[1:])


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    found: dict[str, Any] = build_asyncapi(None).to_jsonable()
    return found


async def test_the_page_works_offline_and_shows_every_channel_and_message(
    document: dict[str, Any],
) -> None:
    status, content_type, body = await call(HttpApp(Settings()), "/asyncapi", "text/html")

    assert status == 200 and content_type.startswith("text/html")
    page = body.decode()
    parsed = _Resources()
    parsed.feed(page)
    assert parsed.loads == []  # no script, stylesheet or image from anywhere
    assert not re.search(r"https?://", page)
    for channel in document["channels"].values():
        assert f"<code>{channel['address']}</code>" in page
    for message in document["components"]["messages"].values():
        assert message["title"] in page
    for name in document["components"]["schemas"]:
        assert f"schema-{name}" in parsed.ids
    assert parsed.links <= parsed.ids  # every in-page link lands on something
    assert "the service receives" in page and "the service sends" in page
    assert 'href="/asyncapi.yaml"' in page and 'href="/asyncapi.json"' in page


async def test_the_document_is_served_as_json_and_yaml(document: dict[str, Any]) -> None:
    app = HttpApp(Settings())

    as_json = await call(app, "/asyncapi.json")
    as_yaml = await call(app, "/asyncapi.yaml")
    negotiated = await call(app, "/asyncapi", "application/json")

    assert as_json[:2] == (200, "application/json")
    assert json.loads(as_json[2]) == document
    assert as_yaml[0] == 200 and as_yaml[1].startswith("application/yaml")
    assert yaml.safe_load(as_yaml[2]) == document
    assert json.loads(negotiated[2]) == document


def test_the_page_escapes_what_the_document_says() -> None:
    page = asyncapi_html(
        {
            "info": {"title": "<b>T</b>", "description": "a & b"},
            "operations": {"x": {"action": "send", "channel": {"address": "<x>"}}},
        }
    )

    assert "<b>T</b>" not in page and "&lt;b&gt;T&lt;/b&gt;" in page and "a &amp; b" in page


async def test_http_listens_on_this_machine_only_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROTATIONS_HTTP_HOST", raising=False)
    monkeypatch.setenv("ROTATIONS_HTTP_PORT", str(free_port()))
    local = await start_http(Settings())
    monkeypatch.setenv("ROTATIONS_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("ROTATIONS_HTTP_PORT", str(free_port()))
    everywhere = await start_http(Settings())
    try:
        assert local is not None and everywhere is not None
        assert local.socket.getsockname()[0] == "127.0.0.1"
        assert everywhere.socket.getsockname()[0] == "0.0.0.0"
    finally:
        for server in (local, everywhere):
            if server is not None:
                await server.stop()


# -- the fairness gauge --------------------------------------------------------------------


def answered(rotation_id: str, deviation: float = 0.25) -> c.SuggestionReply:
    return c.SuggestionReply(
        rotation_id=rotation_id,
        host_id="kari",
        reason="fewest_meetings",
        position=1,
        fairness=c.Fairness(meetings=4, spread=1, deviation=deviation),
    )


def fairness_series(metrics: ServiceMetrics) -> dict[str, float]:
    """The gauge's series in the exposition text, by rotation id."""
    text = metrics.render().decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == FairnessGauge.NAME]
    return {s.labels["rotation_id"]: s.value for s in family.samples}


def tell(metrics: ServiceMetrics, request: c.SuggestHost, reply: c.SuggestionReply) -> None:
    MetricsObserver(metrics, "rotations.commands").suggestion_answered(request, 0.001, reply)


def test_the_gauge_keeps_the_most_recently_answered_rotations() -> None:
    metrics = ServiceMetrics(fairness_rotations=3)
    for i in range(10):
        rotation = f"r{i}"
        tell(metrics, c.SuggestHost(rotation_id=rotation), answered(rotation, i / 10))
        assert len(fairness_series(metrics)) <= 3

    tell(metrics, c.SuggestHost(rotation_id="r7"), answered("r7", 0.5))  # answered again

    assert fairness_series(metrics) == {"r8": 0.8, "r9": 0.9, "r7": 0.5}
    assert metrics.fairness.rotations() == ["r8", "r9", "r7"]
    tell(metrics, c.SuggestHost(rotation_id="r10"), answered("r10"))
    assert set(fairness_series(metrics)) == {"r9", "r7", "r10"}  # r8 evicted, series gone


def test_the_gauge_says_its_bound_and_ignores_answers_about_the_past() -> None:
    metrics = ServiceMetrics(fairness_rotations=5)
    past = c.SuggestHost(rotation_id="r1", as_of=datetime(2026, 1, 1, tzinfo=UTC))

    tell(metrics, past, answered("r1"))

    assert fairness_series(metrics) == {}
    assert "At most 5 rotations, the most recently answered" in metrics.render().decode()


def test_an_unknown_or_deleted_rotation_leaves_the_gauge() -> None:
    metrics = ServiceMetrics()
    tell(metrics, c.SuggestHost(rotation_id="r1"), answered("r1"))
    tell(metrics, c.SuggestHost(rotation_id="r2"), answered("r2"))
    gone = c.SuggestionReply(
        rotation_id="r1", error=c.ErrorBody(code="rotation_deleted", message="deleted")
    )

    tell(metrics, c.SuggestHost(rotation_id="r1"), gone)

    assert fairness_series(metrics) == {"r2": 0.25}


def test_the_bound_is_a_setting_and_0_turns_the_gauge_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROTATIONS_FAIRNESS_GAUGE_ROTATIONS", "0")
    metrics = HttpApp(Settings()).metrics

    tell(metrics, c.SuggestHost(rotation_id="r1"), answered("r1"))

    assert metrics.fairness.limit == 0 and fairness_series(metrics) == {}
    assert HttpApp(Settings(fairness_gauge_rotations=2)).metrics.fairness.limit == 2


def test_answering_a_suggestion_sets_the_gauge(tmp_path: Path) -> None:
    """Through the Kafka app's suggestion path (no broker needed to answer)."""
    settings = Settings(ROTATIONS_STORE=f"sqlite:///{tmp_path}/store.sqlite")
    app = RotationsApplication(env=store_environment(settings.store))
    try:
        service = RotationsKafkaApp(
            settings,
            app,
            RotationProjector(app, open_view(app)),
            cluster_id="test",
            broker=KafkaBroker(apply_types=False),
        )
        http = HttpApp(settings)
        http.attach(service)
        ok(app, "CreateRotation", "emea", name="EMEA", members=["kari", "ola"])
        book(app, "emea", "m1", host_id="kari")

        reply = service.answer_suggestion(c.SuggestHost(rotation_id="emea"))
    finally:
        app.close()

    assert reply.fairness is not None and reply.fairness.deviation == 1.0
    assert fairness_series(http.metrics) == {"emea": 1.0}
