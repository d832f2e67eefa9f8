"""Materialised-view tables for the rotation read model, on SQLite and PostgreSQL.

Each view class is an eventsourcing tracking recorder: rows and the tracking record of the
last applied notification commit in one transaction, so every event is applied once.

Beside each view table `<view>` is `<view>_meetings`: one row per meeting a rotation booked,
as its booking and lifecycle events left it (host, record, times, status, how often it was
reassigned or rescheduled), keyed by (rotation_key, meeting) and indexed by
(rotation_key, host). Its rows commit with the rotation rows and the tracking record. With
the events encrypted, no meeting row holds an id in clear either (`MeetingSeal`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import Cipher, Tracking, TrackingRecorder
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


BOOKED = "booked"
NO_SHOW = "no_show"
CANCELLED = "cancelled"
MEETING_STATUSES = (BOOKED, NO_SHOW, CANCELLED)
"""A meeting's status: cancelled wins over no_show, which wins over booked."""


def meetings_table(view_table: str) -> str:
    """The meetings table that goes with a view table (renamed and dropped with it)."""
    return f"{view_table}_meetings"


@dataclass(frozen=True)
class MeetingRow:
    """One meeting as the read model has it."""

    rotation_key: str
    meeting_id: str
    host_id: str  # the current host (after any reassignment)
    record_type: str | None  # None: a booking stored before records were required
    record_id: str | None
    booked_at: datetime
    booked_version: int  # the rotation version of the booking: the listing's order
    starts_at: datetime | None  # the current start (after any reschedule)
    status: str  # one of MEETING_STATUSES
    reassignments: int
    reschedules: int
    version: int  # the rotation version of the last event that changed it
    changed_at: datetime  # when that event happened


@dataclass(frozen=True)
class MeetingChange:
    """What one booking or lifecycle event did to a meeting: its facts after the event (every
    lifecycle event carries all of them), and whether it reassigned or rescheduled it (added
    to the stored row's counts)."""

    rotation_key: str
    meeting_id: str
    host_id: str
    record_type: str | None
    record_id: str | None
    booked_at: datetime
    booked_version: int
    starts_at: datetime | None
    status: str
    reassigned: bool
    rescheduled: bool
    version: int
    changed_at: datetime

    def applied_to(self, row: MeetingRow | None) -> MeetingRow:
        """The row after this change, in memory: what the stores' upsert writes."""
        return MeetingRow(
            rotation_key=self.rotation_key,
            meeting_id=self.meeting_id,
            host_id=self.host_id,
            record_type=self.record_type,
            record_id=self.record_id,
            booked_at=self.booked_at,
            booked_version=self.booked_version,
            starts_at=self.starts_at,
            status=self.status,
            reassignments=(row.reassignments if row else 0) + int(self.reassigned),
            reschedules=(row.reschedules if row else 0) + int(self.rescheduled),
            version=self.version,
            changed_at=self.changed_at,
        )


class MeetingSeal:
    """Meeting rows as stored: in clear, or, when the events are encrypted, with nothing of
    them in clear (`ROTATIONS_CIPHER_KEY`).

    The columns looked up by equality (the meeting, the host) hold keyed digests (HMAC-SHA256
    under a key derived from the cipher's, scoped by rotation, so the same user in two
    rotations does not show as the same value); the meeting's facts are one JSON document,
    encrypted as an event is. Versions and counts are plain integers (the events' own version
    column tells as much).
    """

    def __init__(self, cipher: Cipher | None = None) -> None:
        self.cipher = cipher
        self.digest_key: bytes | None = None
        if cipher is not None:
            if not isinstance(cipher, AESCipher):
                raise TypeError(f"meeting rows cannot be sealed by {type(cipher)!r}")
            self.digest_key = hmac.digest(cipher.key, b"meeting-rotations/meetings-view", "sha256")

    def key(self, rotation_key: str, kind: str, value: str) -> str:
        """The stored lookup key of a meeting id (`kind` "meeting") or a host id ("host")."""
        if self.digest_key is None:
            return value
        scoped = f"{rotation_key}\x00{kind}\x00{value}".encode()
        return hmac.new(self.digest_key, scoped, hashlib.sha256).hexdigest()

    def stored(self, change: MeetingChange) -> tuple[Any, ...]:
        """The upsert's parameters, in `_MEETING_COLUMNS` order."""
        facts = {
            "meeting_id": change.meeting_id,
            "host_id": change.host_id,
            "record_type": change.record_type,
            "record_id": change.record_id,
            "booked_at": change.booked_at.isoformat(),
            "starts_at": None if change.starts_at is None else change.starts_at.isoformat(),
            "status": change.status,
            "changed_at": change.changed_at.isoformat(),
        }
        document = json.dumps(facts, separators=(",", ":")).encode()
        return (
            change.rotation_key,
            self.key(change.rotation_key, "meeting", change.meeting_id),
            self.key(change.rotation_key, "host", change.host_id),
            change.booked_version,
            change.version,
            int(change.reassigned),
            int(change.rescheduled),
            document if self.cipher is None else self.cipher.encrypt(document),
        )

    def row(self, values: Sequence[Any]) -> MeetingRow:
        """A stored row (in `_MEETING_COLUMNS` order) as a meeting."""
        document = bytes(values[7])
        facts = json.loads(document if self.cipher is None else self.cipher.decrypt(document))
        starts_at = facts["starts_at"]
        return MeetingRow(
            rotation_key=values[0],
            meeting_id=facts["meeting_id"],
            host_id=facts["host_id"],
            record_type=facts["record_type"],
            record_id=facts["record_id"],
            booked_at=datetime.fromisoformat(facts["booked_at"]),
            booked_version=int(values[3]),
            starts_at=None if starts_at is None else datetime.fromisoformat(starts_at),
            status=facts["status"],
            reassignments=int(values[5]),
            reschedules=int(values[6]),
            version=int(values[4]),
            changed_at=datetime.fromisoformat(facts["changed_at"]),
        )


def in_booking_order(rows: Iterable[MeetingRow]) -> list[MeetingRow]:
    return sorted(rows, key=lambda m: (m.booked_version, m.meeting_id))


_MEETING_COLUMNS = (
    "rotation_key, meeting_key, host_key, booked_version, version, reassignments, reschedules, "
    "facts"
)
# A change replaces the facts (each event carries all of them); reassignments and reschedules
# add up (each event is applied once: its batch commits with the tracking record).
_MEETING_UPSERT = (
    "ON CONFLICT (rotation_key, meeting_key) DO UPDATE SET host_key = excluded.host_key, "
    "booked_version = excluded.booked_version, version = excluded.version, "
    "reassignments = {0}.reassignments + excluded.reassignments, "
    "reschedules = {0}.reschedules + excluded.reschedules, facts = excluded.facts"
)


class RotationViewStore(Protocol):
    """What the projector needs from a view table, whatever the database."""

    def get_row(self, rotation_key: str) -> ViewRow | None: ...

    def get_rows(self, rotation_keys: Sequence[str]) -> dict[str, ViewRow]: ...

    def put_rows(
        self, rows: list[ViewRow], tracking: Tracking, meetings: Sequence[MeetingChange] = ()
    ) -> None: ...

    def max_tracking_id(self, application_name: str) -> int | None: ...

    def get_meetings(self, rotation_key: str, host_id: str | None = None) -> list[MeetingRow]: ...

    def get_meetings_by_id(
        self, rotation_key: str, meeting_ids: Collection[str]
    ) -> dict[str, MeetingRow]: ...

    def forget_untracked_meetings(self, application_name: str) -> None: ...


class SQLiteRotationView(SQLiteTrackingRecorder):
    """Rotation read model in the same SQLite file as the events."""

    def __init__(
        self,
        datastore: SQLiteDatastore,
        table_name: str = "rotation_view",
        seal: MeetingSeal | None = None,
    ) -> None:
        self.view_table = table_name
        self.meetings_table = meetings_table(table_name)
        self.seal = seal or MeetingSeal()
        super().__init__(datastore)

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.view_table} ("
            "rotation_key TEXT PRIMARY KEY, position INTEGER NOT NULL, "
            "version INTEGER NOT NULL, "
            "topic TEXT NOT NULL, state BLOB NOT NULL)"
        )
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.meetings_table} ("
            "rotation_key TEXT NOT NULL, meeting_key TEXT NOT NULL, host_key TEXT NOT NULL, "
            "booked_version INTEGER NOT NULL, version INTEGER NOT NULL, "
            "reassignments INTEGER NOT NULL, reschedules INTEGER NOT NULL, "
            "facts BLOB NOT NULL, PRIMARY KEY (rotation_key, meeting_key))"
        )
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {self.meetings_table}_host "
            f"ON {self.meetings_table} (rotation_key, host_key)"
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

    def put_rows(
        self, rows: list[ViewRow], tracking: Tracking, meetings: Sequence[MeetingChange] = ()
    ) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                f"INSERT INTO {self.view_table} (rotation_key, position, version, topic, state) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (rotation_key) DO UPDATE SET "
                "position = excluded.position, version = excluded.version, "
                "topic = excluded.topic, state = excluded.state",
                [(r.rotation_key, r.position, r.version, r.topic, r.state) for r in rows],
            )
            if meetings:
                c.executemany(
                    f"INSERT INTO {self.meetings_table} ({_MEETING_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    + _MEETING_UPSERT.format(self.meetings_table),
                    [self.seal.stored(m) for m in meetings],
                )
            self._insert_tracking(c, tracking)

    def get_meetings(self, rotation_key: str, host_id: str | None = None) -> list[MeetingRow]:
        """A rotation's meetings (hosted by `host_id` now, if given) in booking order."""
        query = f"SELECT {_MEETING_COLUMNS} FROM {self.meetings_table} WHERE rotation_key = ?"
        params: tuple[str, ...] = (rotation_key,)
        if host_id is not None:
            query += " AND host_key = ?"
            params += (self.seal.key(rotation_key, "host", host_id),)
        with self.datastore.transaction(commit=False) as c:
            c.execute(query, params)
            return in_booking_order(self.seal.row(row) for row in c.fetchall())

    def get_meetings_by_id(
        self, rotation_key: str, meeting_ids: Collection[str]
    ) -> dict[str, MeetingRow]:
        """These meetings of the rotation that have a row, by meeting id."""
        found: dict[str, MeetingRow] = {}
        keys = [self.seal.key(rotation_key, "meeting", m) for m in meeting_ids]
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                c.execute(
                    f"SELECT {_MEETING_COLUMNS} FROM {self.meetings_table} "
                    f"WHERE rotation_key = ? AND meeting_key IN ({','.join('?' * len(chunk))})",
                    (rotation_key, *chunk),
                )
                for values in c.fetchall():
                    meeting = self.seal.row(values)
                    found[meeting.meeting_id] = meeting
        return found

    def forget_untracked_meetings(self, application_name: str) -> None:
        """Drop meeting rows no tracking record stands for (left by a dropped view of the
        same name), in one statement: rows committed with a tracking record stay."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"DELETE FROM {self.meetings_table} WHERE NOT EXISTS "
                "(SELECT 1 FROM tracking WHERE application_name = ?)",
                (application_name,),
            )


class PostgresRotationView(PostgresTrackingRecorder):
    """Rotation read model in the service's PostgreSQL schema."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        table_name: str = "rotation_view",
        seal: MeetingSeal | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.view_table = table_name
        self.meetings_table = meetings_table(table_name)
        self.seal = seal or MeetingSeal()
        schema = Identifier(self.datastore.schema)
        meetings = Identifier(self.meetings_table)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "rotation_key text PRIMARY KEY, position bigint NOT NULL, "
                "version bigint NOT NULL, "
                "topic text NOT NULL, state bytea NOT NULL)"
            ).format(schema, Identifier(table_name))
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "rotation_key text NOT NULL, meeting_key text NOT NULL, host_key text NOT NULL, "
                "booked_version bigint NOT NULL, version bigint NOT NULL, "
                "reassignments bigint NOT NULL, reschedules bigint NOT NULL, "
                "facts bytea NOT NULL, PRIMARY KEY (rotation_key, meeting_key))"
            ).format(schema, meetings)
        )
        self.sql_create_statements.append(
            SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (rotation_key, host_key)").format(
                Identifier(f"{self.meetings_table}_host"), schema, meetings
            )
        )
        select = "SELECT " + _MEETING_COLUMNS + " FROM {0}.{1} WHERE rotation_key = %s"
        self.upsert_meeting = SQL(
            "INSERT INTO {0}.{1} AS {1} ("
            + _MEETING_COLUMNS
            + ") VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            + _MEETING_UPSERT.format("{1}")
        ).format(schema, meetings)
        self.select_meetings = SQL(select).format(schema, meetings)
        self.select_host_meetings = SQL(select + " AND host_key = %s").format(schema, meetings)
        self.select_meetings_by_key = SQL(select + " AND meeting_key = ANY(%s)").format(
            schema, meetings
        )
        self.delete_untracked = SQL(
            "DELETE FROM {0}.{1} WHERE NOT EXISTS "
            "(SELECT 1 FROM {0}.{2} WHERE application_name = %s)"
        ).format(schema, meetings, Identifier(self.tracking_table_name))
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

    def put_rows(
        self, rows: list[ViewRow], tracking: Tracking, meetings: Sequence[MeetingChange] = ()
    ) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(
                self.upsert_row,
                [(r.rotation_key, r.position, r.version, r.topic, r.state) for r in rows],
            )
            if meetings:
                curs.executemany(self.upsert_meeting, [self.seal.stored(m) for m in meetings])
            self._insert_tracking(curs, tracking)

    def get_meetings(self, rotation_key: str, host_id: str | None = None) -> list[MeetingRow]:
        """A rotation's meetings (hosted by `host_id` now, if given) in booking order."""
        with self.datastore.transaction(commit=False) as curs:
            if host_id is None:
                curs.execute(self.select_meetings, (rotation_key,))
            else:
                host_key = self.seal.key(rotation_key, "host", host_id)
                curs.execute(self.select_host_meetings, (rotation_key, host_key))
            return in_booking_order(self._meeting(row) for row in curs.fetchall())

    def get_meetings_by_id(
        self, rotation_key: str, meeting_ids: Collection[str]
    ) -> dict[str, MeetingRow]:
        """These meetings of the rotation that have a row, by meeting id."""
        keys = [self.seal.key(rotation_key, "meeting", m) for m in meeting_ids]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_meetings_by_key, (rotation_key, keys))
            found = [self._meeting(row) for row in curs.fetchall()]
        return {meeting.meeting_id: meeting for meeting in found}

    def forget_untracked_meetings(self, application_name: str) -> None:
        """Drop meeting rows no tracking record stands for (left by a dropped view of the
        same name), in one statement: rows committed with a tracking record stay."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.delete_untracked, (application_name,))

    def _meeting(self, row: Any) -> MeetingRow:
        return self.seal.row([row[name] for name in _MEETING_COLUMNS.split(", ")])


def _view_row(row: Any) -> ViewRow:
    return ViewRow(
        row["rotation_key"], row["position"], row["version"], row["topic"], bytes(row["state"])
    )


def view_class_for(recorder: TrackingRecorder | Any) -> type[TrackingRecorder]:
    """The view class matching the store the application uses."""
    if isinstance(recorder, PostgresRecorder):
        return PostgresRotationView
    return SQLiteRotationView
