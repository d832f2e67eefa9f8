"""The meeting index (the claim row's version of the meeting's latest event), on SQLite and
PostgreSQL: written with the booking, moved on by later marks in the same transaction or
another, never by a rejected command; a store from before the index is migrated and its
meetings found in the history; under a cipher the keys are digests and lookups still work.

The lifecycle events (cancel, reschedule, ...) are not here yet: a test command re-books a
meeting (a MeetingBooked naming it, with new facts) and marks it with that event."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.cryptography import AESCipher
from psycopg.sql import SQL, Identifier

import service.application as application
from events.errors import RotationError
from events.rotation import Rotation
from service import contracts as c
from service.application import RotationsApplication
from service.cipher_check import AES_CIPHER_TOPIC
from service.handlers import HANDLERS, Handler
from service.ledger import PostgresLedgerRecorder, SQLiteLedgerRecorder
from service.store import CIPHER_KEYS, CIPHER_TOPICS
from service.unit_of_work import CommandScope
from tests.unit.commands import RECORD, book, ok, run

RID = "r"
MEMBERS = ["a", "b"]


class Rebook(c.CommandBase):
    """A stand-in for a lifecycle command: the meeting's next event, with a new host."""

    meeting_id: str
    host_id: str
    refuse: bool = False


class Refused(RotationError):
    code = "refused"


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[Rotation.Event | None]:
    """`Rebook` handled: what each one found as the meeting's latest event."""
    found: list[Rotation.Event | None] = []

    def rebook(scope: CommandScope, command: Rebook) -> str:
        rotation = scope.rotation(command.rotation_id)
        found.append(scope.meeting_event(command.rotation_id, command.meeting_id))
        rotation.book_meeting(
            meeting_id=command.meeting_id,
            host_id=command.host_id,
            record=RECORD,
            starts_at=None,
            at=scope.now,
        )
        event = rotation.pending_events[-1]
        assert isinstance(event, Rotation.Event)
        scope.mark_meeting(command.rotation_id, command.meeting_id, event)
        if command.refuse:
            raise Refused("refused after marking")
        return command.host_id

    kind: type[c.CommandBase] = Rebook
    monkeypatch.setitem(HANDLERS, kind, Handler(rebook, lambda *_: None))
    return found


def rebook(meeting_id: str, host_id: str, refuse: bool = False) -> Rebook:
    return Rebook(
        command_id=uuid4().hex,
        rotation_id=RID,
        actor="tester",
        meeting_id=meeting_id,
        host_id=host_id,
        refuse=refuse,
    )


def booking(meeting_id: str) -> c.CommandBase:
    return c.COMMAND_ADAPTER.validate_python(
        {
            "type": "BookMeeting",
            "command_id": uuid4().hex,
            "rotation_id": RID,
            "actor": "tester",
            "meeting_id": meeting_id,
            "record": RECORD,
        }
    )


def index_rows(app: RotationsApplication) -> dict[tuple[str, str], int | None]:
    """The claims table as stored: (rotation, meeting) keys to versions."""
    recorder = app.recorder
    if isinstance(recorder, PostgresLedgerRecorder):
        table = Identifier(recorder.datastore.schema), Identifier(recorder.claims_table_name)
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT rotation_id, meeting_id, version FROM {}.{}").format(*table))
            return {(r["rotation_id"], r["meeting_id"]): r["version"] for r in curs.fetchall()}
    assert isinstance(recorder, SQLiteLedgerRecorder)
    with recorder.datastore.transaction(commit=False) as cur:
        cur.execute("SELECT rotation_id, meeting_id, version FROM meeting_claims")
        return {(r[0], r[1]): r[2] for r in cur.fetchall()}


def drop_version_column(app: RotationsApplication) -> None:
    """Make the store one of a build before the index: claims without versions."""
    recorder = app.recorder
    if isinstance(recorder, PostgresLedgerRecorder):
        table = Identifier(recorder.datastore.schema), Identifier(recorder.claims_table_name)
        with recorder.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("ALTER TABLE {}.{} DROP COLUMN version").format(*table))
        return
    assert isinstance(recorder, SQLiteLedgerRecorder)
    with recorder.datastore.transaction(commit=True) as cur:
        cur.execute("ALTER TABLE meeting_claims DROP COLUMN version")


def latest(app: RotationsApplication, meeting_id: str) -> tuple[str, str, int]:
    """The meeting's latest event found by `find_meeting_event`: (meeting, host, version)."""
    found = app.find_meeting_event(RID, meeting_id)
    assert isinstance(found, Rotation.MeetingBooked), found
    return found.meeting_id, found.host_id, found.originator_version


@pytest.fixture
def rotation(app: RotationsApplication) -> RotationsApplication:
    ok(app, "CreateRotation", RID, name="R", members=MEMBERS)
    return app


def test_a_booking_writes_its_version_and_is_found_by_it(rotation: RotationsApplication) -> None:
    reply = book(rotation, RID, "m1", host_id="a")

    assert index_rows(rotation) == {(RID, "m1"): reply.version}
    assert latest(rotation, "m1") == ("m1", "a", 2)
    assert rotation.find_meeting_event(RID, "m2") is None
    assert rotation.find_meeting_event("no-such-rotation", "m1") is None


def test_a_later_event_in_another_transaction_moves_the_index_on(
    rotation: RotationsApplication, seen: list[Rotation.Event | None]
) -> None:
    book(rotation, RID, "m1", host_id="a")
    book(rotation, RID, "m2", host_id="a")

    reply = rotation.execute(rebook("m1", "b"))

    assert reply.status == "accepted", reply.error
    assert isinstance(seen[0], Rotation.MeetingBooked) and seen[0].originator_version == 2
    assert index_rows(rotation) == {(RID, "m1"): 4, (RID, "m2"): 3}
    assert latest(rotation, "m1") == ("m1", "b", 4)


def test_in_one_batch_each_command_sees_the_meetings_pending_event(
    rotation: RotationsApplication,
    seen: list[Rotation.Event | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book(rotation, RID, "m0", host_id="a")

    def alone(*_: Any) -> None:
        raise AssertionError("the batch fell back to one command at a time")

    monkeypatch.setattr(rotation, "execute", alone)
    replies = rotation.execute_batch(
        [
            (booking("m1"), None),
            (rebook("m1", "b"), None),
            (rebook("m1", "a"), None),
            (rebook("m0", "b"), None),
        ]
    )

    assert [r.status for r in replies] == ["accepted"] * 4
    # Versions: m0 booked at 2; m1 booked at 3, re-booked at 4 and 5; m0 re-booked at 6.
    assert [e.originator_version if e else None for e in seen] == [3, 4, 2]
    assert isinstance(seen[1], Rotation.MeetingBooked) and seen[1].host_id == "b"
    assert index_rows(rotation) == {(RID, "m0"): 6, (RID, "m1"): 5}
    assert latest(rotation, "m1") == ("m1", "a", 5)


def test_a_rejected_command_leaves_no_mark_alone_or_in_a_batch(
    rotation: RotationsApplication, seen: list[Rotation.Event | None]
) -> None:
    book(rotation, RID, "m1", host_id="a")

    alone = rotation.execute(rebook("m1", "b", refuse=True))
    batch = rotation.execute_batch([(rebook("m1", "b", refuse=True), None), (booking("m2"), None)])

    assert alone.error is not None and alone.error.code == "refused"
    assert [r.status for r in batch] == ["rejected", "accepted"]
    assert index_rows(rotation) == {(RID, "m1"): 2, (RID, "m2"): 3}
    assert latest(rotation, "m1") == ("m1", "a", 2)


def test_a_marked_meeting_id_is_still_taken(
    rotation: RotationsApplication, seen: list[Rotation.Event | None]
) -> None:
    book(rotation, RID, "m1", host_id="a")
    assert rotation.execute(rebook("m1", "b")).status == "accepted"

    again = run(rotation, "BookMeeting", RID, meeting_id="m1", record=RECORD)
    in_batch = rotation.execute_batch([(booking("m2"), None), (booking("m1"), None)])

    assert again.error is not None and again.error.code == "duplicate_meeting"
    assert [r.error.code if r.error else None for r in in_batch] == [None, "duplicate_meeting"]
    assert index_rows(rotation) == {(RID, "m1"): 3, (RID, "m2"): 4}


def test_a_store_from_before_the_index_is_migrated_and_read_by_the_history(
    open_app: Callable[[], RotationsApplication],
    seen: list[Rotation.Event | None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = open_app()
    ok(old, "CreateRotation", RID, name="R", members=MEMBERS)
    for n in range(6):
        book(old, RID, f"m{n}", host_id="a")
    drop_version_column(old)
    old.close()

    app = open_app()  # adds the column back; the rows keep no version
    monkeypatch.setattr(application, "LEGACY_SCAN_PAGE", 2)  # the history read in pages
    caplog.set_level(logging.INFO, logger="rotations.application")

    assert set(index_rows(app).values()) == {None}
    assert app.ledger.meeting_version(RID, "m0") is None
    assert latest(app, "m0") == ("m0", "a", 2)
    assert [r.getMessage() for r in caplog.records if "before the meeting index" in r.message]
    caplog.clear()
    assert app.find_meeting_event(RID, "never") is None
    assert not caplog.records  # an unknown meeting reads no history

    # Its next event indexes it; a new booking is indexed from the start.
    assert app.execute(rebook("m0", "b")).status == "accepted"
    book(app, RID, "m9", host_id="a")
    caplog.clear()
    assert index_rows(app)[(RID, "m0")] == 8 and index_rows(app)[(RID, "m9")] == 9
    assert latest(app, "m0") == ("m0", "b", 8)
    assert not caplog.records


@pytest.fixture
def sealed_app(store_env: dict[str, str]) -> Iterator[RotationsApplication]:
    key = AESCipher.create_key(32)
    cipher = {
        **{name: key for name in CIPHER_KEYS},
        **{name: AES_CIPHER_TOPIC for name in CIPHER_TOPICS},
    }
    app = RotationsApplication(env={**store_env, **cipher})
    yield app
    app.close()


def test_under_a_cipher_the_index_keys_are_digests_and_lookups_work(
    sealed_app: RotationsApplication, seen: list[Rotation.Event | None]
) -> None:
    app = sealed_app
    ok(app, "CreateRotation", RID, name="R", members=MEMBERS)
    book(app, RID, "m1", host_id="a")
    book(app, RID, "m2", host_id="a")
    assert app.execute(rebook("m1", "b")).status == "accepted"

    assert index_rows(app) == {
        app.seal.claim_key(RID, "m1"): 4,
        app.seal.claim_key(RID, "m2"): 3,
    }
    assert all(RID not in key and "m1" not in key[1] for key in index_rows(app))
    assert latest(app, "m1") == ("m1", "b", 4)
    assert app.find_meeting_event(RID, "m3") is None
