"""The HTTP app's AsyncAPI routes through ASGI (no server, no broker), and where it binds."""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml

from service.asyncapi import build_asyncapi
from service.embedded_broker import free_port
from service.http import HttpApp, asyncapi_html, start_http
from service.settings import Settings


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
