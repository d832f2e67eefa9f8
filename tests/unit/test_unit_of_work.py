"""A rejected command stores nothing, alone or in a batch, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from events.directory import team_links_uuid
from events.rotation import rotation_uuid
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER, CommandBase, CommandReply
from tests.unit.commands import fact, user


def command(type_: str, rotation_id: str, **fields: Any) -> CommandBase:
    message = {"command_id": uuid4().hex, "rotation_id": rotation_id, "actor": "boss", **fields}
    return COMMAND_ADAPTER.validate_python({"type": type_, **message})


@pytest.fixture
def strict_app(store_env: dict[str, str]) -> Iterator[RotationsApplication]:
    """A directory-enforcing application with a manager, two users and one known team."""
    app = RotationsApplication(env=dict(store_env), directory="required")
    user(app, "boss", permissions=["manage_rotations", "schedule_for_others"])
    user(app, "kari")
    user(app, "ola")
    fact(app, "TeamUpdated", team_id="known", members=["kari", "ola"])
    yield app
    app.close()


def _stored_nothing_of(app: RotationsApplication, rotation_id: str, before: int) -> None:
    assert app.recorder.max_notification_id() == before
    assert rotation_uuid(rotation_id) not in app.repository
    assert team_links_uuid("known") not in app.repository


def test_a_create_rejected_after_its_first_team_stores_nothing(
    strict_app: RotationsApplication,
) -> None:
    before = strict_app.recorder.max_notification_id() or 0
    rejected = strict_app.execute(
        command("CreateRotation", "emea", name="EMEA", teams=["known", "unknown"])
    )

    assert rejected.status == "rejected"
    assert rejected.error is not None and rejected.error.code == "unknown_member"
    _stored_nothing_of(strict_app, "emea", before)
    # The corrected command is handled as if the rejected one had never come.
    corrected = strict_app.execute(command("CreateRotation", "emea", name="EMEA", teams=["known"]))
    assert corrected.status == "accepted", corrected.error
    assert [e.type for e in corrected.events] == ["Created", "TeamAdded"]
    assert strict_app.get_rotation("emea").teams == {"known": ["kari", "ola"]}


def test_a_rejected_command_in_a_batch_leaves_no_trace_for_the_others(
    strict_app: RotationsApplication,
) -> None:
    before = strict_app.recorder.max_notification_id() or 0
    replies: list[CommandReply] = strict_app.execute_batch(
        [
            (command("CreateRotation", "emea", name="EMEA", teams=["known", "unknown"]), None),
            (command("CreateRotation", "emea", name="EMEA", teams=["known"]), None),
            (command("AddTeam", "emea", team_id="unknown"), None),
            (
                command("BookMeeting", "emea", meeting_id="m1", record={"type": "deal", "id": "1"}),
                None,
            ),
        ]
    )

    assert [r.status for r in replies] == ["rejected", "accepted", "rejected", "accepted"]
    assert [r.error.code for r in replies if r.error] == ["unknown_member", "unknown_member"]
    rotation = strict_app.get_rotation("emea")
    assert rotation.teams == {"known": ["kari", "ola"]}
    assert rotation.version == 3  # Created, TeamAdded, MeetingBooked
    # and the team link: Started, Linked
    assert (strict_app.recorder.max_notification_id() or 0) - before == 5
    created, team_added = (e.position or 0 for e in replies[1].events)
    assert replies[3].events[0].position == team_added + 1 == created + 2


def test_a_rejected_booking_claims_no_meeting_id(
    open_app: Callable[[], RotationsApplication], tmp_path: Path
) -> None:
    app = open_app()
    app.execute(command("CreateRotation", "r", name="R", members=[]))
    booking = command("BookMeeting", "r", meeting_id="m1", record={"type": "deal", "id": "1"})
    assert app.execute(booking).error is not None  # nobody to host: no_available_member
    assert not app.has_claim("r", "m1")
    app.execute(command("AddMember", "r", user_id="kari"))
    again = command("BookMeeting", "r", meeting_id="m1", record={"type": "deal", "id": "1"})
    assert app.execute(again).host_id == "kari"
