"""Point-in-time answers: a rotation as it stood at an instant, from its events alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import takewhile
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import BaseAggregate

from events.directory import DirectoryUser, ineligibility, user_uuid
from events.errors import RotationDeleted, UnknownRotation
from events.fold import aggregate_events, fold
from events.rotation import Rotation, rotation_uuid
from projections.directory_mode import ModeHistory
from projections.ports import AuditSource, EventSource
from projections.positions import positions_of
from projections.rotation_view import ViewAnswer

A = TypeVar("A", bound=BaseAggregate[Any])


def fold_as_of(app: EventSource, aggregate_id: UUID, as_of: datetime) -> A | None:
    """The aggregate as its events recorded at or before `as_of` made it (annotate the result).

    Reading stops at the first later event: events are stored in time order.
    """
    events = aggregate_events(app.events.get(aggregate_id))
    state: A | None = fold(takewhile(lambda event: event.timestamp <= as_of, events))
    return state


def rotation_as_of(app: EventSource, rotation_id: str, as_of: datetime) -> Rotation | None:
    """The rotation as it stood at `as_of`."""
    rotation: Rotation | None = fold_as_of(app, rotation_uuid(rotation_id), as_of)
    return rotation


def user_as_of(app: EventSource, user_id: str, as_of: datetime) -> DirectoryUser | None:
    """A directory user as the directory had described them at `as_of`."""
    user: DirectoryUser | None = fold_as_of(app, user_uuid(user_id), as_of)
    return user


def ineligible_as_of(
    app: AuditSource, user_ids: Sequence[str], as_of: datetime
) -> tuple[dict[str, str], int]:
    """Who could not host at `as_of` and why, and the last directory position that says so."""
    if not ModeHistory(app).required_at(as_of):
        return {}, 0
    why: dict[str, str] = {}
    position = 0
    for user_id in user_ids:
        user = user_as_of(app, user_id, as_of)
        reason = ineligibility(user)
        if reason is not None:
            why[user_id] = reason
        if user is not None:
            (last,) = positions_of(app.recorder, user.id, user.version, user.version)
            position = max(position, last)
    return why, position


def suggest_as_of(
    app: AuditSource,
    rotation_id: str,
    as_of: datetime,
    exclude: Sequence[str] = (),
    starts_at: datetime | None = None,
    preferred_host_id: str | None = None,
) -> ViewAnswer:
    """The suggestion as it would have been answered at `as_of`, and its event position."""
    rotation = rotation_as_of(app, rotation_id, as_of)
    if rotation is None:
        raise UnknownRotation(f"no rotation {rotation_id!r} at {as_of.isoformat()}")
    if rotation.deleted:
        raise RotationDeleted(f"rotation {rotation_id!r} was deleted by {as_of.isoformat()}")
    (position,) = positions_of(app.recorder, rotation.id, rotation.version, rotation.version)
    ineligible, directory_position = ineligible_as_of(app, list(rotation.members), as_of)
    suggestion = rotation.suggest(as_of, tuple(exclude), ineligible, starts_at, preferred_host_id)
    return ViewAnswer(suggestion, max(position, directory_position), rotation)
