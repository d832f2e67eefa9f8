"""Rebuild the read model from position 0, compare it with the live one, and swap it in.

A view table's tracking name is its table name (the live table `rotation_view` is kept by a
projector tracking "rotation_view"). The rebuild goes into a fresh table with its own
tracking record, so the live model keeps serving while it runs.

`swap` renames tables in one transaction and moves the tracking records WITH the tables:
the rebuilt table's tracking record is renamed to "rotation_view", so the live projector
resumes from exactly the position the rebuilt rows reflect, and the old live table becomes
`rotation_view_old_<time>` with its own tracking record renamed to match, so it stays a
consistent, resumable backup (swap it back to roll back, or drop it with `drop_view`).
A running service keeps folded rotations in memory: restart it after a swap.

Each view table has its meetings table (`<view>_meetings`, see `projections.view_store`):
it is compared, moved and dropped with its view table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore, PostgresRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteRecorder

from events.rotation import Rotation
from projections.ports import ViewSource
from projections.rotation_view import RotationProjector, open_view, reading_view
from projections.view_store import ViewRow, meetings_table

LIVE_TABLE = "rotation_view"
SQLITE_TRACKING_TABLE = "tracking"  # eventsourcing's SQLite tracking recorders share it
Progress = Callable[[int, int], None]
"""Called with (events done, total), counted in global positions."""

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Rebuilt:
    """A read model rebuilt from position 0 into its own table."""

    table_name: str
    position: int
    applied: int
    seconds: float


@dataclass(frozen=True)
class Difference:
    """One way a rotation's row differs between the live and the rebuilt table."""

    rotation_key: str
    rotation_id: str | None
    what: str  # missing_live, missing_rebuilt, version, name, deleted, policy, members, meetings
    live: Any
    rebuilt: Any


@dataclass(frozen=True)
class Comparison:
    """Row-by-row comparison of the live table with a rebuilt one."""

    live_table: str
    rebuilt_table: str
    live_position: int
    rebuilt_position: int
    live_rows: int
    rebuilt_rows: int
    differences: tuple[Difference, ...]

    @property
    def identical(self) -> bool:
        return not self.differences


def new_table_name(prefix: str = f"{LIVE_TABLE}_rebuilt") -> str:
    """Unique, so index names of earlier swapped tables never collide with a new table."""
    return f"{prefix}_{uuid4().hex[:8]}"


# -- rebuild ------------------------------------------------------------------------------


def rebuild(
    app: ViewSource,
    table_name: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 1_000,
) -> Rebuilt:
    """Fold every event from position 0 into a fresh table (dropped first if it exists).

    Progress is reported in global positions: they count events, apart from gaps that
    rolled-back transactions leave on PostgreSQL. Events stored meanwhile are applied too.
    """
    name = _checked(table_name or new_table_name())
    if name == LIVE_TABLE:
        raise ValueError("rebuild into a fresh table, not the live one")
    started = time.monotonic()
    drop_view(app, name)
    projector = RotationProjector(
        app, open_view(app, table_name=name), tracking_name=name, batch_size=batch_size
    )
    total = app.recorder.max_notification_id() or 0
    applied = 0
    if progress:
        progress(0, total)
    while True:
        done = projector.catch_up(limit=batch_size)
        if not done:
            break
        applied += done
        total = max(total, projector.position)
        if progress:
            progress(projector.position, total)
    if progress:
        progress(projector.position, max(total, projector.position))
    return Rebuilt(name, projector.position, applied, time.monotonic() - started)


# -- compare ------------------------------------------------------------------------------


def compare(app: ViewSource, rebuilt_table: str, live_table: str = LIVE_TABLE) -> Comparison:
    """Decode both tables' rows and compare each rotation's standings, name and deletion."""
    live, rebuilt = read_rows(app, live_table), read_rows(app, rebuilt_table)
    differences: list[Difference] = []
    for key in sorted(live.keys() | rebuilt.keys()):
        differences.extend(_row_differences(app, key, live.get(key), rebuilt.get(key)))
    both = sorted(live.keys() & rebuilt.keys())
    if both and all(table_exists(app, meetings_table(t)) for t in (live_table, rebuilt_table)):
        # One rotation's meetings at a time: memory stays bounded by the largest rotation.
        live_view, rebuilt_view = reading_view(app, live_table), reading_view(app, rebuilt_table)
        for key in both:
            was = {m.meeting_id: m for m in live_view.get_meetings(key)}
            now = {m.meeting_id: m for m in rebuilt_view.get_meetings(key)}
            differing = sorted(i for i in was.keys() | now.keys() if was.get(i) != now.get(i))
            if differing:
                rotation_id = decode_row(app, rebuilt[key]).rotation_id
                sides = ({i: side.get(i) for i in differing} for side in (was, now))
                differences.append(Difference(key, rotation_id, "meetings", *sides))
    return Comparison(
        live_table=live_table,
        rebuilt_table=rebuilt_table,
        live_position=tracked_position(app, live_table),
        rebuilt_position=tracked_position(app, rebuilt_table),
        live_rows=len(live),
        rebuilt_rows=len(rebuilt),
        differences=tuple(differences),
    )


def _row_differences(
    app: ViewSource, key: str, live_row: ViewRow | None, rebuilt_row: ViewRow | None
) -> list[Difference]:
    live = decode_row(app, live_row) if live_row else None
    rebuilt = decode_row(app, rebuilt_row) if rebuilt_row else None
    if live is None or rebuilt is None:
        known = live or rebuilt
        assert known is not None
        what = "missing_live" if live is None else "missing_rebuilt"
        versions = (live.version if live else None, rebuilt.version if rebuilt else None)
        return [Difference(key, known.rotation_id, what, *versions)]
    found = []
    pairs = {
        "version": (live.version, rebuilt.version),
        "name": (live.name, rebuilt.name),
        "deleted": (live.deleted, rebuilt.deleted),
        "policy": (live.policy, rebuilt.policy),
        "members": (live.members, rebuilt.members),
    }
    for what, (was, now) in pairs.items():
        if was != now:
            found.append(Difference(key, rebuilt.rotation_id, what, was, now))
    return found


def decode_row(app: ViewSource, row: ViewRow) -> Rotation:
    """A view row holds a snapshot of the folded aggregate: reconstruct it."""
    stored = StoredEvent(
        originator_id=UUID(row.rotation_key),
        originator_version=row.version,
        topic=row.topic,
        state=row.state,
    )
    snapshot = app.mapper.to_domain_event(stored)
    if not isinstance(snapshot, Snapshot):
        raise TypeError(f"view row {row.rotation_key} holds no snapshot: {row.topic}")
    rotation = snapshot.mutate(None)
    assert isinstance(rotation, Rotation)
    return rotation


def read_rows(app: ViewSource, table: str) -> dict[str, ViewRow]:
    """Every row of a view table by rotation key; empty when the table does not exist."""
    table = _checked(table)
    if not table_exists(app, table):
        return {}
    rows: dict[str, ViewRow] = {}
    with _cursor(app, commit=False) as (cursor, pg):
        if pg:
            cursor.execute(
                _pg_sql("SELECT rotation_key, position, version, topic, state FROM {}", app, table)
            )
            for r in cursor.fetchall():
                rows[r["rotation_key"]] = ViewRow(
                    r["rotation_key"], r["position"], r["version"], r["topic"], bytes(r["state"])
                )
        else:
            cursor.execute(f"SELECT rotation_key, position, version, topic, state FROM {table}")
            for r in cursor.fetchall():
                rows[r[0]] = ViewRow(r[0], r[1], r[2], r[3], bytes(r[4]))
    return rows


def tracked_position(app: ViewSource, table: str) -> int:
    """The last notification applied to a view table (its tracking name is its name)."""
    table = _checked(table)
    if not table_exists(app, table):
        return 0
    with _cursor(app, commit=False) as (cursor, pg):
        if pg:
            cursor.execute(
                _pg_sql(
                    "SELECT MAX(notification_id) AS m FROM {} WHERE application_name = %s",
                    app,
                    f"{table}_tracking",
                ),
                (table,),
            )
            row = cursor.fetchone()
            return int(row["m"] or 0) if row else 0
        cursor.execute(
            f"SELECT MAX(notification_id) FROM {SQLITE_TRACKING_TABLE} WHERE application_name = ?",
            (table,),
        )
        found = cursor.fetchone()
        return int(found[0] or 0) if found else 0


# -- swap and drop ------------------------------------------------------------------------


def swap(app: ViewSource, rebuilt_table: str, live_table: str = LIVE_TABLE) -> str | None:
    """Make the rebuilt table the live one in one transaction; returns the backup's name.

    Tables and tracking records move together (see the module docstring). Returns None
    when there was no live table to keep.
    """
    rebuilt_table, live_table = _checked(rebuilt_table), _checked(live_table)
    if rebuilt_table == live_table:
        raise ValueError("the rebuilt table is already the live one")
    if not table_exists(app, rebuilt_table):
        raise LookupError(f"no view table {rebuilt_table!r}")
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    backup = f"{live_table}_old_{stamp}_{uuid4().hex[:4]}"
    had_live = table_exists(app, live_table)
    with _cursor(app, commit=True) as (cursor, pg):
        move = _pg_move if pg else _sqlite_move
        if had_live:
            move(app, cursor, live_table, backup)
        move(app, cursor, rebuilt_table, live_table)
    return backup if had_live else None


def _sqlite_move(app: ViewSource, cursor: Any, old: str, new: str) -> None:
    cursor.execute(f"ALTER TABLE {old} RENAME TO {new}")
    cursor.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (meetings_table(old),)
    )
    if cursor.fetchone() is not None:
        cursor.execute(f"ALTER TABLE {meetings_table(old)} RENAME TO {meetings_table(new)}")
    cursor.execute(
        f"UPDATE {SQLITE_TRACKING_TABLE} SET application_name = ? WHERE application_name = ?",
        (new, old),
    )


def _pg_move(app: ViewSource, cursor: Any, old: str, new: str) -> None:
    """Rename the view table and its tracking table, their indexes, and the tracking name."""
    schema = _pg_datastore(app).schema
    pairs = [(old, new), (f"{old}_tracking", f"{new}_tracking")]
    cursor.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
        (schema, meetings_table(old)),
    )
    if cursor.fetchone() is not None:
        pairs.append((meetings_table(old), meetings_table(new)))
    for old_table, new_table in pairs:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (schema, old_table),
        )
        for (index,) in [(r["indexname"],) for r in cursor.fetchall()]:
            if index.startswith(old_table):
                cursor.execute(
                    _pg_sql("ALTER INDEX {} RENAME TO ", app, index)
                    + _ident(new_table + index[len(old_table) :])
                )
        cursor.execute(_pg_sql("ALTER TABLE {} RENAME TO ", app, old_table) + _ident(new_table))
    cursor.execute(
        _pg_sql(
            "UPDATE {} SET application_name = %s WHERE application_name = %s",
            app,
            f"{new}_tracking",
        ),
        (new, old),
    )


def drop_view(app: ViewSource, table: str) -> None:
    """Drop a view table and its tracking record (never the live one)."""
    table = _checked(table)
    if table == LIVE_TABLE:
        raise ValueError("refusing to drop the live view table")
    with _cursor(app, commit=True) as (cursor, pg):
        if pg:
            for name in (table, f"{table}_tracking", meetings_table(table)):
                cursor.execute(_pg_sql("DROP TABLE IF EXISTS {}", app, name))
        else:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"DROP TABLE IF EXISTS {meetings_table(table)}")
            cursor.execute(
                f"DELETE FROM {SQLITE_TRACKING_TABLE} WHERE application_name = ?", (table,)
            )


def table_exists(app: ViewSource, table: str) -> bool:
    with _cursor(app, commit=False) as (cursor, pg):
        if pg:
            cursor.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                (_pg_datastore(app).schema, table),
            )
        else:
            cursor.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            )
        return cursor.fetchone() is not None


# -- helpers ------------------------------------------------------------------------------


def _datastore(app: ViewSource) -> PostgresDatastore | SQLiteDatastore:
    """The database the application's events (and so its view tables) are in."""
    recorder = app.recorder
    if isinstance(recorder, PostgresRecorder):
        return recorder.datastore
    if isinstance(recorder, SQLiteRecorder):
        return recorder.datastore
    raise TypeError(f"view tables need PostgreSQL or SQLite, not {type(recorder).__name__}")


def _pg_datastore(app: ViewSource) -> PostgresDatastore:
    datastore = _datastore(app)
    if not isinstance(datastore, PostgresDatastore):
        raise TypeError("a PostgreSQL statement on a SQLite store")
    return datastore


@contextmanager
def _cursor(app: ViewSource, commit: bool) -> Iterator[tuple[Any, bool]]:
    """A cursor in one transaction of the application's own database."""
    datastore = _datastore(app)
    with datastore.transaction(commit=commit) as cursor:
        yield cursor, isinstance(datastore, PostgresDatastore)


def _checked(table: str) -> str:
    """Table names go into SQL text on SQLite: allow plain lower-case identifiers only."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"not a plain table name (a-z, 0-9, _; at most 40): {table!r}")
    return table


def _ident(name: str) -> Any:
    from psycopg.sql import Identifier

    return Identifier(name)


def _pg_sql(template: str, app: ViewSource, name: str) -> Any:
    """Format one schema-qualified identifier into `template`'s `{}`."""
    from psycopg.sql import SQL, Identifier

    qualified = SQL("{}.{}").format(Identifier(_pg_datastore(app).schema), Identifier(name))
    return SQL(template).format(qualified)
