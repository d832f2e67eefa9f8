"""What the write side keeps in memory for speed stays true to the store, on both stores.

The read model applies the transactions its application stores without reading them back,
directory users are cached, and rotations are copied cheaply; none of it may drift from
what a fresh read of the event log says.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from events.rotation import Rotation, rotation_uuid
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER
from tests.unit.commands import RECORD, book, fact, head, ok, user


def followed(app: RotationsApplication) -> RotationProjector:
    """A read model that follows the application's own saves, as the service wires it."""
    projector = RotationProjector(app, open_view(app))
    projector.catch_up()
    projector.follow_saves_of(app)
    return projector


def rebuilt(app: RotationsApplication, table: str) -> RotationProjector:
    """A read model built from the event log alone, in a table of its own."""
    projector = RotationProjector(app, open_view(app, table), tracking_name=table)
    projector.catch_up()
    return projector


def test_own_saves_reach_the_view_without_reading_the_log(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()
    projector = followed(app)
    ok(app, "CreateRotation", "r", name="Sales", members=["a", "b", "c"])
    book(app, "r", "m1")
    ok(app, "ToggleAvailability", "r", user_id="b", available=False)
    book(app, "r", "m2")

    assert projector.position == app.recorder.max_notification_id()
    assert projector.catch_up() == 0  # nothing left to read: the saves were applied
    fresh = rebuilt(app, "rebuilt_view")
    assert projector.suggest("r").suggestion == fresh.suggest("r").suggestion
    assert projector.suggest("r").suggestion == app.get_rotation("r").suggest()
    # A restarted read model reads what the fast path stored, not its memory.
    restarted = RotationProjector(app, open_view(app))
    assert restarted.suggest("r").suggestion == app.get_rotation("r").suggest()


def test_a_writer_in_between_sends_the_view_back_to_the_log(
    open_app: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_app(), open_app()
    projector = followed(mine)
    ok(mine, "CreateRotation", "r", name="Sales", members=["a", "b", "c"])
    book(other, "r", "m1")  # not this read model's application: not applied yet
    book(mine, "r", "m2")  # comes after other's event, so it cannot be applied alone

    assert projector.position < head(mine)
    assert projector.catch_up() > 0
    counts = {s.user_id: s.meetings for s in projector.suggest("r").suggestion.candidates}
    assert counts == {"a": 1, "b": 1, "c": 0}
    assert (
        projector.suggest("r").suggestion == rebuilt(mine, "rebuilt_view").suggest("r").suggestion
    )


def test_changes_by_another_writer_reach_the_command_cache_through_the_log(
    open_app: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_app(), open_app()
    ok(mine, "CreateRotation", "r", name="Sales", members=["a", "b"])  # cached by mine
    ok(other, "AddMember", "r", user_id="d")

    # Decided on a stale copy this would be refused (unknown_member) without any event
    # to conflict on; the log told the cache that "r" changed before mine decided.
    ok(mine, "RemoveMember", "r", user_id="d")
    assert list(mine.get_rotation("r").members) == ["a", "b"]


@pytest.fixture
def open_required(
    store_env: dict[str, str],
) -> Iterator[Callable[[], RotationsApplication]]:
    """Applications that enforce the user directory, closed before the store is dropped."""
    opened: list[RotationsApplication] = []

    def _open() -> RotationsApplication:
        opened.append(RotationsApplication(env=dict(store_env), directory="required"))
        return opened[-1]

    yield _open
    for app in opened:
        app.close()


def test_directory_changes_by_another_instance_reach_the_cache_through_the_log(
    open_required: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_required(), open_required()
    user(other, "kari")
    mine.refresh_caches()
    assert mine.ineligible_users(["kari"]) == {}

    user(other, "kari", eligible=False)
    assert mine.ineligible_users(["kari"]) == {}  # cached until the log is read
    mine.refresh_caches()

    assert mine.ineligible_users(["kari"]) == {"kari": "no_calendar"}


def test_directory_changes_of_the_same_instance_are_seen_at_once(
    open_required: Callable[[], RotationsApplication],
) -> None:
    app = open_required()
    user(app, "kari")
    assert app.ineligible_users(["kari", "nobody"]) == {"nobody": "unknown_user"}

    user(app, "kari", eligible=False)
    user(app, "nobody")

    assert app.ineligible_users(["kari", "nobody"]) == {"kari": "no_calendar"}


def test_a_copied_rotation_shares_nothing_that_changes() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    original = Rotation(rotation_id="r", name="Sales", members=["a", "b"], at=at)
    original.add_team("t", ["c"], at=at)
    before = copy.deepcopy(original.__dict__)

    clone = copy.deepcopy(original)
    clone.book_meeting(meeting_id="m", host_id=None, record={}, starts_at=None, at=at)
    clone.toggle_availability("b", available=False)
    clone.team_changed("t", ["c", "d"], at=at)

    assert original.__dict__.keys() == before.keys()
    for name, value in before.items():
        assert getattr(original, name) == value, name
    immutable = (str, int, bool, type(None), datetime, type(original.id))
    for name, value in original.__dict__.items():
        assert isinstance(value, immutable) or value is not clone.__dict__[name], name


def test_readers_that_arrived_before_a_catch_up_started_share_it(
    open_app: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_app(), open_app()
    projector = followed(mine)
    ok(other, "CreateRotation", "r", name="Sales", members=["a"])
    arrived = time.monotonic()

    projector.refresh(arrived)  # reads other's rotation
    position = projector.position
    book(other, "r", "m1")
    projector.refresh(arrived)  # a catch-up that started after it arrived has finished

    assert projector.position == position
    projector.refresh(time.monotonic())  # arrived later: reads on
    assert projector.position == head(mine) > position


def test_a_resumed_read_model_loads_the_rows_it_continues_together(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()
    for rotation_id in ("r1", "r2", "r3"):
        ok(app, "CreateRotation", rotation_id, name=rotation_id, members=["a", "b"])
        book(app, rotation_id, "m1")
    RotationProjector(app, open_view(app)).catch_up()
    resumed = RotationProjector(app, open_view(app))  # nothing in memory yet
    for rotation_id in ("r1", "r2", "r3"):
        book(app, rotation_id, "m2")
    ok(app, "CreateRotation", "r4", name="new", members=["c"])

    assert resumed.catch_up() > 0

    for rotation_id in ("r1", "r2", "r3", "r4"):
        expected = app.get_rotation(rotation_id).suggest()
        assert resumed.suggest(rotation_id).suggestion == expected
    counts = {s.user_id: s.meetings for s in resumed.suggest("r2").suggestion.candidates}
    assert counts == {"a": 1, "b": 1}


def test_snapshots_are_taken_from_the_saved_rotation_and_read_back_equal(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()
    ok(app, "CreateRotation", "r", name="Sales", members=["a", "b", "c"])
    interval = app.snapshotting_intervals[Rotation]
    bookings = [
        (COMMAND_ADAPTER.validate_python(command), None)
        for command in (
            {
                "type": "BookMeeting",
                "command_id": uuid4().hex,
                "rotation_id": "r",
                "actor": "tester",
                "meeting_id": f"m{i}",
                "record": RECORD,
            }
            for i in range(interval + 5)
        )
    ]
    assert all(reply.status == "accepted" for reply in app.execute_batch(bookings))

    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(rotation_uuid("r")))
    assert [s.originator_version for s in snapshots] == [interval + 6]  # the batch's end
    restarted = open_app()  # nothing cached: the snapshot plus any later events
    stored = restarted.get_rotation("r")
    assert stored.version == interval + 6
    assert stored.suggest() == app.get_rotation("r").suggest()
    counts = {s.user_id: s.meetings for s in stored.standings()}
    assert sorted(counts.values()) == [68, 68, 69]


def test_own_saves_are_not_read_back_to_keep_the_caches_fresh(
    open_app: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_app(), open_app()
    ok(mine, "CreateRotation", "r", name="Sales", members=["a", "b"])
    book(mine, "r", "m1")
    assert mine.changes.position == mine.recorder.max_notification_id()  # skipped over

    book(other, "r", "m2")
    book(mine, "r", "m3")  # read other's booking first (fresh copy: no lost race)
    assert mine.changes.position == mine.recorder.max_notification_id()
    counts = {s.user_id: s.meetings for s in mine.get_rotation("r").standings()}
    assert counts == {"a": 2, "b": 1}


def team_fact(app: RotationsApplication, team_id: str, members: list[str]) -> None:
    fact(app, "TeamUpdated", team_id=team_id, members=members)


def test_a_team_change_decides_on_the_store_not_on_a_stale_cached_rotation(
    open_app: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_app(), open_app()
    team_fact(mine, "t", ["a"])
    ok(mine, "CreateRotation", "r", name="Sales", members=[], teams=["t"])  # cached by mine
    ok(other, "AddMember", "r", user_id="y")  # mine's copy of "r" is now a version behind

    team_fact(mine, "t", ["a", "b"])  # the directory consumer of mine

    rotation = mine.get_rotation("r")
    assert rotation.teams == {"t": ["a", "b"]}
    assert set(rotation.members) == {"a", "b", "y"}


def test_a_team_change_reaches_every_rotation_another_instance_linked(
    open_app: Callable[[], RotationsApplication],
) -> None:
    mine, other = open_app(), open_app()
    team_fact(mine, "t", ["a"])
    ok(mine, "CreateRotation", "r1", name="One", members=[], teams=["t"])  # caches the links
    ok(other, "CreateRotation", "r2", name="Two", members=[], teams=["t"])

    team_fact(mine, "t", ["a", "b"])
    team_fact(mine, "t", ["a", "b", "c"])  # a read-only copy was never re-cached as current

    for rotation_id in ("r1", "r2"):
        assert mine.get_rotation(rotation_id).teams == {"t": ["a", "b", "c"]}


def test_forgetting_everything_empties_a_full_cache_and_it_fills_again(
    store_env: dict[str, str],
) -> None:
    mine = RotationsApplication(env={**store_env, "AGGREGATE_CACHE_MAXSIZE": "3"})
    other = RotationsApplication(env=dict(store_env))
    try:
        for rotation_id in ("r1", "r2", "r3", "r4"):
            ok(mine, "CreateRotation", rotation_id, name=rotation_id, members=["x"])
        ok(other, "AddMember", "r4", user_id="y")
        mine.changes.follow(most=0)  # "very much changed": everything is forgotten

        ok(mine, "RemoveMember", "r4", user_id="y")  # decided on the stored rotation
        ok(mine, "CreateRotation", "r5", name="r5", members=["x"])  # a new key fits again
        assert list(mine.get_rotation("r4").members) == ["x"]
    finally:
        mine.close()
        other.close()
