"""`rotations replay | audit | explain` on an SQLite store prepared through the application."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from events.policy import DEFAULT_POLICY
from events.ranking import FEWEST_MEETINGS
from projections.audit import explain_booking, explain_meeting
from projections.replay import LIVE_TABLE, read_rows, table_exists
from projections.rotation_view import RotationProjector, key_of, open_view
from service.application import RotationsApplication
from service.audit_render import print_explanation
from service.cli import cli
from service.store import store_environment
from tests.unit import test_audit_v2 as v2
from tests.unit.commands import RECORD, book, ok

RID = "cli-r"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    """A store URL with a small history and a caught-up live read model."""
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    app = RotationsApplication(env=store_environment(url))
    ok(app, "CreateRotation", RID, name="Sales", members=["kari", "ola"])
    book(app, RID, "m1")
    book(app, RID, "m2", host_id="kari")
    ok(app, "ToggleAvailability", RID, user_id="ola", available=False)
    RotationProjector(app, open_view(app)).catch_up()
    app.close()
    yield url


def invoke(store: str, *args: str) -> tuple[int, str]:
    env = {"ROTATIONS_STORE": store, "ROTATIONS_DIRECTORY": "open", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def opened(store: str) -> RotationsApplication:
    return RotationsApplication(env=store_environment(store))


def test_audit_prints_a_table_of_the_history(store: str) -> None:
    code, output = invoke(store, "audit", RID)

    assert code == 0, output
    for expected in ("Created", "MeetingBooked", "AvailabilityToggled", "override of suggested"):
        assert expected in output


def test_audit_json_prints_one_object_per_line(store: str) -> None:
    code, output = invoke(store, "audit", RID, "--json")

    assert code == 0, output
    entries = [json.loads(line) for line in output.splitlines()]
    assert [e["event"] for e in entries] == [
        "Created",
        "MeetingBooked",
        "MeetingBooked",
        "AvailabilityToggled",
    ]
    assert [e["version"] for e in entries] == [1, 2, 3, 4]
    assert entries[2]["override"] is True and entries[2]["suggested_host_id"] == "ola"
    assert all(e["position"] > 0 for e in entries)


def test_audit_of_an_unknown_rotation_fails(store: str) -> None:
    code, output = invoke(store, "audit", "nope")

    assert code == 1
    assert "no rotation 'nope'" in output


def test_explain_prints_the_record_and_its_re_derivation(store: str) -> None:
    code, output = invoke(store, "explain", RID, "m2")

    assert code == 0, output
    assert "stored decision record: suggested ola, override yes" in output
    assert "re-derived from the events before it: suggested ola, override yes" in output
    assert "matches" in output and "MISMATCH" not in output


def test_explain_a_tampered_record_is_a_loud_mismatch(store: str) -> None:
    app = opened(store)
    rotation = app.get_rotation(RID)
    rotation._meeting_booked(
        meeting_id="m-bad",
        host_id="kari",
        suggested_host_id="kari",
        override=False,
        reason=FEWEST_MEETINGS,
        candidates=[],
        record=RECORD,
        starts_at=None,
        at=datetime.now(UTC),
        policy=dict(DEFAULT_POLICY),
        reference_at=datetime.now(UTC),
        window=None,
        preferred_host_id=None,
    )
    app.save(rotation)
    app.close()

    code, output = invoke(store, "explain", RID, "m-bad")

    assert code == 1
    assert "MISMATCH" in output
    assert "candidates: stored 0, re-derived 2" in output


def test_explain_an_unknown_meeting_fails(store: str) -> None:
    code, output = invoke(store, "explain", RID, "m404")

    assert code == 1
    assert "no meeting 'm404'" in output


@pytest.fixture
def v2_store(tmp_path: Path) -> Iterator[str]:
    """A store with rule v2's events: policies, options, credits and the lifecycle."""
    url = f"sqlite:///{tmp_path}/v2.sqlite"
    clock = v2.Clock()
    app = RotationsApplication(env=store_environment(url), clock=clock)
    v2.v2_history(app, clock)
    app.close()
    yield url


def test_audit_shows_credits_with_who_gave_them_and_why(v2_store: str) -> None:
    code, output = invoke(v2_store, "audit", v2.RID)

    assert code == 0, output
    for expected in (
        "policy set: on_join reset → level; window since_reset → week; cap none → 5/week",
        "c levelled on join by the service: credited +2 meetings",
        "credit taken back from a -1 meeting by lead: 'double-booked'",
        "meeting m1 of a cancelled by lead: 'customer'",
        "meeting m2 reassigned by lead from b to a",
        "marked a no-show by lead",
    ):
        assert expected in output, expected


def test_explain_shows_the_inputs_and_every_candidates_fields(v2_store: str) -> None:
    code, output = invoke(v2_store, "explain", v2.RID, "m4")

    assert code == 0, output
    assert "window 2024-05-06T00:00:00+00:00 to 2024-05-13T00:00:00+00:00" in output
    assert "policy on_join level, on_return none, window week" in output
    assert "preferred host none" in output
    for column in ("credits", "held", "weight", "share", "priority", "cap", "hosts"):
        assert column in output, column
    assert "4/200" not in output and "3/200" in output  # c: 0 meetings + 2 credits + 1
    assert "matches" in output and "MISMATCH" not in output


def render(value: object) -> str:
    console = Console(record=True, width=220)
    print_explanation(console, value)  # type: ignore[arg-type]
    return console.export_text()


def test_a_meetings_life_is_printed_in_order(v2_store: str) -> None:
    app = opened(v2_store)
    try:
        life = explain_meeting(app, v2.RID, "m2")
        booking = explain_booking(app, v2.RID, "m2")
    finally:
        app.close()

    text = render(life)

    assert text.index("1. booked") < text.index("2. reassigned")
    assert "meeting m2 in rotation audit-v2: 2 events, now booked, host a" in text
    assert "reassigned by lead from b to a" in text
    assert "excluded (current host)" in text  # b, in the reassignment's candidates
    assert "the mode in force when it was reassigned" in text
    assert "matches: all 2 decision records re-derive exactly" in text
    assert "excluded" not in render(booking)


def test_replay_compares_and_drops_the_rebuilt_table(store: str) -> None:
    code, output = invoke(store, "replay")

    assert code == 0, output
    assert "identical: 1 rotations" in output
    assert "events/s" in output and "ETA" in output
    app = opened(store)
    tables = _view_tables(app)
    app.close()
    # The live table (and what goes with it) stays; nothing of the rebuilt one does.
    assert LIVE_TABLE in tables
    assert not [t for t in tables if t.startswith(f"{LIVE_TABLE}_rebuilt")], tables


def test_replay_reports_differences_with_exit_code_1(store: str) -> None:
    app = opened(store)
    with app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("DELETE FROM rotation_view WHERE rotation_key = ?", (key_of(RID),))
    app.close()

    code, output = invoke(store, "replay")

    assert code == 1
    assert "1 differences" in output and "missing_live" in output


def test_replay_swap_makes_the_rebuilt_table_live(store: str) -> None:
    app = opened(store)
    with app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute("DELETE FROM rotation_view WHERE rotation_key = ?", (key_of(RID),))
    app.close()

    code, output = invoke(store, "replay", "--swap")

    assert code == 0, output
    assert "swapped" in output
    app = opened(store)
    try:
        assert key_of(RID) in read_rows(app, LIVE_TABLE)
        # The old live table is kept under the name the command printed.
        (backup,) = re.findall(r"the old one is kept as (\S+)", output)
        assert backup.startswith(f"{LIVE_TABLE}_old_") and table_exists(app, backup)
    finally:
        app.close()
    assert invoke(store, "replay")[0] == 0


def _view_tables(app: RotationsApplication) -> list[str]:
    with app.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rotation_view%' "
            "ORDER BY name"
        )
        return [row[0] for row in cursor.fetchall()]
