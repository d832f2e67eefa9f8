"""Event schema versions and upcasting: events stored by older models still read and fold."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from events.ranking import FEWEST_MEETINGS, TIE_JOIN_ORDER
from events.rotation import NOT_RECORDED, Rotation, rotation_uuid
from projections.audit import audit_history, explain_booking
from projections.point_in_time import rotation_as_of
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from tests.unit.commands import book, ok

RID = "old-r"


def rotation_event_classes() -> list[type[Any]]:
    return sorted(
        (
            value
            for value in vars(Rotation).values()
            if isinstance(value, type)
            and issubclass(value, Rotation.Event)
            and value is not Rotation.Event
        ),
        key=lambda cls: cls.__name__,
    )


def declared_version(cls: type[Any]) -> int | None:
    """class_version as written in events/rotation.py (not inherited from the library)."""
    for klass in cls.__mro__:
        if klass.__module__ == "events.rotation" and "class_version" in vars(klass):
            return int(vars(klass)["class_version"])
    return None


def test_every_rotation_event_declares_its_schema_version() -> None:
    """A new event (or a changed one) must state its version, with an upcast per step."""
    versions = {cls.__name__: declared_version(cls) for cls in rotation_event_classes()}

    assert not [name for name, version in versions.items() if version is None]
    assert versions["MeetingBooked"] == 5
    assert {"Created", "Renamed", "MemberAdded", "MemberRemoved", "Deleted"} <= versions.keys()
    for cls in rotation_event_classes():
        version = declared_version(cls) or 1
        for n in range(1, version):
            assert callable(getattr(cls, f"upcast_v{n}_v{n + 1}")), cls


def test_topics_stay_what_earlier_code_stored() -> None:
    assert get_topic(Rotation.MeetingBooked) == "events.rotation:Rotation.MeetingBooked"
    assert get_topic(Rotation.Created) == "events.rotation:Rotation.Created"


def _dt(value: datetime) -> dict[str, str]:
    """How the library's JSON transcoder writes a datetime."""
    return {"_type_": "datetime_iso", "_data_": value.isoformat()}


def old_booking(
    version: int, when: datetime, meeting_id: str, host_id: str, **extra: Any
) -> StoredEvent:
    """A MeetingBooked as an older model stored it: v1 unless `extra` names a class_version."""
    state = {"timestamp": _dt(when), "meeting_id": meeting_id, "host_id": host_id, **extra}
    return StoredEvent(
        originator_id=rotation_uuid(RID),
        originator_version=version,
        topic="events.rotation:Rotation.MeetingBooked",
        state=json.dumps(state).encode(),
    )


def test_v1_meeting_booked_is_upcast_and_folded(
    open_app: Callable[[], RotationsApplication],
) -> None:
    writer = open_app()
    ok(writer, "CreateRotation", RID, name="Old", members=["a", "b"])
    now = datetime.now(UTC)
    writer.recorder.insert_events(
        [
            # The earliest format: who hosted which meeting, nothing else.
            old_booking(2, now + timedelta(seconds=1), "m-old-1", "b"),
            # A later v1 shape: with the meeting's record and booking time.
            old_booking(
                3,
                now + timedelta(seconds=2),
                "m-old-2",
                "a",
                record={"type": "deal", "id": "7"},
                at=_dt(now + timedelta(seconds=2)),
            ),
        ]
    )
    reader = open_app()  # the current code, reading what the older model stored

    rotation = reader.get_rotation(RID)
    assert rotation.version == 3
    assert {u: m["meetings"] for u, m in rotation.members.items()} == {"a": 1, "b": 1}
    assert rotation.members["b"]["last_assigned_at"] == now + timedelta(
        seconds=1
    )  # at := timestamp
    assert rotation.members["a"]["last_assigned_at"] == now + timedelta(seconds=2)

    events = list(reader.events.get(rotation_uuid(RID)))
    old = events[1]
    assert isinstance(old, Rotation.MeetingBooked)
    assert (old.reason, old.suggested_host_id, old.candidates, old.record, old.starts_at) == (
        NOT_RECORDED,
        None,
        [],
        {},
        None,
    )
    assert isinstance(events[2], Rotation.MeetingBooked)
    assert events[2].record == {"type": "deal", "id": "7"}
    assert (old.hold_id, events[2].hold_id) == (None, None)  # v5: booked no hold

    projector = RotationProjector(reader, open_view(reader))
    projector.catch_up()
    assert projector.suggest(RID).suggestion == rotation.suggest()

    as_of = rotation_as_of(reader, RID, now + timedelta(seconds=1, microseconds=1))
    assert as_of is not None and as_of.version == 2

    entries = audit_history(reader, RID)
    assert [(e.event, e.meeting_id, e.override, e.reason) for e in entries[1:]] == [
        ("MeetingBooked", "m-old-1", None, NOT_RECORDED),
        ("MeetingBooked", "m-old-2", None, NOT_RECORDED),
    ]

    explanation = explain_booking(reader, RID, "m-old-1")
    assert explanation.stored is None and explanation.matches is None
    assert explanation.derived.suggested_host_id == "a"  # a joined first, so a was due
    assert explanation.derived.override  # b hosted instead

    # New bookings after the old ones are stored as v2, with a decision record.
    reply = book(reader, RID, "m-new")
    assert reply.version == 4
    new = explain_booking(reader, RID, "m-new")
    assert new.matches is True
    assert new.stored is not None and new.stored.reason != NOT_RECORDED


def test_events_stored_before_versioning_keep_their_decision_record(
    open_app: Callable[[], RotationsApplication],
) -> None:
    """Earlier code wrote full decision records without class_version: nothing is lost."""
    app = open_app()
    ok(app, "CreateRotation", RID, name="Old", members=["a", "b"])
    ok(app, "AddMember", RID, user_id="c")
    stored = app.recorder.select_events(rotation_uuid(RID))
    now = datetime.now(UTC)
    decision = {
        "suggested_host_id": "c",
        "override": False,
        "reason": FEWEST_MEETINGS,
        "candidates": [],
        "record": {"type": "deal", "id": "9"},
        "starts_at": None,
        "at": _dt(now),
    }
    app.recorder.insert_events([old_booking(len(stored) + 1, now, "m-pre", "c", **decision)])

    event = list(open_app().events.get(rotation_uuid(RID)))[-1]

    assert isinstance(event, Rotation.MeetingBooked)
    assert (event.suggested_host_id, event.reason, event.record) == (
        "c",
        FEWEST_MEETINGS,
        {"type": "deal", "id": "9"},
    )


def test_current_events_are_stored_at_their_current_versions(app: RotationsApplication) -> None:
    ok(app, "CreateRotation", RID, name="New", members=["a"])
    book(app, RID, "m1")

    states = {
        record.topic.rsplit(".", 1)[1]: json.loads(record.state)
        for record in app.recorder.select_events(rotation_uuid(RID))
    }

    assert states["MeetingBooked"]["class_version"] == 5
    assert states["Created"]["class_version"] == 2  # v2: the policy
    assert "class_version" not in states["MeetingBooked"]["candidates"][0]


@pytest.mark.parametrize("missing", ["meeting_id", "host_id"])
def test_a_v1_booking_without_required_fields_fails_loudly(
    app: RotationsApplication, missing: str
) -> None:
    ok(app, "CreateRotation", RID, name="Old", members=["a"])
    broken = {"meeting_id": "m", "host_id": "a"}
    del broken[missing]
    app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=rotation_uuid(RID),
                originator_version=2,
                topic="events.rotation:Rotation.MeetingBooked",
                state=json.dumps({"timestamp": _dt(datetime.now(UTC)), **broken}).encode(),
            )
        ]
    )

    rotation: Any = None
    with pytest.raises(TypeError):
        for event in app.events.get(rotation_uuid(RID)):
            rotation = event.mutate(rotation)  # type: ignore[attr-defined]


def test_v2_candidates_gain_eligibility_and_still_re_derive(store_env: dict[str, str]) -> None:
    """v2 decision records predate the directory: every candidate could host."""
    joined = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)
    app = RotationsApplication(env=dict(store_env), clock=lambda: joined)
    try:
        ok(app, "CreateRotation", RID, name="Old", members=["a", "b"])
        candidates = [
            {
                "user_id": u,
                "meetings": 0,
                "last_assigned_at": None,
                "available": True,
                "joined_at": _dt(joined),
                "join_seq": i,
            }
            for i, u in enumerate(["a", "b"])
        ]
        decision = {
            "suggested_host_id": "a",
            "override": False,
            "reason": TIE_JOIN_ORDER,
            "candidates": candidates,
            "record": {"type": "deal", "id": "1"},
            "starts_at": None,
            "at": _dt(joined + timedelta(minutes=1)),
            "class_version": 2,
        }
        app.recorder.insert_events([old_booking(2, datetime.now(UTC), "m-v2", "a", **decision)])

        explanation = explain_booking(app, RID, "m-v2")

        assert explanation.stored is not None
        assert [(c["eligible"], c["why"]) for c in explanation.stored.candidates] == [
            (True, None),
            (True, None),
        ]
        assert explanation.matches is True, explanation.differences
    finally:
        app.close()
