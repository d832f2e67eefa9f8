"""Health, metrics and the AsyncAPI document over HTTP, next to the Kafka consumers.

A small ASGI app (faststream's `AsgiFastStream` routing with `get` handlers, no broker of its
own) served by a uvicorn server in the service's event loop:

* `/health/live`: 200 while the process answers;
* `/health/ready`: 200 once the command consumer has its partition assignment and the event
  store answers, else 503 (and 503 again from the moment shutdown starts);
* `/metrics`: Prometheus text (commands by type and outcome, suggestion latency, projection
  lag in events, dead letters, the fairness deviation of the rotations answered most recently);
* `/asyncapi` (HTML, or JSON when asked for), `/asyncapi.json`, `/asyncapi.yaml`: the page is
  rendered here from the document (channels, messages, schemas), with no scripts or styles
  from the internet, so it works offline.

The counts come through the Kafka app's observer hook (`instrument`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, get_args

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from service import contracts as c
from service.asyncapi import AsyncAPIDocument, build_asyncapi
from service.kafka_app import RotationsKafkaApp
from service.kafka_positions import Record
from service.settings import Settings

log = logging.getLogger("rotations.http")

STORE_CHECK_SECONDS = 3.0
COMMAND_TYPES = frozenset(model.__name__ for model in get_args(get_args(c.Command)[0]))
# Handled by the store after the batch failed, or never parsed: the dead-letter path sees them.
DEAD_LETTER_ONLY_CODES = frozenset({"invalid_message", "internal"})
# A suggestion answered with these: the rotation's fairness series goes.
GONE_CODES = frozenset({"unknown_rotation", "rotation_deleted"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


# -- metrics -------------------------------------------------------------------------------------


class FairnessGauge(Collector):
    """`rotations_fairness_deviation{rotation_id}`: the contract's fairness deviation of a
    rotation, as its latest answered suggestion gave it (answers `as_of` a past moment leave
    it alone).

    The label set is bounded: at most `limit` rotations (`ROTATIONS_FAIRNESS_GAUGE_ROTATIONS`,
    default 100), the most recently answered. Answering one more drops the least recently
    answered rotation, whose series is gone from the next scrape; a rotation answered as
    unknown or deleted is dropped at once. 0 turns the gauge off. So a service asked about a
    million rotations exposes at most `limit` series, and a scrape shows the busiest ones.
    """

    NAME = "rotations_fairness_deviation"

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._values: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()  # answers are worked out on several threads
        self.help = (
            "Fairness deviation of a rotation at its latest answered suggestion: sum over the "
            "available, eligible members of |meetings + credits - fair share by weight|, "
            f"divided by their total (0: perfectly even). At most {limit} rotations, the "
            "most recently answered; others are dropped"
        )

    def set(self, rotation_id: str, deviation: float) -> None:
        if self.limit == 0:
            return
        with self._lock:
            self._values[rotation_id] = deviation
            self._values.move_to_end(rotation_id)
            while len(self._values) > self.limit:
                self._values.popitem(last=False)

    def forget(self, rotation_id: str) -> None:
        with self._lock:
            self._values.pop(rotation_id, None)

    def rotations(self) -> list[str]:
        """The labelled rotations, least recently answered first."""
        with self._lock:
            return list(self._values)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.NAME, self.help, labels=["rotation_id"])]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values = list(self._values.items())
        family = GaugeMetricFamily(self.NAME, self.help, labels=["rotation_id"])
        for rotation_id, deviation in values:
            family.add_metric([rotation_id], deviation)
        yield family


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own."""

    def __init__(self, fairness_rotations: int = 100) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "rotations_commands",
            "Commands handled, by command type and outcome (error code when rejected)",
            ["type", "outcome", "code"],
            registry=self.registry,
        )
        self.suggestion_seconds = Histogram(
            "rotations_suggestion_latency_seconds",
            "Time to answer a host-suggestion request inside the service (Kafka excluded)",
            ["as_of"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fairness = FairnessGauge(fairness_rotations)
        self.registry.register(self.fairness)
        self.service: RotationsKafkaApp | None = None
        self.registry.register(_ServiceCollector(self))

    def count_command(self, kind: str, reply: c.CommandReply) -> None:
        code = reply.error.code if reply.error is not None else ""
        self.commands.labels(type=kind, outcome=reply.status, code=code).inc()

    def render(self) -> bytes:
        """The exposition text; reads the store, so call it off the event loop."""
        return generate_latest(self.registry)


class _ServiceCollector(Collector):
    """Values read when scraped: store and projection positions, dead letters."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; the store is read only when scraped

    def collect(self) -> Iterator[Metric]:
        service = self.metrics.service
        if service is None:
            return
        yield CounterMetricFamily(
            "rotations_dead_letters",
            "Messages copied to the dead-letter topic since the service started",
            value=service.dead_letters,
        )
        yield GaugeMetricFamily(
            "rotations_partitions_assigned",
            "1 once the command consumer has had its partition assignment",
            value=1 if service.listener.assigned.is_set() else 0,
        )
        try:
            head = service.app.recorder.max_notification_id() or 0
            position = service.projector.position
        except Exception as error:
            log.warning("metrics: store unreadable", extra={"error": repr(error)})
            yield GaugeMetricFamily("rotations_store_up", "1 when the store answers", value=0)
            return
        yield GaugeMetricFamily("rotations_store_up", "1 when the store answers", value=1)
        yield GaugeMetricFamily(
            "rotations_store_position", "Highest notification id in the event store", value=head
        )
        yield GaugeMetricFamily(
            "rotations_projection_position",
            "Last notification id applied to the read model",
            value=position,
        )
        yield GaugeMetricFamily(
            "rotations_projection_lag_events",
            "Events stored but not yet in the read model (store position - projection position)",
            value=max(0, head - position),
        )


class MetricsObserver:
    """Counts commands and times suggestions as the Kafka app reports them."""

    def __init__(self, metrics: ServiceMetrics, commands_topic: str) -> None:
        self.metrics = metrics
        self.commands_topic = commands_topic

    def commands_handled(
        self, items: Sequence[tuple[c.CommandBase, Any]], replies: Sequence[c.CommandReply]
    ) -> None:
        for (command, _), reply in zip(items, replies, strict=False):
            self.metrics.count_command(type(command).__name__, reply)

    def dead_lettered(self, record: Record, error: c.ErrorBody) -> None:
        # Parsed commands are counted above; count here what never got that far
        # (`invalid_message`) or was given up on (`internal`).
        if record.topic == self.commands_topic and error.code in DEAD_LETTER_ONLY_CODES:
            kind = _command_type(record.value)
            self.metrics.commands.labels(type=kind, outcome="rejected", code=error.code).inc()

    def suggestion_answered(
        self, request: c.SuggestHost, seconds: float, reply: c.SuggestionReply
    ) -> None:
        self.metrics.suggestion_seconds.labels(
            as_of="true" if request.as_of is not None else "false"
        ).observe(seconds)
        if request.as_of is not None:
            return  # an audit of the past: the gauge says how rotations stand now
        if reply.error is not None:
            if reply.error.code in GONE_CODES:
                self.metrics.fairness.forget(request.rotation_id)
        elif reply.fairness is not None:
            self.metrics.fairness.set(request.rotation_id, reply.fairness.deviation)


def instrument(service: RotationsKafkaApp, metrics: ServiceMetrics) -> None:
    """Let the metrics observe the service."""
    metrics.service = service
    service.observers.append(MetricsObserver(metrics, service.settings.commands_topic))


def _command_type(value: bytes | None) -> str:
    """The `type` of a rejected message, if it names a known command; else `invalid`."""
    try:
        kind = json.loads(value or b"").get("type")
    except (ValueError, AttributeError):
        return "invalid"
    return kind if isinstance(kind, str) and kind in COMMAND_TYPES else "invalid"


# -- the HTTP app --------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> AsgiResponse:
    body = json.dumps(data, indent=2).encode() + b"\n"
    return AsgiResponse(body, status, {"content-type": "application/json"})


def _accepts_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept":
            accept = bytes(value).decode("latin-1")
            return "application/json" in accept and "text/html" not in accept
    return False


class HttpApp:
    """The routes and the state they report; `service` is attached once it is built."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServiceMetrics(settings.fairness_gauge_rotations)
        self.service: RotationsKafkaApp | None = None
        self.stopping = False
        self._asyncapi: AsyncAPIDocument | None = None
        self._asyncapi_lock = asyncio.Lock()
        self._store_check: asyncio.Task[None] | None = None
        routes: list[tuple[str, ASGIApp]] = [
            ("/", get(self._index, include_in_schema=False)),
            ("/health/live", get(self._live, include_in_schema=False)),
            ("/health/ready", get(self._ready, include_in_schema=False)),
            ("/metrics", get(self._metrics, include_in_schema=False)),
            ("/asyncapi", get(self._asyncapi_page, include_in_schema=False)),
            ("/asyncapi.json", get(self._asyncapi_json, include_in_schema=False)),
            ("/asyncapi.yaml", get(self._asyncapi_yaml, include_in_schema=False)),
        ]
        self.asgi = AsgiFastStream(asgi_routes=routes, logger=log)

    def attach(self, service: RotationsKafkaApp) -> None:
        self.service = service
        instrument(service, self.metrics)

    def mark_stopping(self) -> None:
        """Shutdown has begun: readiness says so before the consumers stop."""
        self.stopping = True

    # -- health ----------------------------------------------------------------------------

    async def _index(self, scope: Scope) -> AsgiResponse:
        paths = ["/health/live", "/health/ready", "/metrics", "/asyncapi", "/asyncapi.json"]
        return _json({"service": "meeting-rotations", "endpoints": paths})

    async def _live(self, scope: Scope) -> AsgiResponse:
        return _json({"status": "alive"})

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        service = self.service
        if self.stopping:
            return False, {"status": "stopping"}
        if service is None:
            return False, {"status": "starting"}
        assigned = service.listener.assigned.is_set()
        store_error = await self._check_store(service)
        ready = assigned and store_error is None
        checks: dict[str, Any] = {
            "partitions_assigned": assigned,
            "store": "ok" if store_error is None else store_error,
        }
        return ready, {"status": "ready" if ready else "not ready", "checks": checks}

    async def _ready(self, scope: Scope) -> AsgiResponse:
        ready, body = await self.readiness()
        return _json(body, 200 if ready else 503)

    async def _check_store(self, service: RotationsKafkaApp) -> str | None:
        """None when the store answers a read within a few seconds, else why not."""
        # One check at a time: a hanging database must not pile up threads, probe by probe.
        if self._store_check is None or self._store_check.done():
            self._store_check = asyncio.create_task(asyncio.to_thread(_read_store_head, service))
        try:
            await asyncio.wait_for(asyncio.shield(self._store_check), STORE_CHECK_SECONDS)
        except TimeoutError:
            return f"no answer within {STORE_CHECK_SECONDS:g}s"
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return None

    # -- metrics and documents -----------------------------------------------------------

    async def _metrics(self, scope: Scope) -> AsgiResponse:
        body = await asyncio.to_thread(self.metrics.render)
        return AsgiResponse(body, 200, {"content-type": CONTENT_TYPE_LATEST})

    async def asyncapi(self) -> AsyncAPIDocument:
        async with self._asyncapi_lock:
            if self._asyncapi is None:
                self._asyncapi = await asyncio.to_thread(build_asyncapi, self.settings)
            return self._asyncapi

    async def _asyncapi_page(self, scope: Scope) -> AsgiResponse:
        document = await self.asyncapi()
        if _accepts_json(scope):
            return _json(document.to_jsonable())
        page = asyncapi_html(document.to_jsonable())
        return AsgiResponse(page.encode(), 200, {"content-type": "text/html; charset=utf-8"})

    async def _asyncapi_json(self, scope: Scope) -> AsgiResponse:
        return _json((await self.asyncapi()).to_jsonable())

    async def _asyncapi_yaml(self, scope: Scope) -> AsgiResponse:
        body = (await self.asyncapi()).to_yaml().encode()
        return AsgiResponse(body, 200, {"content-type": "application/yaml; charset=utf-8"})


def _read_store_head(service: RotationsKafkaApp) -> None:
    service.app.recorder.max_notification_id()


# -- the AsyncAPI page ---------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
  color: #1d1d1f; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.2rem; }
code, pre { font: 13px ui-monospace, monospace; background: #f4f4f6; border-radius: 3px; }
code { padding: 0 .25rem; } pre { padding: .6rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid #e3e3e6; padding: .25rem; }
.action { font-size: 12px; text-transform: uppercase; padding: .1rem .4rem; border-radius: 3px;
  background: #e6eefc; color: #1b4fa8; margin-left: .4rem; vertical-align: middle; }
.description { white-space: pre-wrap; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _resolve(document: dict[str, Any], item: Any) -> Any:
    """A local `$ref` (`#/a/b`) followed, repeatedly; anything else as it is."""
    seen = 0
    while isinstance(item, dict) and isinstance(item.get("$ref"), str) and seen < 10:
        node: Any = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        item, seen = node, seen + 1
    return item


def _schema_type(schema: Any) -> str:
    """A short, linked rendering of a JSON schema's type: `string`, `array of EventRef`, ..."""
    if not isinstance(schema, dict):
        return "any"
    if isinstance(schema.get("$ref"), str):
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(_schema_type(option) for option in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items'))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_schema_type(schema['additionalProperties'])}"
    detail = f" ({_e(schema['format'])})" if "format" in schema else ""
    return f"{_e(kind)}{detail}"


def _properties_table(schema: dict[str, Any]) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return ""
    required = set(schema.get("required", ()))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_schema_type(prop)}</td>"
        f"<td>{'yes' if name in required else ''}</td>"
        f"<td>{_e(prop.get('description', '')) if isinstance(prop, dict) else ''}</td></tr>"
        for name, prop in properties.items()
    )
    return (
        "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>"
        f"{rows}</table>"
    )


def _message_html(document: dict[str, Any], message: Any) -> str:
    message = _resolve(document, message)
    if not isinstance(message, dict):
        return ""
    parts = [f"<h4>{_e(message.get('title', 'message'))}</h4>"]
    if "payload" in message:
        parts.append(f"<p>payload: {_schema_type(message['payload'])}</p>")
    headers = message.get("headers")
    if isinstance(headers, dict) and headers.get("properties"):
        parts.append("<p>headers:</p>" + _properties_table(headers))
    key = message.get("bindings", {}).get("kafka", {}).get("key")
    if isinstance(key, dict):
        parts.append(f"<p>Kafka key: {_schema_type(key)} {_e(key.get('description', ''))}</p>")
    return "".join(parts)


def asyncapi_html(document: dict[str, Any]) -> str:
    """The AsyncAPI document as one self-contained page: what the service receives and sends
    on which topic, the messages and their schemas; links to the document itself."""
    info = document.get("info", {})
    title = f"{info.get('title', 'AsyncAPI')} {info.get('version', '')}".strip()
    out = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>',
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>",
        '<p>The document: <a href="/asyncapi.yaml">asyncapi.yaml</a>, '
        '<a href="/asyncapi.json">asyncapi.json</a> '
        f"(AsyncAPI {_e(document.get('asyncapi', ''))}).</p>",
        f'<p class="description">{_e(info.get("description", ""))}</p>',
    ]
    servers = document.get("servers", {})
    if servers:
        out.append("<h2>Servers</h2><table><tr><th>name</th><th>host</th><th>protocol</th>")
        out.append("<th>description</th></tr>")
        for name, server in servers.items():
            out.append(
                f"<tr><td>{_e(name)}</td><td><code>{_e(server.get('host', ''))}</code></td>"
                f"<td>{_e(server.get('protocol', ''))}</td>"
                f"<td>{_e(server.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    actions = {"receive": "the service receives", "send": "the service sends"}
    out.append("<h2>Channels</h2>")
    for name, operation in document.get("operations", {}).items():
        channel = _resolve(document, operation.get("channel", {}))
        address = channel.get("address", name) if isinstance(channel, dict) else name
        action = actions.get(operation.get("action", ""), operation.get("action", ""))
        out.append(
            f'<h3 id="channel-{_e(name)}"><code>{_e(address)}</code>'
            f'<span class="action">{_e(action)}</span></h3>'
        )
        if isinstance(channel, dict):
            if channel.get("description"):
                out.append(f'<p class="description">{_e(channel["description"])}</p>')
            for parameter, spec in channel.get("parameters", {}).items():
                described = spec.get("description", "") if isinstance(spec, dict) else ""
                out.append(f"<p><code>{{{_e(parameter)}}}</code>: {_e(described)}</p>")
        for message in operation.get("messages", []):
            out.append(_message_html(document, message))
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        out.append("<h2>Schemas</h2>")
    for name, schema in schemas.items():
        out.append(f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>')
        if not isinstance(schema, dict):
            continue
        if schema.get("description"):
            out.append(f'<p class="description">{_e(schema["description"])}</p>')
        if "properties" not in schema:
            out.append(f"<p>{_schema_type(schema)}</p>")
        out.append(_properties_table(schema))
        raw = _e(json.dumps(schema, indent=2))
        out.append(f"<details><summary>JSON schema</summary><pre>{raw}</pre></details>")
    out.append("</body></html>\n")
    return "\n".join(out)


# -- the server ----------------------------------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the service's loop: the FastStream app owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Binds the port at once (so a taken port is a clear startup error), serves in a task."""

    def __init__(self, app: HttpApp, port: int, host: str = "127.0.0.1") -> None:
        self.app = app
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.host = host
        self.port = int(self.socket.getsockname()[1])
        config = uvicorn.Config(
            app.asgi,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self.server = _EmbeddedServer(config)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._serve(), name="rotations-http")
        while not self.server.started and not self.task.done():
            await asyncio.sleep(0.01)
        if self.task.done():
            await self.task  # raises what stopped it
            raise RuntimeError("the HTTP server stopped while starting")
        log.info("HTTP server listening", extra={"host": self.host, "port": self.port})

    async def _serve(self) -> None:
        try:
            await self.server.serve(sockets=[self.socket])
        except SystemExit as error:  # uvicorn's way of saying it could not start
            raise RuntimeError(f"the HTTP server could not start ({error})") from None

    async def stop(self) -> None:
        self.app.stopping = True
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)
        self.socket.close()


async def start_http(settings: Settings, app: HttpApp | None = None) -> HttpServer | None:
    """The HTTP server on `ROTATIONS_HTTP_HOST`:`ROTATIONS_HTTP_PORT` (this machine only unless
    told otherwise), started; None when the port is 0 (off).

    Raises OSError when the port cannot be bound.
    """
    if settings.http_port == 0:
        return None
    server = HttpServer(app or HttpApp(settings), settings.http_port, settings.http_host)
    await server.start()
    return server
