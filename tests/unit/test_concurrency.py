"""Two application instances on one store: races are retried on fresh state, then `conflict`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from projections.rotation_view import RotationProjector, open_view
from projections.view_store import ViewRow
from service.application import RotationsApplication
from service.contracts import DIRECTORY_ADAPTER, CommandReply
from tests.unit.commands import book, ok, run


def test_a_lost_race_is_retried_on_fresh_state(
    open_app: Callable[[], RotationsApplication], caplog: pytest.LogCaptureFixture
) -> None:
    first, second = open_app(), open_app()
    ok(first, "CreateRotation", "r", name="Race", members=["a", "b"])
    load = second.load
    raced = False

    def load_then_lose_the_race(key: UUID) -> Aggregate | None:
        """first books while second decides on the copy it has just read."""
        nonlocal raced
        found = load(key)
        if not raced:
            raced = True
            assert book(first, "r", "m1").host_id == "a"
        return found

    second.load = load_then_lose_the_race  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="rotations.application")

    # second decides on its stale copy (a, with 0 meetings), loses on save, and decides
    # again on the stored state.
    assert book(second, "r", "m2").host_id == "b"
    lost = [r for r in caplog.records if "optimistic concurrency conflict" in r.getMessage()]
    assert len(lost) == 1
    standings = {s.user_id: s.meetings for s in first.get_rotation("r").standings()}
    assert standings == {"a": 1, "b": 1}


def test_conflict_after_the_retries_run_out(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()
    ok(app, "CreateRotation", "r", name="Race", members=["a"])
    attempts = 0

    def always_lose(*_: object, **__: object) -> list[object]:
        nonlocal attempts
        attempts += 1
        raise IntegrityError("another instance saved first")

    app._save = always_lose  # type: ignore[method-assign]  # fault injection: every save loses
    reply = run(app, "BookMeeting", "r", meeting_id="m1", record={"type": "deal", "id": "1"})
    assert reply.status == "rejected"
    assert reply.error is not None and reply.error.code == "conflict"
    assert attempts == app.conflict_retries + 1


def test_two_read_models_on_one_view_do_not_trip_over_each_other(
    open_app: Callable[[], RotationsApplication],
) -> None:
    first, second = open_app(), open_app()
    ok(first, "CreateRotation", "r", name="Race", members=["a", "b"])
    mine = RotationProjector(first, open_view(first))
    theirs = RotationProjector(second, open_view(second))
    mine.catch_up()
    theirs.suggest("r")  # theirs holds "r" in memory, at the old position
    book(first, "r", "m1")
    mine.catch_up()  # the shared view moves on without theirs

    book(first, "r", "m2")
    theirs.catch_up()  # must skip what is already applied, then apply m2
    assert theirs.position == first.recorder.max_notification_id()
    assert theirs.suggest("r").suggestion == first.get_rotation("r").suggest()


def test_a_row_another_instance_stores_mid_catch_up_is_not_folded_twice(
    open_app: Callable[[], RotationsApplication],
) -> None:
    """Two instances share one view: one may store a batch between the other reading the
    view's position and reading a row, so the row is ahead of the batch being folded."""
    app = open_app()
    ok(app, "CreateRotation", "r", name="Race", members=["a", "b"])
    mine = RotationProjector(app, open_view(app))
    mine.catch_up()
    theirs = RotationProjector(app, open_view(app), cache_size=0)  # reads rows every time
    book(app, "r", "m1")
    read_row = theirs.view.get_row

    def row_after_mine_stored(key: str) -> ViewRow | None:
        mine.catch_up()  # the other instance stores m1's row now
        return read_row(key)

    theirs.view.get_row = row_after_mine_stored  # type: ignore[method-assign,assignment]
    theirs.catch_up()

    assert theirs.position == mine.position == app.recorder.max_notification_id()
    assert theirs.suggest("r").suggestion == app.get_rotation("r").suggest()
    rebuilt = RotationProjector(app, open_view(app, "rebuilt_view"), tracking_name="rebuilt")
    rebuilt.catch_up()
    assert theirs.suggest("r").suggestion == rebuilt.suggest("r").suggestion


def test_a_team_change_losing_many_races_backs_off_and_is_stored(
    open_app: Callable[[], RotationsApplication],
) -> None:
    """A team change writes rotations the command consumer books into at the same time."""
    app = open_app()
    record = app._record_directory
    lost = 0

    def lose_eight_races(*args: Any, **kwargs: Any) -> CommandReply:
        nonlocal lost
        if lost < 8:  # more than the commands' conflict retries
            lost += 1
            raise IntegrityError("a booking saved the rotation first")
        return record(*args, **kwargs)

    app._record_directory = lose_eight_races  # type: ignore[method-assign]
    fact = DIRECTORY_ADAPTER.validate_python(
        {"type": "TeamUpdated", "message_id": "m-1", "team_id": "t", "members": ["a"]}
    )

    assert app.record_directory(fact).status == "accepted"
    assert lost == 8
