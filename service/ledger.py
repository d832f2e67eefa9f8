"""Command receipts and meeting-id claims: rows beside the events, in the same transaction.

A command's receipt (its reply, so a repeated command id gets the same answer) and a
booking's claim of its meeting id (unique per rotation) were once two small aggregates per
command: two more events to create, encode, store, put in the notification log and skip in
every reader of it, for nothing but the uniqueness of their ids. They are bookkeeping, not
domain facts, so they are rows of two tables keyed by what must be unique, inserted by the
process recorder in the transaction of the command's events and tracking record: a repeated
key fails the whole transaction (the library's `IntegrityError`), as a repeated aggregate
id did. The application hands them over as `ProcessingEvent.saved_kwargs`, which the library
passes on to the recorder's `insert_events`.

A claim row is also the meeting index: its `version` is the aggregate version (the
`originator_version`) of the meeting's latest event. Every event about a meeting carries
the meeting's full facts, so deciding a cancel or a reassignment reads that one event back
by its version (`RotationsApplication.find_meeting_event`): a primary-key read in each
table, as fast for a meeting booked a million events ago as for one booked a moment ago,
and the Rotation aggregate never holds its meetings. The booking's claim is inserted with
its version (no extra row per booking); each later event about the meeting moves it on (a
`MeetingMark`, an UPDATE in the same transaction). A column rather than a table of its own:
a separate index table would cost a second row and a second statement per booking, and the
claim's key is already the index's key. Stores made before the index have the table without
the column; it is added when the recorder creates its tables, and their rows keep a NULL
version (`meeting_version` is None, and the meeting is found by reading the history).

Holds take their ids in the same table (`hold_key`): a hold id is unique in its rotation
for ever, and its row's version finds the hold's latest event (taken, booked or released),
so a hold folded away after it expired still answers `hold_expired`, not `unknown_hold`.

The recorders are the library's own process recorders, chosen through its
`PROCESS_RECORDER_TOPIC` setting (`ledger_recorder_class`). They also take more than one
tracking record per transaction (`more_tracking`), so that a batch fetched from several
partitions is stored at once with the position of each.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import Cipher, InfrastructureFactory, StoredEvent
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteFactory, SQLiteProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg.types.numeric import Int8

HOLD_KEY_PREFIX = "\x1fhold\x1f"
"""Starts a hold's key in the claims table; meeting ids may not hold control characters."""


def hold_key(hold_id: str) -> str:
    """The claims-table key of a hold id (never equal to a meeting id)."""
    return HOLD_KEY_PREFIX + hold_id


@dataclass(frozen=True)
class Receipt:
    """The outcome of a handled command (or directory message), as stored JSON."""

    key: str
    outcome: bytes


@dataclass(frozen=True)
class Claim:
    """A meeting id taken within a rotation, who hosts it, and the version (in the rotation)
    of the booking event."""

    rotation_id: str
    meeting_id: str
    host_id: str
    version: int


@dataclass(frozen=True)
class MeetingMark:
    """A later event about a claimed meeting: the version of the meeting's latest event."""

    rotation_id: str
    meeting_id: str
    version: int


class Ledger(Protocol):
    """What the application reads back (on its careful, one-command-at-a-time path)."""

    def select_receipt(self, key: str) -> bytes | None: ...

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool: ...

    def meeting_version(self, rotation_id: str, meeting_id: str) -> int | None:
        """The version of the meeting's latest event; None when the meeting was never
        claimed, or was claimed before the index (`has_claim` tells which)."""
        ...


def _receipt_rows(kwargs: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(r.key, r.outcome) for r in kwargs.get("receipts", ())]


def _claim_rows(kwargs: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(c.rotation_id, c.meeting_id, c.host_id, c.version) for c in kwargs.get("claims", ())]


def _mark_rows(kwargs: dict[str, Any]) -> list[tuple[str, str, int]]:
    """After the claims: a meeting booked earlier in the same transaction is marked too."""
    return [(m.rotation_id, m.meeting_id, m.version) for m in kwargs.get("marks", ())]


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (for `unnest`)."""
    return [[row[i] for row in rows] for i in range(width)]


class SQLiteLedgerRecorder(SQLiteProcessRecorder):
    """The library's SQLite process recorder, also writing receipts and claims."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS command_receipts "
            "(command_id TEXT PRIMARY KEY, outcome BLOB) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS meeting_claims (rotation_id TEXT, meeting_id TEXT, "
            "host_id TEXT, version INTEGER, PRIMARY KEY (rotation_id, meeting_id)) WITHOUT ROWID",
        ]

    def create_table(self) -> None:
        super().create_table()
        # A store made before the meeting index: its claims table has no version column.
        with self.datastore.transaction(commit=True) as c:
            c.execute("SELECT name FROM pragma_table_info('meeting_claims')")
            if "version" not in {row[0] for row in c.fetchall()}:
                # Another process may have added it since (then: duplicate column name).
                with contextlib.suppress(sqlite3.OperationalError):
                    c.execute("ALTER TABLE meeting_claims ADD COLUMN version INTEGER")

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(c, tracking)
        if receipts := _receipt_rows(kwargs):
            c.executemany("INSERT INTO command_receipts VALUES (?, ?)", receipts)
        if claims := _claim_rows(kwargs):
            c.executemany(
                "INSERT INTO meeting_claims (rotation_id, meeting_id, host_id, version) "
                "VALUES (?, ?, ?, ?)",
                claims,
            )
        if marks := _mark_rows(kwargs):
            c.executemany(
                "UPDATE meeting_claims SET version = ? WHERE rotation_id = ? AND meeting_id = ?",
                [(version, rotation, meeting) for rotation, meeting, version in marks],
            )
        return returning

    def select_receipt(self, key: str) -> bytes | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT outcome FROM command_receipts WHERE command_id = ?", (key,))
            row = c.fetchone()
        return None if row is None else bytes(row[0])

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT 1 FROM meeting_claims WHERE rotation_id = ? AND meeting_id = ?",
                (rotation_id, meeting_id),
            )
            return c.fetchone() is not None

    def meeting_version(self, rotation_id: str, meeting_id: str) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT version FROM meeting_claims WHERE rotation_id = ? AND meeting_id = ?",
                (rotation_id, meeting_id),
            )
            row = c.fetchone()
        return None if row is None or row[0] is None else int(row[0])


class PostgresLedgerRecorder(PostgresProcessRecorder):
    """The library's PostgreSQL process recorder, also writing receipts and claims.

    The tables are named after the events table (`rotations_events` gives
    `rotations_command_receipts` and `rotations_meeting_claims`), in the same schema.
    """

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        base = self.events_table_name.removesuffix("_events")
        schema = Identifier(self.datastore.schema)
        receipts = Identifier(f"{base}_command_receipts")
        claims = Identifier(f"{base}_meeting_claims")
        self.claims_table_name = f"{base}_meeting_claims"
        for name in (receipts, claims):
            self.check_identifier_length(name.as_string())
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (command_id text PRIMARY KEY, outcome bytea)"
            ).format(schema, receipts),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (rotation_id text, meeting_id text, "
                "host_id text, version bigint, PRIMARY KEY (rotation_id, meeting_id))"
            ).format(schema, claims),
        ]
        # A store made before the meeting index: its claims table has no version column.
        self.select_version_column = SQL(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s AND column_name = 'version'"
        )
        self.add_version_column = SQL(
            "ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS version bigint"
        ).format(schema, claims)
        # One statement per table and transaction, the rows as arrays sent in binary: an
        # executemany costs a round of Python work per row in psycopg's pipeline mode.
        self.insert_receipts = SQL(
            "INSERT INTO {}.{} SELECT * FROM unnest(%b::text[], %b::bytea[])"
        ).format(schema, receipts)
        self.insert_claims = SQL(
            "INSERT INTO {}.{} (rotation_id, meeting_id, host_id, version) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bigint[])"
        ).format(schema, claims)
        self.update_marks = SQL(
            "UPDATE {}.{} AS c SET version = m.version "
            "FROM unnest(%b::text[], %b::text[], %b::bigint[]) "
            "AS m(rotation_id, meeting_id, version) "
            "WHERE c.rotation_id = m.rotation_id AND c.meeting_id = m.meeting_id"
        ).format(schema, claims)
        self.select_receipt_statement = SQL(
            "SELECT outcome FROM {}.{} WHERE command_id = %s"
        ).format(schema, receipts)
        self.select_claim_statement = SQL(
            "SELECT 1 AS found FROM {}.{} WHERE rotation_id = %s AND meeting_id = %s"
        ).format(schema, claims)
        self.select_version_statement = SQL(
            "SELECT version FROM {}.{} WHERE rotation_id = %s AND meeting_id = %s"
        ).format(schema, claims)

    def create_table(self) -> None:
        super().create_table()
        # Looked up first: an ALTER TABLE locks the table even when the column exists.
        with self.datastore.transaction(commit=True) as curs:
            found = (self.datastore.schema, self.claims_table_name)
            curs.execute(self.select_version_column, found, prepare=False)
            if curs.fetchone() is None:
                curs.execute(self.add_version_column, prepare=False)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(curs, tracking)
        if receipts := _receipt_rows(kwargs):
            curs.execute(self.insert_receipts, _columns(receipts, 2), prepare=True)
        if claims := _claim_rows(kwargs):
            rotations, meetings, hosts, versions = _columns(claims, 4)
            curs.execute(
                self.insert_claims, [rotations, meetings, hosts, _int8(versions)], prepare=True
            )
        if marks := _mark_rows(kwargs):
            rotations, meetings, versions = _columns(marks, 3)
            curs.execute(self.update_marks, [rotations, meetings, _int8(versions)], prepare=True)

    def select_receipt(self, key: str) -> bytes | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_receipt_statement, (key,), prepare=True)
            row = curs.fetchone()
        return None if row is None else bytes(row["outcome"])

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_claim_statement, (rotation_id, meeting_id), prepare=True)
            return curs.fetchone() is not None

    def meeting_version(self, rotation_id: str, meeting_id: str) -> int | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_version_statement, (rotation_id, meeting_id), prepare=True)
            row = curs.fetchone()
        return None if row is None or row["version"] is None else int(row["version"])


def _int8(values: list[int]) -> list[Int8]:
    """As bigints, whatever their size (psycopg picks the smallest type that holds them)."""
    return [Int8(v) for v in values]


def ledger_recorder_class(factory: InfrastructureFactory[Any]) -> type[Ledger]:
    """The ledger recorder for the library's SQLite or PostgreSQL factory."""
    if isinstance(factory, PostgresFactory):
        return PostgresLedgerRecorder
    if isinstance(factory, SQLiteFactory):
        return SQLiteLedgerRecorder
    raise TypeError(f"no receipts and claims tables for {type(factory).__name__}")


class LedgerSeal:
    """Receipts and claims as stored: in clear, or under the events' cipher when one is set.

    A receipt's reply names rotations and hosts, so it is encrypted like an event. A claim is
    only ever looked up by equality, so its rotation and meeting ids are stored as keyed
    digests (HMAC-SHA256 under a key derived from the cipher's), and its host encrypted. A
    meeting mark's keys are the same digests; versions are plain integers (they tell no more
    than the events' own version column).
    """

    def __init__(self, cipher: Cipher | None) -> None:
        self.cipher = cipher
        self.digest_key: bytes | None = None
        if cipher is not None:
            if not isinstance(cipher, AESCipher):
                raise TypeError(f"receipts and claims cannot be sealed by {type(cipher)!r}")
            self.digest_key = hmac.digest(cipher.key, b"meeting-rotations/claims", "sha256")

    def receipt(self, receipt: Receipt) -> Receipt:
        if self.cipher is None:
            return receipt
        return Receipt(receipt.key, self.cipher.encrypt(receipt.outcome))

    def outcome(self, stored: bytes) -> bytes:
        return stored if self.cipher is None else self.cipher.decrypt(stored)

    def claim_key(self, rotation_id: str, meeting_id: str) -> tuple[str, str]:
        if self.digest_key is None:
            return rotation_id, meeting_id
        return self._digest(rotation_id), self._digest(f"{rotation_id}\x00{meeting_id}")

    def claim(self, claim: Claim) -> Claim:
        if self.cipher is None:
            return claim
        rotation, meeting = self.claim_key(claim.rotation_id, claim.meeting_id)
        host = base64.b64encode(self.cipher.encrypt(claim.host_id.encode())).decode()
        return Claim(rotation, meeting, host, claim.version)

    def mark(self, mark: MeetingMark) -> MeetingMark:
        if self.digest_key is None:
            return mark
        rotation, meeting = self.claim_key(mark.rotation_id, mark.meeting_id)
        return MeetingMark(rotation, meeting, mark.version)

    def _digest(self, value: str) -> str:
        assert self.digest_key is not None
        return hmac.new(self.digest_key, value.encode(), hashlib.sha256).hexdigest()
