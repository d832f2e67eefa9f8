"""`ROTATIONS_STORE` options for PostgreSQL: the password from a file (a mounted secret) and
libpq's TLS options, turned into the library's environment; and the password kept out of
messages."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from service.bootstrap import StartupError, open_application
from service.settings import Settings
from service.store import (
    PostgresTlsFactory,
    StoreUrlError,
    postgres_connect_kwargs,
    redacted,
    store_environment,
)

BASE = "postgresql://svc@db.internal:6543/rotations"
LOCAL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_or_skip() -> None:
    try:
        psycopg.connect(LOCAL, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {LOCAL}: {error}")
        pytest.skip(f"PostgreSQL is not reachable at {LOCAL}: {error}")


def test_a_plain_url_is_the_library_s_own_postgres_module() -> None:
    env = store_environment("postgresql://svc:s3cret@db.internal:6543/rotations")

    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.internal",
        "6543",
        "rotations",
    )
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("svc", "s3cret")
    assert not any(name.startswith("POSTGRES_SSL") for name in env)


def test_a_percent_encoded_password_is_decoded() -> None:
    env = store_environment("postgresql://svc:p%40ss%2Fw0rd@db.internal/rotations")

    assert env["POSTGRES_PASSWORD"] == "p@ss/w0rd"


def test_the_password_is_read_from_password_file_at_start(tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text("s3cret with spaces \n", encoding="utf-8")

    env = store_environment(f"{BASE}?password_file={secret}")

    assert env["POSTGRES_PASSWORD"] == "s3cret with spaces "  # only the line end is dropped
    assert "password_file" not in str(env.keys())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://svc:inline@db/rotations?password_file={f}", "both a password and"),
        (f"{BASE}?password_file={{d}}/absent", "cannot read password_file"),
        (f"{BASE}?password_file={{d}}/empty", "is empty"),
        (f"{BASE}?sslmode=sometimes", "sslmode=sometimes in the store URL: use one of"),
        (f"{BASE}?ssl_mode=require", "unknown store URL option(s) ssl_mode"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, url: str, expected: str) -> None:
    (tmp_path / "secret").write_text("x\n", encoding="utf-8")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")

    with pytest.raises(StoreUrlError) as raised:
        store_environment(url.format(f=tmp_path / "secret", d=tmp_path))

    assert expected in str(raised.value)


def test_tls_options_go_to_the_factory_that_passes_them_to_libpq() -> None:
    env = store_environment(
        f"{BASE}?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem"
        "&sslcert=/etc/ssl/client.pem&sslkey=/etc/ssl/client.key"
    )

    assert env["PERSISTENCE_MODULE"] == "service.store:PostgresTlsFactory"
    assert {k: v for k, v in env.items() if k.startswith("POSTGRES_SSL")} == {
        "POSTGRES_SSLMODE": "verify-full",
        "POSTGRES_SSLROOTCERT": "/etc/ssl/db-ca.pem",
        "POSTGRES_SSLCERT": "/etc/ssl/client.pem",
        "POSTGRES_SSLKEY": "/etc/ssl/client.key",
    }
    assert postgres_connect_kwargs(env) | {} == {
        "dbname": "rotations",
        "host": "db.internal",
        "port": 6543,
        "user": "svc",
        "password": None,
        "connect_timeout": 5,
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/db-ca.pem",
        "sslcert": "/etc/ssl/client.pem",
        "sslkey": "/etc/ssl/client.key",
    }


def test_the_factory_puts_the_tls_options_on_the_pool_s_connections() -> None:
    """No connection is made: the library's pool opens on first use."""
    env = store_environment(f"{BASE}?sslmode=require&sslrootcert=/ca.pem")

    factory = PostgresTlsFactory(env)

    kwargs = factory.datastore.pool.kwargs
    assert isinstance(kwargs, dict)
    assert (kwargs["sslmode"], kwargs["sslrootcert"], kwargs["host"]) == (
        "require",
        "/ca.pem",
        "db.internal",
    )


def test_sslmode_reaches_the_server() -> None:
    """The local server speaks no TLS: `require` is refused by libpq, `disable` connects."""
    postgres_or_skip()
    schema = f"t_{uuid4().hex[:10]}"
    store = f"{LOCAL}?schema={schema}"
    with pytest.raises(StartupError) as raised:
        open_application(Settings(store=f"{store}&sslmode=require", directory="open"))
    assert "does not support SSL" in str(raised.value) and "\n" not in str(raised.value)

    try:
        app = open_application(Settings(store=f"{store}&sslmode=disable", directory="open"))
        try:
            assert app.recorder.max_notification_id() is None
            pool_kwargs = app.factory.datastore.pool.kwargs  # type: ignore[attr-defined]
            assert pool_kwargs["sslmode"] == "disable"
        finally:
            app.close()
    finally:
        with psycopg.connect(LOCAL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_messages_never_show_the_password() -> None:
    url = "postgresql://svc:s3cret@127.0.0.1:1/rotations?sslmode=bogus"

    with pytest.raises(StartupError) as raised:
        open_application(Settings(store=url))

    assert "s3cret" not in str(raised.value) and "svc:***@127.0.0.1:1" in str(raised.value)
    assert redacted("postgresql://svc@h/db") == "postgresql://svc@h/db"
