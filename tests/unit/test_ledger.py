"""Receipts and meeting claims (with the meeting index) as rows beside the events, on SQLite
and PostgreSQL (the index itself: `test_meeting_index`)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

from eventsourcing.persistence import Tracking

from projections.rotation_view import ROTATION_TOPIC_PREFIX
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER, CommandBase
from tests.unit.commands import RECORD, ok

MEMBERS = ["a", "b"]


def booking(rotation_id: str, meeting_id: str, command_id: str | None = None) -> CommandBase:
    return COMMAND_ADAPTER.validate_python(
        {
            "type": "BookMeeting",
            "command_id": command_id or uuid4().hex,
            "rotation_id": rotation_id,
            "actor": "tester",
            "meeting_id": meeting_id,
            "record": RECORD,
        }
    )


def with_rotation(open_app: Callable[[], RotationsApplication]) -> RotationsApplication:
    app = open_app()
    ok(app, "CreateRotation", "r", name="R", members=MEMBERS)
    return app


def topics(app: RotationsApplication) -> list[str]:
    return [n.topic for n in app.recorder.select_notifications(start=1, limit=10_000)]


def test_a_booking_stores_one_event_and_its_receipt_and_claim_as_rows(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = with_rotation(open_app)
    command = booking("r", "m1")
    reply = app.execute(command)

    assert reply.status == "accepted"
    assert all(topic.startswith(ROTATION_TOPIC_PREFIX) for topic in topics(app))
    assert app.ledger.has_claim("r", "m1") and not app.ledger.has_claim("r", "m2")
    # The claim is the meeting index: the version of the booking event.
    assert app.ledger.meeting_version("r", "m1") == reply.version == 2
    assert app.ledger.meeting_version("r", "m2") is None
    # Another instance answers a repeated command id from the row, with the positions.
    assert open_app().execute(command) == reply


def test_a_batch_repeating_a_stored_meeting_id_stores_nothing_of_the_batch_but_its_replies(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = with_rotation(open_app)
    assert app.execute(booking("r", "m1")).status == "accepted"
    before = app.recorder.max_notification_id()
    fresh, repeated = booking("r", "m2"), booking("r", "m1")

    replies = open_app().execute_batch([(fresh, Tracking("t", 1)), (repeated, Tracking("t", 2))])

    assert [r.status for r in replies] == ["accepted", "rejected"]
    assert replies[1].error is not None and replies[1].error.code == "duplicate_meeting"
    # One by one after the batch's transaction failed: m2 once, m1 not again.
    assert app.recorder.max_notification_id() == (before or 0) + 1
    assert app.recorder.max_tracking_id("t") == 2
    assert app.execute(repeated) == replies[1]


def test_a_batch_repeating_a_stored_command_id_gets_the_first_reply(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = with_rotation(open_app)
    first = booking("r", "m1")
    reply = app.execute(first)
    again = booking("r", "m9", command_id=first.command_id)  # same id, other content

    replies = open_app().execute_batch([(booking("r", "m2"), None), (again, None)])

    assert replies[1] == reply
    assert not app.ledger.has_claim("r", "m9")


def test_a_batch_from_several_partitions_stores_each_partitions_position_once(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = with_rotation(open_app)
    items = [
        (booking("r", "m1"), Tracking("p0", 5)),
        (booking("r", "m2"), Tracking("p1", 9)),
        (booking("r", "m3"), Tracking("p0", 6)),
    ]

    replies = app.execute_batch(items)

    assert [r.status for r in replies] == ["accepted"] * 3
    assert (app.recorder.max_tracking_id("p0"), app.recorder.max_tracking_id("p1")) == (6, 9)
    before = app.recorder.max_notification_id()
    assert open_app().execute_batch(items) == replies  # redelivered: the same replies
    assert app.recorder.max_notification_id() == before  # and nothing stored again
