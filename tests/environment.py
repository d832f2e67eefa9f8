"""What the tests run against: which broker, which PostgreSQL; CI never skips for lack of one."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    """A missing dependency fails in CI and skips elsewhere."""
    if in_ci():
        pytest.fail(f"{what} is unavailable, and CI never skips for that", pytrace=False)
    pytest.skip(f"{what} is unavailable")


def docker_works() -> bool:
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
    return os.environ.get("ROTATIONS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


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

    base = postgres_base_url()
    if not postgres_reachable(base):
        unavailable(f"PostgreSQL at {base}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
