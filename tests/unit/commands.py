"""Small helpers for tests that drive RotationsApplication with wire-format commands."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER, DIRECTORY_ADAPTER, CommandReply

RECORD = {"type": "deal", "id": "d1"}


def head(app: RotationsApplication) -> int:
    """The store's last global position (0 when empty)."""
    return app.recorder.max_notification_id() or 0


def run(app: RotationsApplication, type_: str, rotation_id: str, **fields: Any) -> CommandReply:
    """Execute one command built from wire fields, with a fresh command id."""
    message = {"command_id": uuid4().hex, "rotation_id": rotation_id, "actor": "tester", **fields}
    return app.execute(COMMAND_ADAPTER.validate_python({"type": type_, **message}))


def ok(app: RotationsApplication, type_: str, rotation_id: str, **fields: Any) -> CommandReply:
    """Execute a command that must be accepted."""
    reply = run(app, type_, rotation_id, **fields)
    assert reply.status == "accepted", reply.error
    return reply


def book(
    app: RotationsApplication, rotation_id: str, meeting_id: str, host_id: str | None = None
) -> CommandReply:
    fields: dict[str, Any] = {"meeting_id": meeting_id, "record": RECORD}
    if host_id is not None:
        fields["host_id"] = host_id
    return ok(app, "BookMeeting", rotation_id, **fields)


def fact(app: RotationsApplication, type_: str, **fields: Any) -> CommandReply:
    """Record one directory fact (UserUpdated, UserDeactivated, TeamUpdated)."""
    message = {"type": type_, "message_id": uuid4().hex, **fields}
    reply = app.record_directory(DIRECTORY_ADAPTER.validate_python(message))
    assert reply.status == "accepted", reply.error
    return reply


def user(app: RotationsApplication, user_id: str, *, eligible: bool = True, **extra: Any) -> None:
    """A directory user who can host (or, with eligible=False, has no connected calendar)."""
    fields = {"seat": True, "calendar_connected": eligible, "calendar_sync": True, **extra}
    fact(app, "UserUpdated", user_id=user_id, **fields)
