"""Rebuilding the read model from position 0, comparing it, and swapping it in."""

from __future__ import annotations

import pytest
from eventsourcing.postgres import PostgresRecorder

from projections.replay import (
    LIVE_TABLE,
    compare,
    drop_view,
    read_rows,
    rebuild,
    swap,
    table_exists,
    tracked_position,
)
from projections.rotation_view import RotationProjector, key_of, open_view
from service.application import RotationsApplication
from tests.unit.commands import book, ok


def history(app: RotationsApplication, prefix: str = "r") -> None:
    ok(app, "CreateRotation", f"{prefix}1", name="Sales", members=["a", "b", "c"])
    ok(app, "CreateRotation", f"{prefix}2", name="Support", members=["x"])
    ok(app, "CreateRotation", f"{prefix}3", name="Gone", members=[])
    for i in range(5):
        book(app, f"{prefix}1", f"m{i}")
    ok(app, "ToggleAvailability", f"{prefix}1", user_id="b", available=False)
    book(app, f"{prefix}1", "m9", host_id="b")
    ok(app, "AddMember", f"{prefix}2", user_id="y")
    ok(app, "DeleteRotation", f"{prefix}3")


def live_projector(app: RotationsApplication) -> RotationProjector:
    projector = RotationProjector(app, open_view(app))
    projector.catch_up()
    return projector


def _execute(app: RotationsApplication, sql: str, *args: object) -> None:
    """Tamper with a view table directly (a corrupt read model, for the comparison)."""
    postgres = isinstance(app.recorder, PostgresRecorder)
    if postgres:
        schema = app.recorder.datastore.schema  # type: ignore[attr-defined]
        sql = sql.replace("rotation_view", f'"{schema}".rotation_view').replace("?", "%s")
    with app.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
        cursor.execute(sql, args)


def test_rebuilt_model_equals_the_live_one_and_reports_progress(
    app: RotationsApplication,
) -> None:
    history(app)
    live_projector(app)
    seen: list[tuple[int, int]] = []

    rebuilt = rebuild(app, progress=lambda done, total: seen.append((done, total)), batch_size=4)
    comparison = compare(app, rebuilt.table_name)

    last = app.recorder.max_notification_id()
    assert rebuilt.position == last and rebuilt.applied == last
    assert seen[0] == (0, last) and seen[-1] == (last, last)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) > 3  # batches of 4 report as they go
    assert comparison.identical, comparison.differences
    assert (comparison.live_rows, comparison.rebuilt_rows) == (3, 3)
    assert comparison.live_position == comparison.rebuilt_position == last


def test_rebuild_into_an_existing_table_starts_afresh(app: RotationsApplication) -> None:
    history(app)
    first = rebuild(app, table_name="rotation_view_again")
    ok(app, "RenameRotation", "r1", name="Renamed")

    second = rebuild(app, table_name="rotation_view_again")

    assert second.applied == (app.recorder.max_notification_id() or 0) > first.applied
    assert tracked_position(app, "rotation_view_again") == second.position


def test_comparison_reports_missing_changed_and_lagging_rows(app: RotationsApplication) -> None:
    history(app)
    live_projector(app)
    _execute(app, "DELETE FROM rotation_view WHERE rotation_key = ?", key_of("r3"))
    _execute(
        app,
        "UPDATE rotation_view SET state = (SELECT state FROM rotation_view "
        "WHERE rotation_key = ?) WHERE rotation_key = ?",
        key_of("r2"),
        key_of("r1"),
    )
    ok(app, "RenameRotation", "r2", name="Late")  # not yet in the live table
    ok(app, "CreateRotation", "r4", name="New", members=["n"])

    rebuilt = rebuild(app)
    comparison = compare(app, rebuilt.table_name)

    found = {(d.rotation_id, d.what) for d in comparison.differences}
    assert found == {
        ("r1", "name"),
        ("r1", "members"),
        ("r2", "version"),
        ("r2", "name"),
        ("r3", "missing_live"),
        ("r4", "missing_live"),
    }
    assert not comparison.identical
    assert comparison.live_position < comparison.rebuilt_position


def test_swap_moves_the_rows_and_the_tracking_record(app: RotationsApplication) -> None:
    history(app)
    projector = live_projector(app)
    _execute(app, "DELETE FROM rotation_view WHERE rotation_key = ?", key_of("r2"))  # corrupt
    rebuilt = rebuild(app)
    rebuilt_rows = read_rows(app, rebuilt.table_name)

    backup = swap(app, rebuilt.table_name)

    assert backup is not None and table_exists(app, backup)
    assert not table_exists(app, rebuilt.table_name)
    assert read_rows(app, LIVE_TABLE) == rebuilt_rows
    assert tracked_position(app, LIVE_TABLE) == rebuilt.position
    assert tracked_position(app, backup) == projector.position  # the backup stays resumable
    assert tracked_position(app, rebuilt.table_name) == 0
    assert len(read_rows(app, backup)) == 2  # the corrupt old table, kept as it was

    # A (restarted) live projector resumes after the rebuilt position: new events only.
    ok(app, "RenameRotation", "r2", name="After swap")
    restarted = RotationProjector(app, open_view(app))
    assert restarted.position == rebuilt.position
    assert restarted.catch_up() == (app.recorder.max_notification_id() or 0) - rebuilt.position
    after = restarted.state("r2")
    assert after is not None and after.name == "After swap"
    assert compare(app, rebuild(app).table_name).identical


def test_swap_twice_and_back_again(app: RotationsApplication) -> None:
    """Index and tracking names never collide, however often tables are swapped."""
    history(app)
    live_projector(app)
    first_backup = swap(app, rebuild(app).table_name)
    second = rebuild(app)
    second_backup = swap(app, second.table_name)
    assert first_backup and second_backup and first_backup != second_backup

    rolled_back = swap(app, second_backup)  # roll back to the previous live table

    assert rolled_back is not None
    assert compare(app, rolled_back).identical
    for table in (first_backup, rolled_back):
        drop_view(app, table)
        assert not table_exists(app, table) and tracked_position(app, table) == 0
    assert compare(app, rebuild(app).table_name).identical


def test_swap_without_a_live_table_just_renames(app: RotationsApplication) -> None:
    history(app)
    rebuilt = rebuild(app)

    assert swap(app, rebuilt.table_name) is None
    assert tracked_position(app, LIVE_TABLE) == rebuilt.position
    assert live_projector(app).suggest("r1").suggestion.host_id is not None


@pytest.mark.parametrize("name", ["Rotation_View", "x; DROP TABLE y", "a" * 41, "1abc"])
def test_table_names_must_be_plain_identifiers(app: RotationsApplication, name: str) -> None:
    with pytest.raises(ValueError):
        rebuild(app, table_name=name)


def test_the_live_table_is_never_dropped_or_rebuilt_in_place(app: RotationsApplication) -> None:
    with pytest.raises(ValueError):
        drop_view(app, LIVE_TABLE)
    with pytest.raises(ValueError):
        rebuild(app, table_name=LIVE_TABLE)
    with pytest.raises(LookupError):
        swap(app, "rotation_view_missing")
