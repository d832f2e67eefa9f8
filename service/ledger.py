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

The recorders are the library's own process recorders, chosen through its
`PROCESS_RECORDER_TOPIC` setting (`ledger_recorder_class`). They also take more than one
tracking record per transaction (`more_tracking`), so that a batch fetched from several
partitions is stored at once with the position of each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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


@dataclass(frozen=True)
class Receipt:
    """The outcome of a handled command (or directory message), as stored JSON."""

    key: str
    outcome: bytes


@dataclass(frozen=True)
class Claim:
    """A meeting id taken within a rotation, and who hosts it."""

    rotation_id: str
    meeting_id: str
    host_id: str


class Ledger(Protocol):
    """What the application reads back (on its careful, one-command-at-a-time path)."""

    def select_receipt(self, key: str) -> bytes | None: ...

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool: ...


def _receipt_rows(kwargs: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [(r.key, r.outcome) for r in kwargs.get("receipts", ())]


def _claim_rows(kwargs: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c.rotation_id, c.meeting_id, c.host_id) for c in kwargs.get("claims", ())]


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
            "host_id TEXT, PRIMARY KEY (rotation_id, meeting_id)) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(c, tracking)
        if receipts := _receipt_rows(kwargs):
            c.executemany("INSERT INTO command_receipts VALUES (?, ?)", receipts)
        if claims := _claim_rows(kwargs):
            c.executemany("INSERT INTO meeting_claims VALUES (?, ?, ?)", claims)
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
        for name in (receipts, claims):
            self.check_identifier_length(name.as_string())
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (command_id text PRIMARY KEY, outcome bytea)"
            ).format(schema, receipts),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (rotation_id text, meeting_id text, "
                "host_id text, PRIMARY KEY (rotation_id, meeting_id))"
            ).format(schema, claims),
        ]
        # One statement per table and transaction, the rows as arrays sent in binary: an
        # executemany costs a round of Python work per row in psycopg's pipeline mode.
        self.insert_receipts = SQL(
            "INSERT INTO {}.{} SELECT * FROM unnest(%b::text[], %b::bytea[])"
        ).format(schema, receipts)
        self.insert_claims = SQL(
            "INSERT INTO {}.{} SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])"
        ).format(schema, claims)
        self.select_receipt_statement = SQL(
            "SELECT outcome FROM {}.{} WHERE command_id = %s"
        ).format(schema, receipts)
        self.select_claim_statement = SQL(
            "SELECT 1 AS found FROM {}.{} WHERE rotation_id = %s AND meeting_id = %s"
        ).format(schema, claims)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        for tracking in kwargs.get("more_tracking", ()):
            self._insert_tracking(curs, tracking)
        if receipts := _receipt_rows(kwargs):
            curs.execute(self.insert_receipts, _columns(receipts, 2), prepare=True)
        if claims := _claim_rows(kwargs):
            curs.execute(self.insert_claims, _columns(claims, 3), prepare=True)

    def select_receipt(self, key: str) -> bytes | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_receipt_statement, (key,), prepare=True)
            row = curs.fetchone()
        return None if row is None else bytes(row["outcome"])

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self.select_claim_statement, (rotation_id, meeting_id), prepare=True)
            return curs.fetchone() is not None


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
    digests (HMAC-SHA256 under a key derived from the cipher's), and its host encrypted.
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
        return Claim(rotation, meeting, host)

    def _digest(self, value: str) -> str:
        assert self.digest_key is not None
        return hmac.new(self.digest_key, value.encode(), hashlib.sha256).hexdigest()
