"""The orjson transcoder stores exactly the bytes the library's JSON transcoder would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import JSONTranscoder, Mapper

from events.directory import DirectoryUser, Team, TeamLinks
from events.rotation import Rotation
from service.transcoder import OrjsonTranscoder


def mapper(transcoder: JSONTranscoder) -> Mapper[Any]:
    Application.register_transcodings(Application(), transcoder)
    return Mapper(transcoder=transcoder)


def domain_events() -> list[Any]:
    """Every kind of event the domain stores, with datetimes, nested records and snapshots."""
    at = datetime(2026, 11, 24, 10, 2, tzinfo=UTC)
    rotation = Rotation(rotation_id="sales-æøå", name="Salg 🚀", members=["kari", "ola"], at=at)
    rotation.add_member("per", at=at + timedelta(seconds=1))
    rotation.add_team("emea", ["liv"], at=at)
    rotation.book_meeting("m1", None, {"type": "deal", "id": "42"}, None, at=at)
    rotation.book_meeting("m2", "ola", {"type": "deal", "id": "43"}, at, at=at)
    rotation.toggle_availability("kari", available=False)
    rotation.team_changed("emea", ["liv", "nils"], at=at)
    rotation.rename("Sales")
    snapshot = Snapshot.take(rotation)
    user = DirectoryUser(
        user_id="kari",
        name="Kari",
        seat=True,
        calendar_connected=True,
        calendar_sync=False,
        permissions=["manage_rotations"],
    )
    team = Team(team_id="emea", name="EMEA", members=["kari"])
    links = TeamLinks(team_id="emea")
    links.link("r")
    aggregates = [rotation, user, team, links]
    return [snapshot, *(e for a in aggregates for e in a.collect_events())]


def test_stored_bytes_equal_the_library_transcoders_and_read_back_equal() -> None:
    ours, library = mapper(OrjsonTranscoder()), mapper(JSONTranscoder())
    events = domain_events()
    assert {type(e).__name__ for e in events} >= {"MeetingBooked", "Snapshot", "TeamAdded"}

    for event in events:
        stored = ours.to_stored_event(event)
        assert stored.state == library.to_stored_event(event).state, type(event).__name__
        assert ours.to_domain_event(stored) == event
        assert library.to_domain_event(stored) == event


def test_a_top_level_uuid_keeps_its_type() -> None:
    transcoder = OrjsonTranscoder()
    mapper(transcoder)
    state = {"_id": uuid4(), "at": datetime.now(UTC), "n": [1, 2]}

    assert transcoder.decode(transcoder.encode(state)) == state


def test_no_domain_event_holds_a_uuid_below_the_top_level() -> None:
    """orjson would store such a UUID as a plain string (see service/transcoder.py)."""

    def nested_uuids(value: Any, depth: int) -> int:
        if isinstance(value, UUID):
            return int(depth > 1)
        if isinstance(value, dict):
            return sum(nested_uuids(v, depth + 1) for v in value.values())
        if isinstance(value, list | tuple):
            return sum(nested_uuids(v, depth + 1) for v in value)
        return 0

    for event in domain_events():
        assert nested_uuids(dict(vars(event)), 0) == 0, type(event).__name__


def test_equal_instants_in_other_zones_or_folds_encode_as_the_library_does() -> None:
    from zoneinfo import ZoneInfo

    ours, library = OrjsonTranscoder(), JSONTranscoder()
    for transcoder in (ours, library):
        mapper(transcoder)
    utc = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    oslo = utc.astimezone(ZoneInfo("Europe/Oslo"))  # the same instant, another offset
    folded = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Oslo"))
    state = {
        "first": utc,
        "again": utc,
        "oslo": oslo,
        "folded": folded,
        "unfolded": folded.replace(fold=0),
    }

    for _ in range(2):  # the second time from what was kept
        assert ours.encode(state) == library.encode(state)
    assert ours.decode(ours.encode(state))["oslo"].utcoffset() == oslo.utcoffset()
