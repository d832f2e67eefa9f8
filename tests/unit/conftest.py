"""Shared fixtures: the event store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from service.application import RotationsApplication
from service.store import store_environment

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_unavailable(error: Exception) -> NoReturn:
    message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An empty event store's environment; a PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        yield store_environment(f"sqlite:///{tmp_path}/s.sqlite")
        return
    schema = f"t_{uuid4().hex[:10]}"
    try:
        env = store_environment(f"{POSTGRES_URL}?schema={schema}")
    except psycopg.OperationalError as error:
        _postgres_unavailable(error)
    try:
        yield env
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def open_app(store_env: dict[str, str]) -> Iterator[Callable[[], RotationsApplication]]:
    """Opens applications on the store; all are closed before the store is dropped."""
    opened: list[RotationsApplication] = []

    def _open() -> RotationsApplication:
        app = RotationsApplication(env=dict(store_env))
        opened.append(app)
        return app

    yield _open
    for app in opened:
        app.close()


@pytest.fixture
def app(open_app: Callable[[], RotationsApplication]) -> RotationsApplication:
    return open_app()
