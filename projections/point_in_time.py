"""Point-in-time answers: a rotation as it stood at an instant, from its events alone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from events.errors import RotationDeleted, UnknownRotation
from events.rotation import Rotation, rotation_uuid
from projections.positions import positions_of
from projections.rotation_view import ViewAnswer


def rotation_as_of(app: Any, rotation_id: str, as_of: datetime) -> Rotation | None:
    """Fold the rotation's events recorded at or before `as_of` with the aggregate's own fold."""
    rotation: Rotation | None = None
    for event in app.events.get(rotation_uuid(rotation_id)):
        if event.timestamp > as_of:
            break
        rotation = event.mutate(rotation)
    return rotation


def suggest_as_of(
    app: Any, rotation_id: str, as_of: datetime, exclude: Sequence[str] = ()
) -> ViewAnswer:
    """The suggestion as it would have been answered at `as_of`, and its event position."""
    rotation = rotation_as_of(app, rotation_id, as_of)
    if rotation is None:
        raise UnknownRotation(f"no rotation {rotation_id!r} at {as_of.isoformat()}")
    if rotation.deleted:
        raise RotationDeleted(f"rotation {rotation_id!r} was deleted by {as_of.isoformat()}")
    (position,) = positions_of(app.recorder, rotation.id, rotation.version, rotation.version)
    return ViewAnswer(rotation.suggest(tuple(exclude)), position, rotation)
