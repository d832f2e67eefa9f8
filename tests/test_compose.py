"""compose.yaml and the Dockerfile, checked without Docker (there is no engine here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from service.settings import Settings
from service.store import store_environment

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(test[1:])


def dockerfile_env(text: str) -> dict[str, str]:
    """Every `ENV KEY=VALUE ...` of a Dockerfile (continued lines joined)."""
    found: dict[str, str] = {}
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split()
        if words[:1] == ["ENV"]:
            found.update(word.partition("=")[::2] for word in words[1:] if "=" in word)
    return found


def listener_map(listeners: str) -> dict[str, str]:
    """`NAME://host:port,...` as {NAME: host:port}; a malformed item fails the test by name."""
    found: dict[str, str] = {}
    for item in listeners.split(","):
        match = re.fullmatch(r"(\w+)://(.*)", item)
        assert match is not None, f"not NAME://address: {item!r}"
        found[match[1]] = match[2]
    return found


def test_three_services_and_no_topic_creation_service(services: dict[str, Any]) -> None:
    # The service creates its topics at startup (service/topics.py), so none is needed.
    assert set(services) == {"kafka", "postgres", "rotations"}


def test_kafka_is_apache_kafka_in_kraft_combined_mode(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = listener_map(env["KAFKA_LISTENERS"])
    advertised = listener_map(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) <= set(protocols)
    assert controller in listeners and controller not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # The compose network reaches the broker as kafka:9092, as the service is told.
    service_bootstrap = environment(services["rotations"])["KAFKA_BOOTSTRAP_SERVERS"]
    assert service_bootstrap in advertised.values()
    name = next(n for n, address in advertised.items() if address == service_bootstrap)
    assert listeners[name] == ":" + service_bootstrap.rsplit(":", 1)[1]
    node, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")
    assert node == env["KAFKA_NODE_ID"]
    assert voter == f"kafka{listeners[controller]}"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    # Persistent data, so a restarted broker keeps the offsets the service tracks.
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])
    assert "kafka-broker-api-versions.sh" in healthcheck_command(kafka)


def test_postgres_16_with_pg_isready(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in healthcheck_command(postgres)
    env = environment(postgres)
    store = urlsplit(environment(services["rotations"])["ROTATIONS_STORE"])
    assert (store.username, store.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert store.path.lstrip("/") == env["POSTGRES_DB"]
    assert store.hostname == "postgres" and store.port == 5432


def test_service_environment_dependencies_and_readiness(services: dict[str, Any]) -> None:
    service = services["rotations"]
    env = environment(service)
    assert env["ROTATIONS_STORE"] == "postgresql://postgres:postgres@postgres:5432/rotations"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # Every variable is one the service reads (a typo would be silently ignored).
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert set(env) <= aliases
    # By alias, as the service reads them; typed Any since pydantic's mypy plugin types each
    # keyword by its field, and pydantic parses these strings as the environment's would be.
    by_alias: dict[str, Any] = dict(env)
    settings = Settings(**by_alias)
    store = store_environment(settings.store)  # the form store.py parses (no connection made)
    assert (store["PERSISTENCE_MODULE"], store["POSTGRES_HOST"]) == (
        "eventsourcing.postgres",
        "postgres",
    )
    assert service["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    # The service listens on 127.0.0.1 unless told otherwise: a published port needs all
    # interfaces, and the healthcheck (from inside) reaches them on 127.0.0.1 too.
    assert Settings.model_fields["http_host"].default == "127.0.0.1"
    assert settings.http_host == "0.0.0.0"
    check = healthcheck_command(service)
    assert "/health/ready" in check and "ROTATIONS_HTTP_PORT" in check and "127.0.0.1" in check
    assert f"{settings.http_port}:{settings.http_port}" in service["ports"][0]
    assert service["build"]["context"] == "."
    assert (ROOT / service["build"].get("dockerfile", "Dockerfile")).is_file()


def test_healthcheck_command_is_valid_python(services: dict[str, Any]) -> None:
    test = services["rotations"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "<healthcheck>", "exec")


def test_dockerfile_installs_the_project_and_runs_the_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == (
        "FROM python:3.11-slim"
    )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = " ".join(line for line in lines if line.startswith("COPY"))
    for package in pyproject["tool"]["setuptools"]["packages"]:
        assert f"{package}/" in copied, f"the image lacks the {package} package"
    assert "pyproject.toml" in copied and pyproject["project"]["readme"] in copied
    assert re.search(r"pip install \.(\s|$)", text)
    assert "libpq5" in text  # psycopg needs the client library at run time
    assert lines[-1] == 'CMD ["rotations", "serve"]'
    assert "rotations" in pyproject["project"]["scripts"]
    assert "EXPOSE 8080" in lines
    # Reachable through its published port even without compose's environment.
    assert dockerfile_env(text)["ROTATIONS_HTTP_HOST"] == "0.0.0.0"
    assert any(line.startswith("USER ") and line != "USER root" for line in lines)


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", "tests"} <= ignored
    assert not {"events", "service", "projections", "pyproject.toml", "README.md"} & ignored
