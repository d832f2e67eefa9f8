"""Turns `ROTATIONS_STORE` into the eventsourcing library's persistence environment."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit


class StoreUrlError(ValueError):
    """The store URL names no store we know how to open."""


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite:///PATH` URL (`:memory:` included); None for any other store."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        return None
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else parts.path


def missing_store(url: str) -> Path | None:
    """Where a SQLite store would be when no file is there yet (opening it creates an empty
    one); None when there is one, or the store is not a file (PostgreSQL, `:memory:`)."""
    path = sqlite_path(url)
    if not path or path == ":memory:" or Path(path).exists():
        return None
    return Path(path).absolute()


def store_environment(url: str) -> dict[str, str]:
    """`sqlite:///PATH` or `postgresql://USER[:PASS]@HOST:PORT/DB[?schema=NAME]`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = sqlite_path(url)
        if not path:
            raise StoreUrlError(f"no file in store URL {url!r}")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if parts.scheme in ("postgresql", "postgres"):
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "",
            "POSTGRES_CONNECT_TIMEOUT": "5",
        }
        schema = parse_qs(parts.query).get("schema")
        if schema:
            env["POSTGRES_SCHEMA"] = schema[0]
            ensure_postgres_schema(env, schema[0])
        return env
    raise StoreUrlError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://...")


def ensure_postgres_schema(env: dict[str, str], schema: str) -> None:
    """eventsourcing creates tables, not schemas: make the schema first."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=5,
        autocommit=True,
    ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
