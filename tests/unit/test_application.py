"""RotationsApplication through `execute()`, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import Tracking

from events.rotation import Rotation, rotation_uuid
from projections.point_in_time import suggest_as_of
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER, CommandReply
from tests.unit.commands import head

RID = "r1"


def run(
    app: RotationsApplication, type_: str, tracking: Tracking | None = None, **fields: Any
) -> CommandReply:
    """Execute one command built from wire fields; a fresh command id unless one is given."""
    message = {"command_id": str(uuid4()), "rotation_id": RID, "actor": "tester", **fields}
    command = COMMAND_ADAPTER.validate_python({"type": type_, **message})
    return app.execute(command, tracking)


def book(app: RotationsApplication, meeting_id: str, **fields: Any) -> CommandReply:
    return run(
        app, "BookMeeting", meeting_id=meeting_id, record={"type": "deal", "id": "d1"}, **fields
    )


def accepted(reply: CommandReply) -> CommandReply:
    assert reply.status == "accepted", reply.error
    return reply


def test_lifecycle_commands_are_accepted_with_versions_events_and_positions(
    app: RotationsApplication,
) -> None:
    steps: list[tuple[str, dict[str, Any], str]] = [
        ("CreateRotation", {"name": "Sales", "members": ["a", "b"]}, "Created"),
        ("RenameRotation", {"name": "Sales EMEA"}, "Renamed"),
        ("AddMember", {"user_id": "c"}, "MemberAdded"),
        ("ToggleAvailability", {"user_id": "a", "available": False}, "AvailabilityToggled"),
        (
            "BookMeeting",
            {"meeting_id": "m1", "record": {"type": "deal", "id": "d1"}},
            "MeetingBooked",
        ),
        ("RemoveMember", {"user_id": "c"}, "MemberRemoved"),
        ("DeleteRotation", {}, "Deleted"),
    ]
    positions: list[int] = []

    for version, (type_, fields, event_type) in enumerate(steps, start=1):
        reply = accepted(run(app, type_, **fields))
        assert (reply.rotation_id, reply.version) == (RID, version)
        assert [e.type for e in reply.events] == [event_type]
        positions.append(reply.events[0].position)

    assert positions == sorted(set(positions))
    assert positions[0] > 0


def test_booking_reply_names_the_host(app: RotationsApplication) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a", "b"]))

    assert accepted(book(app, "m1")).host_id == "a"
    assert accepted(book(app, "m2")).host_id == "b"
    assert accepted(book(app, "m3", host_id="b")).host_id == "b"
    assert app.get_rotation(RID).suggest().host_id == "a"


@pytest.mark.parametrize(
    ("type_", "fields", "code"),
    [
        ("CreateRotation", {"name": "Again"}, "rotation_exists"),
        ("CreateRotation", {"name": "Again", "rotation_id": "gone"}, "rotation_exists"),
        ("RenameRotation", {"name": "X", "rotation_id": "nope"}, "unknown_rotation"),
        (
            "BookMeeting",
            {"meeting_id": "m1", "record": {"type": "deal", "id": "d2"}},
            "duplicate_meeting",
        ),
        ("RenameRotation", {"name": "X", "rotation_id": "gone"}, "rotation_deleted"),
        (
            "BookMeeting",
            {"meeting_id": "m9", "record": {"type": "deal", "id": "d2"}, "rotation_id": "gone"},
            "rotation_deleted",
        ),
        ("AddMember", {"user_id": "a"}, "already_member"),
        ("RemoveMember", {"user_id": "z"}, "unknown_member"),
        (
            "BookMeeting",
            {"meeting_id": "m2", "record": {"type": "deal", "id": "d2"}, "rotation_id": "idle"},
            "no_available_member",
        ),
    ],
)
def test_refused_commands_are_rejected_with_codes(
    app: RotationsApplication, type_: str, fields: dict[str, Any], code: str
) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a"]))
    accepted(book(app, "m1"))
    accepted(run(app, "CreateRotation", name="Gone", rotation_id="gone"))
    accepted(run(app, "DeleteRotation", rotation_id="gone"))
    accepted(run(app, "CreateRotation", name="Idle", rotation_id="idle"))
    before = app.recorder.max_notification_id()

    reply = run(app, type_, **fields)

    assert reply.status == "rejected"
    assert reply.error is not None and reply.error.code == code
    assert (reply.version, reply.events, reply.host_id) == (None, [], None)
    rotation_id = fields.get("rotation_id", RID)
    if code != "unknown_rotation":
        assert app.get_rotation(rotation_id).version == (1 if rotation_id == "idle" else 2)
    assert app.recorder.max_notification_id() == before  # no event: only the receipt row
    assert app.find_receipt(reply.command_id or "") == reply


@pytest.mark.parametrize("meeting_id", ["m2", "m1"], ids=["accepted", "rejected"])
def test_repeated_command_id_gets_identical_reply_and_stores_nothing(
    app: RotationsApplication, meeting_id: str
) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a", "b"]))
    accepted(book(app, "m1"))
    command_id = str(uuid4())

    first = book(app, meeting_id, command_id=command_id)
    before = app.recorder.max_notification_id()
    again = book(app, meeting_id, command_id=command_id)

    assert again == first
    assert app.recorder.max_notification_id() == before


def test_repeated_command_id_after_later_commands_keeps_its_positions(
    app: RotationsApplication,
) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a", "b"]))
    command_id = str(uuid4())
    first = accepted(book(app, "m1", command_id=command_id))
    accepted(book(app, "m2"))

    assert book(app, "m1", command_id=command_id) == first


def test_save_records_the_tracking_of_the_handled_message(app: RotationsApplication) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a"], tracking=None))
    assert app.recorder.max_tracking_id("upstream") is None

    accepted(run(app, "RenameRotation", Tracking("upstream", 7), name="Renamed"))
    assert app.recorder.max_tracking_id("upstream") == 7

    assert run(app, "AddMember", Tracking("upstream", 8), user_id="a").status == "rejected"
    assert app.recorder.max_tracking_id("upstream") == 8
    assert app.is_tracked(Tracking("upstream", 8))
    assert not app.is_tracked(Tracking("upstream", 9))


def test_state_survives_a_restart(open_app: Callable[[], RotationsApplication]) -> None:
    first = open_app()
    accepted(run(first, "CreateRotation", name="Sales", members=["a", "b", "c"]))
    accepted(run(first, "ToggleAvailability", user_id="b", available=False))
    accepted(book(first, "m1"))
    rotation = first.get_rotation(RID)
    first.close()

    second = open_app()
    restarted = second.get_rotation(RID)

    assert restarted.version == rotation.version
    assert (restarted.name, restarted.members) == (rotation.name, rotation.members)
    assert restarted.suggest() == rotation.suggest()
    assert restarted.suggest().host_id == "c"
    assert accepted(book(second, "m2")).version == rotation.version + 1


def _history(app: RotationsApplication) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a", "b", "c"]))
    accepted(run(app, "CreateRotation", name="Other", members=["x"], rotation_id="r2"))
    accepted(book(app, "m1"))
    accepted(run(app, "ToggleAvailability", user_id="b", available=False))
    accepted(book(app, "m2"))
    accepted(run(app, "AddMember", user_id="d"))
    accepted(book(app, "m3", host_id="a"))


def test_projector_suggests_what_the_aggregate_suggests(app: RotationsApplication) -> None:
    _history(app)
    projector = RotationProjector(app, open_view(app))

    assert projector.catch_up() == app.recorder.max_notification_id()

    assert projector.position == app.recorder.max_notification_id()
    answer = projector.suggest(RID)
    assert answer.suggestion == app.get_rotation(RID).suggest()
    assert projector.suggest(RID, exclude=["c"]).suggestion == app.get_rotation(RID).suggest(
        exclude=["c"]
    )
    assert projector.suggest("r2").suggestion == app.get_rotation("r2").suggest()


def test_second_projector_resumes_where_the_first_stopped(app: RotationsApplication) -> None:
    _history(app)
    first = RotationProjector(app, open_view(app))
    first.catch_up()

    second = RotationProjector(app, open_view(app))

    assert second.catch_up() == 0
    assert second.position == first.position
    assert second.suggest(RID).suggestion == first.suggest(RID).suggestion


def test_resumed_projector_applies_later_events(app: RotationsApplication) -> None:
    _history(app)
    RotationProjector(app, open_view(app)).catch_up()
    resumed = RotationProjector(app, open_view(app))
    before = head(app)
    accepted(book(app, "m4"))

    assert resumed.catch_up() == head(app) - before
    assert resumed.suggest(RID).suggestion == app.get_rotation(RID).suggest()


def test_projector_with_evicted_cache_applies_later_events(app: RotationsApplication) -> None:
    _history(app)
    projector = RotationProjector(app, open_view(app), cache_size=1)
    projector.catch_up()
    projector.suggest("r2")  # r1 is no longer cached
    before = head(app)
    accepted(book(app, "m4"))

    assert projector.catch_up() == head(app) - before
    assert projector.suggest(RID).suggestion == app.get_rotation(RID).suggest()


def test_suggest_as_of_answers_as_the_rotation_stood_then(app: RotationsApplication) -> None:
    accepted(run(app, "CreateRotation", name="Sales", members=["a", "b", "c"]))
    first = accepted(book(app, "m1"))
    between = datetime.now(UTC)
    accepted(book(app, "m2"))
    booked = [
        e for e in app.events.get(rotation_uuid(RID)) if isinstance(e, Rotation.MeetingBooked)
    ]
    assert booked[0].timestamp <= between < booked[1].timestamp

    then = suggest_as_of(app, RID, between)
    exactly_then = suggest_as_of(app, RID, booked[0].timestamp)

    assert then.suggestion.host_id == "b"
    assert then.position == first.events[0].position
    assert {s.user_id: s.meetings for s in then.suggestion.candidates} == {"a": 1, "b": 0, "c": 0}
    assert exactly_then.suggestion == then.suggestion
    assert suggest_as_of(app, RID, datetime.now(UTC)).suggestion == app.get_rotation(RID).suggest()


def test_a_command_id_is_its_actors_own(app: RotationsApplication) -> None:
    """Another actor reusing a command id reads nothing of the first reply and is refused."""
    first = accepted(run(app, "CreateRotation", name="Sales", members=["a"], command_id="c-1"))

    reused = run(
        app, "CreateRotation", rotation_id="other", name="X", command_id="c-1", actor="eve"
    )

    assert reused.error is not None and reused.error.code == "conflict"
    assert reused.rotation_id == "other" and reused.version is None
    assert run(app, "CreateRotation", name="Sales", members=["a"], command_id="c-1") == first


def test_a_command_id_may_not_take_a_directory_messages_receipt() -> None:
    with pytest.raises(ValueError, match="command_id"):
        COMMAND_ADAPTER.validate_python(
            {
                "type": "DeleteRotation",
                "command_id": "directory:m-42",
                "rotation_id": "r",
                "actor": "eve",
            }
        )
