"""Who may do what: the directory's permissions, decided once for every command."""

from __future__ import annotations

from events.directory import MANAGE_ROTATIONS, SCHEDULE_FOR_OTHERS, DirectoryUser
from events.errors import Forbidden


def require_active(actor_id: str, actor: DirectoryUser | None, kind: str) -> DirectoryUser:
    """Unknown or deactivated actors may do nothing."""
    if actor is None or actor.deactivated:
        raise Forbidden(f"actor {actor_id!r} is not an active user ({kind})")
    return actor


def require_manager(actor_id: str, actor: DirectoryUser | None, kind: str) -> None:
    """Changing a rotation needs manage_rotations."""
    if not require_active(actor_id, actor, kind).may(MANAGE_ROTATIONS):
        raise Forbidden(f"{actor_id!r} may not {kind}: needs manage_rotations")


def require_scheduler_for(
    actor_id: str, actor: DirectoryUser | None, kind: str, host_id: str | None
) -> None:
    """Booking for yourself (or for whoever the rotation picks) needs an active user;
    naming someone else as host needs a seat and schedule_for_others."""
    active = require_active(actor_id, actor, kind)
    for_someone_else = host_id is not None and host_id != actor_id
    if for_someone_else and not (active.seat and active.may(SCHEDULE_FOR_OTHERS)):
        raise Forbidden(
            f"{actor_id!r} may not book for {host_id!r}: needs a seat and schedule_for_others"
        )
