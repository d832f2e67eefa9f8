"""Events encrypted at rest (the library's AES-GCM cipher), on SQLite and on PostgreSQL: the raw
tables hold no rotation name or user id in clear; a store and a key that disagree stop the
service at start with one line; `rotations audit` reads an encrypted store with its key."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.cryptography import AESCipher
from psycopg import sql
from typer.testing import CliRunner

from events.rotation import rotation_uuid
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.bootstrap import StartupError, open_application
from service.cli import cli
from service.contracts import COMMAND_ADAPTER
from service.settings import Settings
from service.store import CIPHER_KEYS, sqlite_path, store_environment
from tests.unit.commands import book, ok

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
RID = "payroll-review-7f3a"
NAME = "Quarterly Payroll Review"
MEMBERS = ["alice.zeta", "bob.omega"]
SECRETS = [RID, NAME, *MEMBERS]
LEDGER_TABLES = ("command_receipts", "meeting_claims")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store's URL; a PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/encrypted.sqlite"
        return
    schema = f"t_{uuid4().hex[:10]}"
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {error}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {error}")
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def key() -> str:
    return AESCipher.create_key(32)


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROTATIONS_CIPHER_KEY", "ROTATIONS_CIPHER_KEY_FILE", "CIPHER_KEY"):
        monkeypatch.delenv(name, raising=False)


def settings(store: str, key: str | None = None, key_file: Path | None = None) -> Settings:
    return Settings(
        store=store,
        directory="open",
        cipher_key=key,
        cipher_key_file=None if key_file is None else str(key_file),
    )


def write_history(store: str, key: str | None) -> None:
    """A rotation, a booking, a snapshot and a caught-up read model, through the service's
    composition root."""
    app = open_application(settings(store, key))
    try:
        ok(app, "CreateRotation", RID, name=NAME, members=MEMBERS)
        book(app, RID, "m1")
        app.take_snapshot(rotation_uuid(RID))
        RotationProjector(app, open_view(app)).catch_up()
    finally:
        app.close()


def raw_tables(store: str) -> dict[str, bytes]:
    """Every table of the store, all rows and columns, as the database holds them."""
    path = sqlite_path(store)
    found: dict[str, bytes] = {}
    if path is not None:
        with sqlite3.connect(path) as conn:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for name in names:
                found[name] = _dump(conn.execute(f'SELECT * FROM "{name}"').fetchall())
        return found
    schema = store.rsplit("schema=", 1)[1]
    with psycopg.connect(POSTGRES_URL) as pg:
        names = [
            r[0]
            for r in pg.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        for name in names:
            query = sql.SQL("SELECT * FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
            found[name] = _dump(pg.execute(query).fetchall())
    return found


def _dump(rows: list[tuple[object, ...]]) -> bytes:
    return b"\n".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )


def in_clear(tables: dict[str, bytes]) -> dict[str, list[str]]:
    """Which secrets each table shows in clear (tables showing none left out)."""
    shown = {name: [s for s in SECRETS if s.encode() in data] for name, data in tables.items()}
    return {name: secrets for name, secrets in shown.items() if secrets}


def event_tables(tables: dict[str, bytes]) -> dict[str, bytes]:
    """All but the ledger's receipts and claims (rows the library's mapper never sees)."""
    return {n: d for n, d in tables.items() if not n.endswith(LEDGER_TABLES)}


# -- what is stored ------------------------------------------------------------------------


def test_with_a_key_no_table_of_events_snapshots_or_views_holds_a_name_in_clear(
    store_url: str, key: str
) -> None:
    write_history(store_url, key)
    tables = event_tables(raw_tables(store_url))

    assert any("snapshots" in n for n in tables) and any("view" in n for n in tables), tables
    assert in_clear(tables) == {}


def test_without_a_key_the_same_tables_hold_them_in_clear(store_url: str) -> None:
    """The check above can fail: in clear, the events, snapshots and view show every name."""
    write_history(store_url, None)
    shown = in_clear(event_tables(raw_tables(store_url)))

    events = next(secrets for name, secrets in shown.items() if name.endswith("events"))
    assert set(events) == set(SECRETS)
    assert any("snapshots" in name for name in shown) and any("view" in name for name in shown)


def test_with_a_key_the_ledger_rows_hold_no_name_in_clear(store_url: str, key: str) -> None:
    write_history(store_url, key)
    tables = raw_tables(store_url)

    assert in_clear({n: d for n, d in tables.items() if n.endswith(LEDGER_TABLES)}) == {}


# -- opening a store -----------------------------------------------------------------------


def test_an_encrypted_store_opens_with_its_key_and_reads_back(store_url: str, key: str) -> None:
    write_history(store_url, key)
    app = open_application(settings(store_url, key))
    try:
        assert app.mapper.cipher is not None
        assert app.get_rotation(RID).name == NAME
    finally:
        app.close()


def test_without_the_key_an_encrypted_store_refuses_to_open_in_one_line(
    store_url: str, key: str
) -> None:
    write_history(store_url, key)

    with pytest.raises(StartupError) as raised:
        open_application(settings(store_url))

    message = str(raised.value)
    assert "\n" not in message
    assert "holds encrypted events" in message and "ROTATIONS_CIPHER_KEY" in message


def test_a_wrong_key_refuses_to_open_in_one_line(store_url: str, key: str) -> None:
    write_history(store_url, key)

    with pytest.raises(StartupError) as raised:
        open_application(settings(store_url, AESCipher.create_key(32)))

    assert "\n" not in str(raised.value)
    assert "does not decrypt the events" in str(raised.value)


def test_a_key_for_a_store_written_in_clear_refuses_to_open_in_one_line(
    store_url: str, key: str
) -> None:
    write_history(store_url, None)

    with pytest.raises(StartupError) as raised:
        open_application(settings(store_url, key))

    assert "\n" not in str(raised.value)
    assert "holds events written in clear, but a cipher key is set" in str(raised.value)


def test_the_key_from_a_file_is_read_at_start_and_stripped(tmp_path: Path, key: str) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite"
    key_file = tmp_path / "cipher.key"
    key_file.write_text(f"  {key}\n", encoding="utf-8")
    write_history(store, key)

    app = open_application(settings(store, key_file=key_file))
    try:
        assert app.get_rotation(RID).name == NAME
    finally:
        app.close()


def test_the_key_in_the_environment_wins_over_the_file(tmp_path: Path, key: str) -> None:
    store = f"sqlite:///{tmp_path}/s.sqlite"
    write_history(store, key)

    open_application(settings(store, key, key_file=tmp_path / "absent.key")).close()


@pytest.mark.parametrize(
    ("key", "key_file", "expected"),
    [
        ("not base64!", None, "is not a base64 AES key of 16, 24 or 32 bytes"),
        ("c2hvcnQ=", None, "is not a base64 AES key of 16, 24 or 32 bytes"),
        (None, "absent.key", "cannot read the cipher key file"),
        (None, "empty.key", "is empty"),
    ],
)
def test_an_unusable_key_refuses_to_start_in_one_line(
    tmp_path: Path, key: str | None, key_file: str | None, expected: str
) -> None:
    (tmp_path / "empty.key").write_text("\n", encoding="utf-8")
    path = None if key_file is None else tmp_path / key_file

    with pytest.raises(StartupError) as raised:
        open_application(settings(f"sqlite:///{tmp_path}/s.sqlite", key, path))

    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_an_empty_store_opens_with_or_without_a_key(tmp_path: Path, key: str) -> None:
    open_application(settings(f"sqlite:///{tmp_path}/a.sqlite", key)).close()
    open_application(settings(f"sqlite:///{tmp_path}/b.sqlite")).close()


def test_a_key_in_the_process_environment_reaches_only_the_configured_application(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library reads `ROTATIONS_CIPHER_KEY` itself (its settings are looked up under the
    application's name first, the process environment included): an application built from
    the store URL alone (the AsyncAPI document's memory store, tests, the benchmark's
    seeding) stays in clear, and the configured one is encrypted."""
    monkeypatch.setenv("ROTATIONS_CIPHER_KEY", key)
    assert CIPHER_KEYS[0] == f"{RotationsApplication.name.upper()}_CIPHER_KEY"

    plain = RotationsApplication(env=store_environment("sqlite:///:memory:"))
    configured = open_application(Settings(store=f"sqlite:///{tmp_path}/s.sqlite"))
    try:
        assert plain.mapper.cipher is None
        assert configured.mapper.cipher is not None
    finally:
        plain.close()
        configured.close()


# -- the command line ----------------------------------------------------------------------


def audit(store: str, key: str | None) -> tuple[int, str]:
    env = {
        "ROTATIONS_STORE": store,
        "ROTATIONS_DIRECTORY": "open",
        "ROTATIONS_CIPHER_KEY": key,
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(cli, ["audit", RID], env=env)
    return result.exit_code, result.output


def test_rotations_audit_reads_an_encrypted_store_with_its_key(store_url: str, key: str) -> None:
    write_history(store_url, key)

    code, output = audit(store_url, key)

    assert code == 0, output
    assert "Created" in output and "MeetingBooked" in output


def test_rotations_audit_without_the_key_prints_one_line_and_exits_2(
    store_url: str, key: str
) -> None:
    write_history(store_url, key)

    code, output = audit(store_url, None)

    assert code == 2
    assert len(output.strip().splitlines()) == 1, output
    assert "holds encrypted events" in output and "Traceback" not in output


def test_sealed_receipts_and_claims_still_answer_repeats_and_duplicates(
    store_url: str, key: str
) -> None:
    app = open_application(settings(store_url, key))
    try:
        ok(app, "CreateRotation", RID, name=NAME, members=MEMBERS)
        booking = {"meeting_id": "m1", "record": {"type": "deal", "id": "1"}}
        first = ok(app, "BookMeeting", RID, command_id="c-1", **booking)
        again = ok(app, "BookMeeting", RID, command_id="c-1", **booking)
        assert again == first  # the sealed receipt opens to the same reply
        assert app.has_claim(RID, "m1") and not app.has_claim(RID, "m2")
        duplicate = app.execute(
            COMMAND_ADAPTER.validate_python(
                {"type": "BookMeeting", "command_id": "c-2", "rotation_id": RID, "actor": "t"}
                | booking
            )
        )
        assert duplicate.error is not None and duplicate.error.code == "duplicate_meeting"
    finally:
        app.close()
