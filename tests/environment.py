"""What the tests run against: which broker, which PostgreSQL, which random seed; CI never skips
for lack of one."""

from __future__ import annotations

import atexit
import functools
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_IMAGE = "postgres:16"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


SEED_VARIABLE = "ROTATIONS_TEST_SEED"


@functools.cache
def session_seed() -> int:
    """The session's one seed: $ROTATIONS_TEST_SEED, else drawn (and printed in the report header
    and in every failure), so a run that found something can be repeated exactly."""
    if text := os.environ.get(SEED_VARIABLE, "").strip():
        try:
            return int(text)
        except ValueError:
            raise pytest.UsageError(f"{SEED_VARIABLE} must be an integer, not {text!r}") from None
    return random.SystemRandom().randrange(2**32)


def seed_for(name: str) -> int:
    """One test's own seed, derived from the session's and its name: the same whether the test
    runs alone or in the whole suite, in any order (a str seed is hashed with SHA-512, not with
    Python's randomized hash)."""
    return random.Random(f"{session_seed()}:{name}").randrange(2**32)


def unavailable(what: str) -> None:
    """A missing dependency fails in CI and skips elsewhere."""
    if in_ci():
        pytest.fail(f"{what} is unavailable, and CI never skips for that", pytrace=False)
    pytest.skip(f"{what} is unavailable")


@functools.cache
def docker_works() -> bool:
    """A Docker engine answers (asked once per session: `docker info` takes a while)."""
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def postgres_base_url() -> str:
    """The one rule: ROTATIONS_TEST_POSTGRES_URL, else a testcontainers PostgreSQL when Docker
    works (started on first use, stopped at the end of the session), else the local server."""
    if url := os.environ.get("ROTATIONS_TEST_POSTGRES_URL"):
        return url
    if docker_works():
        return _postgres_container_url()
    return DEFAULT_POSTGRES_URL


def describe_postgres_choice() -> str:
    """For the report header; starts nothing."""
    if url := os.environ.get("ROTATIONS_TEST_POSTGRES_URL"):
        return f"ROTATIONS_TEST_POSTGRES_URL={without_password(url)}"
    if docker_works():
        return f"testcontainers {POSTGRES_IMAGE} (Docker engine found)"
    return f"local PostgreSQL at {DEFAULT_POSTGRES_URL}"


def without_password(url: str) -> str:
    """For anything printed: a store URL may carry the password."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


_postgres_container: Any = None


def _postgres_container_url() -> str:
    global _postgres_container
    if _postgres_container is None:
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers before the community namespace
            from testcontainers.postgres import PostgresContainer
        container = PostgresContainer(
            POSTGRES_IMAGE, username="postgres", password="postgres", dbname="test"
        )
        container.start()
        _postgres_container = container
        atexit.register(stop_postgres_container)
    return str(_postgres_container.get_connection_url(driver=None))


def stop_postgres_container() -> None:
    global _postgres_container
    container, _postgres_container = _postgres_container, None
    if container is not None:
        container.stop()


def postgres_reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A store URL on a fresh schema, dropped afterwards."""
    import psycopg
    from psycopg import sql

    try:
        base = postgres_base_url()
    except Exception as error:  # the container would not start
        unavailable(f"PostgreSQL from testcontainers ({type(error).__name__}: {error})")
        raise
    if not postgres_reachable(base):
        unavailable(f"PostgreSQL at {base}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
