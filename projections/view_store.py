"""Materialised-view tables for the rotation read model, on SQLite and PostgreSQL.

Each view class is an eventsourcing tracking recorder: rows and the tracking record of the
last applied notification commit in one transaction, so every event is applied once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresRecorder, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier


@dataclass(frozen=True)
class ViewRow:
    """One rotation's materialised state: a snapshot of the aggregate as the events left it."""

    rotation_key: str
    position: int
    version: int
    topic: str
    state: bytes


class RotationViewStore(Protocol):
    """What the projector needs from a view table, whatever the database."""

    def get_row(self, rotation_key: str) -> ViewRow | None: ...

    def get_rows(self, rotation_keys: Sequence[str]) -> dict[str, ViewRow]: ...

    def put_rows(self, rows: list[ViewRow], tracking: Tracking) -> None: ...

    def max_tracking_id(self, application_name: str) -> int | None: ...


class SQLiteRotationView(SQLiteTrackingRecorder):
    """Rotation read model in the same SQLite file as the events."""

    def __init__(self, datastore: SQLiteDatastore, table_name: str = "rotation_view") -> None:
        self.view_table = table_name
        super().__init__(datastore)

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.view_table} ("
            "rotation_key TEXT PRIMARY KEY, position INTEGER NOT NULL, "
            "version INTEGER NOT NULL, "
            "topic TEXT NOT NULL, state BLOB NOT NULL)"
        )
        return statements

    def get_row(self, rotation_key: str) -> ViewRow | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rotation_key, position, version, topic, state FROM {self.view_table} "
                "WHERE rotation_key = ?",
                (rotation_key,),
            )
            row = c.fetchone()
        return None if row is None else ViewRow(row[0], row[1], row[2], row[3], bytes(row[4]))

    def get_rows(self, rotation_keys: Sequence[str]) -> dict[str, ViewRow]:
        """The rows of these rotations that exist, in one query per 500 keys."""
        found: dict[str, ViewRow] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(rotation_keys), 500):
                chunk = rotation_keys[start : start + 500]
                c.execute(
                    f"SELECT rotation_key, position, version, topic, state FROM {self.view_table} "
                    f"WHERE rotation_key IN ({','.join('?' * len(chunk))})",
                    tuple(chunk),
                )
                for row in c.fetchall():
                    found[row[0]] = ViewRow(row[0], row[1], row[2], row[3], bytes(row[4]))
        return found

    def put_rows(self, rows: list[ViewRow], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                f"INSERT INTO {self.view_table} (rotation_key, position, version, topic, state) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (rotation_key) DO UPDATE SET "
                "position = excluded.position, version = excluded.version, "
                "topic = excluded.topic, state = excluded.state",
                [(r.rotation_key, r.position, r.version, r.topic, r.state) for r in rows],
            )
            self._insert_tracking(c, tracking)


class PostgresRotationView(PostgresTrackingRecorder):
    """Rotation read model in the service's PostgreSQL schema."""

    def __init__(
        self, datastore: PostgresDatastore, *, table_name: str = "rotation_view", **kwargs: Any
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.view_table = table_name
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "rotation_key text PRIMARY KEY, position bigint NOT NULL, "
                "version bigint NOT NULL, "
                "topic text NOT NULL, state bytea NOT NULL)"
            ).format(Identifier(self.datastore.schema), Identifier(table_name))
        )
        self.select_row = SQL(
            "SELECT rotation_key, position, version, topic, state FROM {0}.{1} "
            "WHERE rotation_key = %s"
        ).format(Identifier(self.datastore.schema), Identifier(table_name))
        self.select_rows = SQL(
            "SELECT rotation_key, position, version, topic, state FROM {0}.{1} "
            "WHERE rotation_key = ANY(%s)"
        ).format(Identifier(self.datastore.schema), Identifier(table_name))
        self.upsert_row = SQL(
            "INSERT INTO {0}.{1} (rotation_key, position, version, topic, state) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (rotation_key) DO UPDATE SET "
            "position = EXCLUDED.position, version = EXCLUDED.version, "
            "topic = EXCLUDED.topic, state = EXCLUDED.state"
        ).format(Identifier(self.datastore.schema), Identifier(table_name))

    def get_row(self, rotation_key: str) -> ViewRow | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_row, (rotation_key,))
            row = curs.fetchone()
        if row is None:
            return None
        return _view_row(row)

    def get_rows(self, rotation_keys: Sequence[str]) -> dict[str, ViewRow]:
        """The rows of these rotations that exist, in one query."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_rows, (list(rotation_keys),))
            return {row["rotation_key"]: _view_row(row) for row in curs.fetchall()}

    def put_rows(self, rows: list[ViewRow], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(
                self.upsert_row,
                [(r.rotation_key, r.position, r.version, r.topic, r.state) for r in rows],
            )
            self._insert_tracking(curs, tracking)


def _view_row(row: Any) -> ViewRow:
    return ViewRow(
        row["rotation_key"], row["position"], row["version"], row["topic"], bytes(row["state"])
    )


def view_class_for(recorder: TrackingRecorder | Any) -> type[TrackingRecorder]:
    """The view class matching the store the application uses."""
    if isinstance(recorder, PostgresRecorder):
        return PostgresRotationView
    return SQLiteRotationView
