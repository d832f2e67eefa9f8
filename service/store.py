"""Turns `ROTATIONS_STORE` into the eventsourcing library's persistence environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment


class StoreUrlError(ValueError):
    """The store URL names no store we know how to open."""


# The library reads each setting under the application's name first (`ROTATIONS_CIPHER_KEY`
# before `CIPHER_KEY`, from the process environment too): the store's environment names both,
# so the cipher is on only when the settings say so (`service.cipher_check`).
CIPHER_KEYS = tuple(Environment("Rotations").create_keys("CIPHER_KEY"))
CIPHER_TOPICS = tuple(Environment("Rotations").create_keys("CIPHER_TOPIC"))

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# URL option → (the library environment's name, the libpq connection parameter).
SSL_OPTIONS = {
    "sslmode": ("POSTGRES_SSLMODE", "sslmode"),
    "sslrootcert": ("POSTGRES_SSLROOTCERT", "sslrootcert"),
    "sslcert": ("POSTGRES_SSLCERT", "sslcert"),
    "sslkey": ("POSTGRES_SSLKEY", "sslkey"),
}
POSTGRES_OPTIONS = ("schema", "password_file", *SSL_OPTIONS)


class PostgresTlsFactory(PostgresFactory):
    """The library's PostgreSQL factory, also passing the TLS options of the store URL
    (`POSTGRES_SSLMODE`, ...) to every connection of its pool: the library has no setting
    for them. Chosen by `store_environment` only when the URL has one."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        options = {
            parameter: value
            for name, parameter in SSL_OPTIONS.values()
            if (value := self.env.get(name))
        }
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)
        kwargs.update(options)


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


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def store_environment(url: str) -> dict[str, str]:
    """`sqlite:///PATH` or `postgresql://USER[:PASS]@HOST:PORT/DB[?OPTION=VALUE&...]`, the
    options `schema`, `password_file` (a file holding only the password, read now) and
    libpq's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`. The events are stored in clear:
    `service.cipher_check.cipher_environment` turns the cipher on."""
    parts = urlsplit(url)
    clear = {name: "" for name in (*CIPHER_KEYS, *CIPHER_TOPICS)}
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
            **clear,
        }
    if parts.scheme in ("postgresql", "postgres"):
        options = _postgres_options(parts.query)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "") or "postgres",
            "POSTGRES_PASSWORD": _postgres_password(parts.password, options.get("password_file")),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            **clear,
        }
        for option, (name, _) in SSL_OPTIONS.items():
            if option in options:
                env[name] = options[option]
        if any(option in options for option in SSL_OPTIONS):
            env["PERSISTENCE_MODULE"] = f"{__name__}:{PostgresTlsFactory.__name__}"
        if "schema" in options:
            env["POSTGRES_SCHEMA"] = options["schema"]
            ensure_postgres_schema(env, options["schema"])
        return env
    raise StoreUrlError(f"unsupported store URL {url!r}: use sqlite:///PATH or postgresql://...")


def _postgres_options(query: str) -> dict[str, str]:
    options = {name: values[-1] for name, values in parse_qs(query).items()}
    unknown = sorted(set(options) - set(POSTGRES_OPTIONS))
    if unknown:
        raise StoreUrlError(
            f"unknown store URL option(s) {', '.join(unknown)}: use {', '.join(POSTGRES_OPTIONS)}"
        )
    sslmode = options.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        raise StoreUrlError(f"sslmode={sslmode} in the store URL: use one of {', '.join(SSLMODES)}")
    return options


def _postgres_password(in_url: str | None, password_file: str | None) -> str:
    """The URL's password, or the first line of `password_file` (a mounted secret)."""
    if password_file is None:
        return unquote(in_url or "")
    if in_url:
        raise StoreUrlError("the store URL has both a password and password_file: keep one")
    try:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise StoreUrlError(f"cannot read password_file {password_file!r}: {reason}") from error
    if not lines or not lines[0]:
        raise StoreUrlError(f"password_file {password_file!r} is empty")
    return lines[0]


def postgres_connect_kwargs(env: dict[str, str]) -> dict[str, Any]:
    """psycopg's connection parameters for a store environment (as the library connects)."""
    return {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": int(env["POSTGRES_PORT"]),
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"] or None,
        "connect_timeout": int(env["POSTGRES_CONNECT_TIMEOUT"]),
        **{parameter: env[name] for name, parameter in SSL_OPTIONS.values() if env.get(name)},
    }


def ensure_postgres_schema(env: dict[str, str], schema: str) -> None:
    """eventsourcing creates tables, not schemas: make the schema first."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(**postgres_connect_kwargs(env), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
