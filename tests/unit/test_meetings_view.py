"""The read model's meetings table: written with the rotation rows from each booking and
lifecycle event, the same from a rebuild, read by `rotations meetings` (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.postgres import PostgresDatastore

from events.rotation import Meeting, Rotation, rotation_uuid
from projections import replay
from projections.catalog import rotation_meetings
from projections.rotation_view import RotationProjector, key_of, open_view, reading_view
from projections.view_store import MeetingRow, meetings_table
from service.application import RotationsApplication
from service.store import CIPHER_KEYS, CIPHER_TOPICS, store_environment
from tests.unit.commands import book, ok
from tests.unit.test_cli_reading import invoke

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def facts_of(app: RotationsApplication, rotation_id: str, meeting_id: str) -> Meeting:
    """The meeting's facts as its latest event left them (a test may read the history)."""
    latest = [
        event
        for event in app.events.get(rotation_uuid(rotation_id))
        if getattr(event, "meeting_id", None) == meeting_id
    ][-1]
    facts: Meeting = latest.facts()  # type: ignore[attr-defined]
    return facts


def change(
    app: RotationsApplication, rotation_id: str, meeting_id: str, action: str, **fields: Any
) -> Rotation:
    """A lifecycle command on the aggregate (as its handler would), saved."""
    rotation = app.get_rotation(rotation_id)
    facts = facts_of(app, rotation_id, meeting_id)
    getattr(rotation, action)(facts, actor="tester", at=datetime.now(UTC), **fields)
    app.save(rotation)
    return rotation


def history(app: RotationsApplication) -> None:
    """Five meetings of "emea": one cancelled after a no-show, one rescheduled twice, one
    reassigned, one no-show, one as booked; and one of "apac"."""
    ok(app, "CreateRotation", "emea", name="EMEA", members=["kari", "ola", "per"])
    ok(app, "CreateRotation", "apac", name="APAC", members=["liv"])
    for meeting_id in ("m1", "m2", "m3", "m4", "m5"):
        book(app, "emea", meeting_id)
    book(app, "apac", "a1")
    change(app, "emea", "m1", "mark_no_show")
    change(app, "emea", "m1", "cancel_meeting", reason="customer")
    change(app, "emea", "m2", "reschedule_meeting", starts_at=START)
    change(app, "emea", "m2", "reschedule_meeting", starts_at=START + timedelta(days=1))
    change(app, "emea", "m3", "reassign_meeting", host_id="per")
    change(app, "emea", "m4", "mark_no_show")


def live_meetings_table(app: RotationsApplication) -> tuple[Any, str]:
    """The store's datastore and the live meetings table's name in SQL (for raw access)."""
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    table = meetings_table(replay.LIVE_TABLE)
    if isinstance(datastore, PostgresDatastore):
        table = f"{datastore.schema}.{table}"
    return datastore, table


def test_the_lifecycle_commands_leave_their_rows(app: RotationsApplication) -> None:
    """Through the command handlers, the live view following the saves as the service's
    does; a rebuild agrees."""
    projector = RotationProjector(app, open_view(app))
    projector.follow_saves_of(app)
    ok(app, "CreateRotation", "emea", name="EMEA", members=["kari", "ola", "per"])
    for meeting_id in ("m1", "m2", "m3", "m4"):
        book(app, "emea", meeting_id)
    ok(app, "CancelMeeting", "emea", meeting_id="m1", reason="customer")
    ok(app, "RescheduleMeeting", "emea", meeting_id="m2", starts_at=START.isoformat())
    ok(app, "ReassignMeeting", "emea", meeting_id="m3", host_id="per")
    ok(app, "ReassignMeeting", "emea", meeting_id="m3")  # to the suggestion among the others
    ok(app, "MarkNoShow", "emea", meeting_id="m4")

    rows = by_id(projector.view.get_meetings(key_of("emea")))

    assert {m: (r.status, r.reassignments, r.reschedules) for m, r in rows.items()} == {
        "m1": ("cancelled", 0, 0),
        "m2": ("booked", 0, 1),
        "m3": ("booked", 2, 0),
        "m4": ("no_show", 0, 0),
    }
    assert rows["m3"].host_id == facts_of(app, "emea", "m3")["host_id"] != "per"
    assert rows["m2"].starts_at == START
    rebuilt = replay.rebuild(app)
    assert replay.compare(app, rebuilt.table_name).identical


def by_id(rows: list[MeetingRow]) -> dict[str, MeetingRow]:
    return {row.meeting_id: row for row in rows}


def test_each_event_leaves_its_meeting_row(app: RotationsApplication) -> None:
    history(app)
    projector = RotationProjector(app, open_view(app))
    projector.catch_up()

    rows = by_id(projector.view.get_meetings(key_of("emea")))

    assert list(rows) == ["m1", "m2", "m3", "m4", "m5"]  # booking order
    hosts = {m: facts_of(app, "emea", m)["host_id"] for m in rows}
    assert {m: r.host_id for m, r in rows.items()} == hosts
    assert rows["m3"].host_id == "per" and rows["m3"].reassignments == 1
    assert {m: r.status for m, r in rows.items()} == {
        "m1": "cancelled",  # cancelled wins over its no-show
        "m2": "booked",
        "m3": "booked",
        "m4": "no_show",
        "m5": "booked",
    }
    assert rows["m2"].reschedules == 2 and rows["m2"].starts_at == START + timedelta(days=1)
    assert (rows["m5"].record_type, rows["m5"].record_id) == ("deal", "d1")
    assert rows["m5"].starts_at is None and rows["m5"].booked_at.tzinfo is not None
    assert rows["m1"].changed_at > rows["m1"].booked_at
    assert [r.meeting_id for r in projector.view.get_meetings(key_of("apac"))] == ["a1"]


def test_meetings_are_found_by_host(app: RotationsApplication) -> None:
    history(app)
    view = open_view(app)
    RotationProjector(app, view).catch_up()

    per = [row.meeting_id for row in view.get_meetings(key_of("emea"), "per")]

    assert "m3" in per
    assert all(row.host_id == "per" for row in view.get_meetings(key_of("emea"), "per"))
    assert list(view.get_meetings_by_id(key_of("emea"), ["m3", "m9"])) == ["m3"]


def test_a_rebuild_from_position_0_gives_the_same_table(app: RotationsApplication) -> None:
    projector = RotationProjector(app, open_view(app))
    app.on_saved(projector.follow_saved)  # the live view follows the saves in memory
    history(app)
    projector.catch_up()

    rebuilt = replay.rebuild(app, batch_size=3)  # lifecycle events in other batches

    for rotation_id in ("emea", "apac"):
        live = projector.view.get_meetings(key_of(rotation_id))
        again = reading_view(app, rebuilt.table_name).get_meetings(key_of(rotation_id))
        assert live == again and live


def test_swap_and_drop_take_the_meetings_table_along(app: RotationsApplication) -> None:
    history(app)
    RotationProjector(app, open_view(app)).catch_up()
    before = open_view(app).get_meetings(key_of("emea"))
    rebuilt = replay.rebuild(app)

    backup = replay.swap(app, rebuilt.table_name)

    assert backup is not None
    assert not replay.table_exists(app, meetings_table(rebuilt.table_name))
    assert reading_view(app, backup).get_meetings(key_of("emea")) == before
    assert RotationProjector(app, open_view(app)).view.get_meetings(key_of("emea")) == before
    replay.drop_view(app, backup)
    assert not replay.table_exists(app, meetings_table(backup))


def test_compare_finds_a_meeting_that_differs(app: RotationsApplication) -> None:
    history(app)
    RotationProjector(app, open_view(app)).catch_up()
    rebuilt = replay.rebuild(app)
    assert replay.compare(app, rebuilt.table_name).identical
    datastore, table = live_meetings_table(app)
    with datastore.transaction(commit=True) as cursor:
        cursor.execute(f"UPDATE {table} SET reschedules = 7 WHERE meeting_key = 'm4'")

    (difference,) = replay.compare(app, rebuilt.table_name).differences

    assert (difference.rotation_id, difference.what) == ("emea", "meetings")
    assert list(difference.live) == list(difference.rebuilt) == ["m4"]
    assert (difference.live["m4"].reschedules, difference.rebuilt["m4"].reschedules) == (7, 0)


def test_followed_saves_write_what_the_log_gives(app: RotationsApplication) -> None:
    live = RotationProjector(app, open_view(app))
    ok(app, "CreateRotation", "emea", name="EMEA", members=["kari", "ola"])
    book(app, "emea", "m1")
    live.catch_up()
    rotation = app.get_rotation("emea")
    booked = facts_of(app, "emea", "m1")
    rotation.reassign_meeting(booked, None, "tester", datetime.now(UTC))

    assert live.follow_saved(app.save(rotation), {rotation.id: rotation})

    table = "from_log"
    from_log = RotationProjector(app, open_view(app, table), tracking_name=table)
    from_log.catch_up()
    (row,) = live.view.get_meetings(key_of("emea"))
    assert row.reassignments == 1 and row.host_id != booked["host_id"]
    assert from_log.view.get_meetings(key_of("emea")) == [row]


def test_a_batch_another_instance_stored_is_not_counted_twice(app: RotationsApplication) -> None:
    history(app)
    first = RotationProjector(app, open_view(app))
    second = RotationProjector(app, open_view(app), cache_size=0)
    first.catch_up()

    assert second.catch_up() == 0  # its batch failed on the tracking record, then read on

    rows = by_id(first.view.get_meetings(key_of("emea")))
    assert rows["m2"].reschedules == 2 and rows["m3"].reassignments == 1


def test_a_view_made_again_under_its_name_starts_without_meetings(
    app: RotationsApplication,
) -> None:
    history(app)
    first = replay.rebuild(app, table_name="again_view")
    replay.drop_view(app, first.table_name)  # the meetings table is left behind

    replay.rebuild(app, table_name="again_view")

    rows = by_id(reading_view(app, "again_view").get_meetings(key_of("emea")))
    assert rows["m2"].reschedules == 2 and rows["m3"].reassignments == 1


def test_the_listing_applies_what_the_view_has_not(app: RotationsApplication) -> None:
    """Events past the view are applied on from the rotation's own events after its row:
    the answer is the fully projected one, filters included."""
    ok(app, "CreateRotation", "emea", name="EMEA", members=["kari", "ola", "per"])
    for meeting_id in ("m1", "m2", "m3", "m4", "m5"):
        book(app, "emea", meeting_id)
    change(app, "emea", "m2", "reschedule_meeting", starts_at=START)
    projector = RotationProjector(app, open_view(app))
    projector.catch_up()
    book(app, "emea", "m6")  # past the view from here on
    change(app, "emea", "m2", "reschedule_meeting", starts_at=START + timedelta(days=1))
    change(app, "emea", "m3", "reassign_meeting", host_id="per")
    change(app, "emea", "m1", "cancel_meeting", reason=None)
    partly = {
        (host, status): rotation_meetings(app, "emea", host, status).meetings
        for host in (None, "per", "kari")
        for status in (None, "booked", "cancelled", "reassigned", "rescheduled")
    }

    projector.catch_up()

    for (host, status), listed in partly.items():
        assert listed == rotation_meetings(app, "emea", host, status).meetings, (host, status)
    per = partly[("per", None)]
    assert "m3" in [m.meeting_id for m in per]
    assert [m.meeting_id for m in partly[(None, "reassigned")]] == ["m3"]
    assert [m.meeting_id for m in partly[(None, "cancelled")]] == ["m1"]
    assert [m.meeting_id for m in partly[(None, None)]][-1] == "m6"


def test_the_listing_needs_no_read_model(app: RotationsApplication) -> None:
    """A store no projector ever ran on (no view tables): the rotation's events give it."""
    history(app)

    listed = rotation_meetings(app, "emea").meetings

    RotationProjector(app, open_view(app)).catch_up()
    assert listed == rotation_meetings(app, "emea").meetings
    assert [m.status for m in listed] == ["cancelled", "booked", "booked", "no_show", "booked"]


def test_an_unknown_rotation_has_no_meetings(app: RotationsApplication) -> None:
    from events.errors import UnknownRotation

    with pytest.raises(UnknownRotation):
        rotation_meetings(app, "nope")


def test_a_status_filter_is_one_of_the_known(app: RotationsApplication) -> None:
    with pytest.raises(ValueError, match="no meeting status 'held'"):
        rotation_meetings(app, "emea", status="held")


def test_with_a_key_the_meetings_hold_no_id_in_clear(store_env: dict[str, str]) -> None:
    """Lookups by meeting and host go through keyed digests; the facts are encrypted."""
    cipher = {name: "eventsourcing.cryptography:AESCipher" for name in CIPHER_TOPICS}
    keys = {name: AESCipher.create_key(32) for name in CIPHER_KEYS[:1]}
    app = RotationsApplication(env={**store_env, **cipher, **keys})
    try:
        ok(app, "CreateRotation", "emea", name="EMEA", members=["alice.zeta", "bob.omega"])
        book(app, "emea", "meeting-secret-1", host_id="bob.omega")
        book(app, "emea", "meeting-secret-2")
        change(app, "emea", "meeting-secret-1", "reassign_meeting", host_id="alice.zeta")
        view = open_view(app)
        RotationProjector(app, view).catch_up()

        alice = view.get_meetings(key_of("emea"), "alice.zeta")
        found = view.get_meetings_by_id(key_of("emea"), ["meeting-secret-1"])
        stored = _raw_meetings(app)
    finally:
        app.close()

    assert [m.meeting_id for m in alice] == ["meeting-secret-1", "meeting-secret-2"]
    assert found["meeting-secret-1"].reassignments == 1
    assert stored and all(
        secret not in stored for secret in (b"alice.zeta", b"bob.omega", b"meeting-secret")
    )


def _raw_meetings(app: RotationsApplication) -> bytes:
    datastore, table = live_meetings_table(app)
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        rows = [
            tuple(row.values()) if isinstance(row, dict) else tuple(row)
            for row in cursor.fetchall()
        ]
    return b"\n".join(
        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        for row in rows
        for value in row
    )


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/meetings.sqlite"
    app = RotationsApplication(env=store_environment(url))
    history(app)
    RotationProjector(app, open_view(app)).catch_up()
    ok(app, "DeleteRotation", "apac")
    app.close()
    yield url


def test_meetings_json_is_one_object_per_meeting(store: str) -> None:
    code, output = invoke(store, "meetings", "emea", "--json")

    assert code == 0, output
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["meeting_id"] for r in rows] == ["m1", "m2", "m3", "m4", "m5"]
    m1, m2, m3 = rows[:3]
    assert m1["status"] == "cancelled" and m1["record"] == {"type": "deal", "id": "d1"}
    assert m2["rescheduled"] is True and m2["reschedules"] == 2
    assert m2["starts_at"] == (START + timedelta(days=1)).isoformat()
    assert m3["host_id"] == "per" and m3["reassigned"] is True and m3["reassignments"] == 1
    assert set(m3) >= {"booked_at", "changed_at", "rotation_id"}


def test_meetings_of_one_member_with_one_status(store: str) -> None:
    code, output = invoke(store, "meetings", "emea", "--member", "per", "--json")
    assert code == 0, output
    assert {json.loads(line)["host_id"] for line in output.splitlines()} == {"per"}

    code, output = invoke(store, "meetings", "emea", "--status", "no_show", "--json")
    assert code == 0, output
    assert [json.loads(line)["meeting_id"] for line in output.splitlines()] == ["m4"]


def test_meetings_prints_a_table(store: str) -> None:
    code, output = invoke(store, "meetings", "emea")

    assert code == 0, output
    for expected in ("emea: 5 meetings", "deal:d1", "cancelled", "no_show", "1x reassigned"):
        assert expected in output
    assert "2x rescheduled" in output


def test_meetings_of_a_deleted_rotation_say_so(store: str) -> None:
    code, output = invoke(store, "meetings", "apac")

    assert code == 0, output
    assert "(deleted)" in output and "a1" in output


def test_meetings_with_an_unknown_status_exit_2(store: str) -> None:
    code, output = invoke(store, "meetings", "emea", "--status", "held")

    assert code == 2
    assert output.startswith("error: --status 'held'") and "Traceback" not in output


def test_meetings_of_an_unknown_rotation_fail(store: str) -> None:
    code, output = invoke(store, "meetings", "nope")

    assert code == 1 and "no rotation 'nope'" in output
