"""One handler per command: a table from command type to a short function.

Each handler gets the rotation (or creates it), lets the aggregate decide, and returns the
host it assigned, if any; saving is the unit of work's job. Permissions are the table's
second column, checked before the handler runs, by the rules in `events.permissions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from events.errors import IneligibleMember, UnknownMember
from events.permissions import require_manager, require_scheduler_for
from events.rotation import Rotation
from service import contracts as c
from service.unit_of_work import CommandScope

C = TypeVar("C", bound=c.CommandBase)
Decide = Callable[[CommandScope, C], str | None]


@dataclass(frozen=True)
class Handler:
    decide: Decide[Any]
    authorize: Callable[[CommandScope, c.CommandBase, bool], None]


def _manager(scope: CommandScope, command: c.CommandBase, required: bool) -> None:
    if required:
        kind = type(command).__name__
        require_manager(command.actor, scope.store.find_user(command.actor), kind)


def _scheduler(scope: CommandScope, command: c.CommandBase, required: bool) -> None:
    if required:
        assert isinstance(command, c.BookMeeting)
        actor = scope.store.find_user(command.actor)
        require_scheduler_for(command.actor, actor, "BookMeeting", command.host_id)


HANDLERS: dict[type[c.CommandBase], Handler] = {}


def handles(
    kind: type[C], authorize: Callable[[CommandScope, c.CommandBase, bool], None] = _manager
) -> Callable[[Decide[C]], Decide[C]]:
    """Register `decide` as the handler of `kind` commands."""

    def register(decide: Decide[C]) -> Decide[C]:
        HANDLERS[kind] = Handler(decide, authorize)
        return decide

    return register


def handle(scope: CommandScope, command: c.CommandBase, directory_required: bool) -> str | None:
    """Authorize and decide one command in its scope; raises the domain's errors."""
    handler = HANDLERS[type(command)]
    handler.authorize(scope, command, directory_required)
    return handler.decide(scope, command)


def _add_team(scope: CommandScope, rotation: Rotation, team_id: str) -> None:
    team = scope.store.find_team(team_id)
    if team is None and scope.store.directory_required:
        raise UnknownMember(f"no team {team_id!r} in the directory")
    rotation.add_team(team_id, [] if team is None else list(team.members), at=scope.now)
    scope.team_links(team_id).link(rotation.rotation_id)


@handles(c.CreateRotation)
def create_rotation(scope: CommandScope, command: c.CreateRotation) -> None:
    scope.require_no_rotation(command.rotation_id)
    members = list(dict.fromkeys(command.members))
    ineligible = scope.store.ineligible_users(members)
    if ineligible:
        user_id, why = next(iter(ineligible.items()))
        raise IneligibleMember(f"{user_id!r} cannot be a member: {why}")
    rotation = scope.create_rotation(command.rotation_id, command.name, members)
    for team_id in dict.fromkeys(command.teams):
        _add_team(scope, rotation, team_id)


@handles(c.RenameRotation)
def rename_rotation(scope: CommandScope, command: c.RenameRotation) -> None:
    scope.rotation(command.rotation_id).rename(command.name)


@handles(c.AddMember)
def add_member(scope: CommandScope, command: c.AddMember) -> None:
    why = scope.store.ineligible_users([command.user_id]).get(command.user_id)
    scope.rotation(command.rotation_id).add_member(command.user_id, at=scope.now, ineligible=why)


@handles(c.RemoveMember)
def remove_member(scope: CommandScope, command: c.RemoveMember) -> None:
    scope.rotation(command.rotation_id).remove_member(command.user_id)


@handles(c.AddTeam)
def add_team(scope: CommandScope, command: c.AddTeam) -> None:
    _add_team(scope, scope.rotation(command.rotation_id), command.team_id)


@handles(c.RemoveTeam)
def remove_team(scope: CommandScope, command: c.RemoveTeam) -> None:
    scope.rotation(command.rotation_id).remove_team(command.team_id)
    scope.team_links(command.team_id).unlink(command.rotation_id)


@handles(c.ToggleAvailability)
def toggle_availability(scope: CommandScope, command: c.ToggleAvailability) -> None:
    scope.rotation(command.rotation_id).toggle_availability(command.user_id, command.available)


@handles(c.DeleteRotation)
def delete_rotation(scope: CommandScope, command: c.DeleteRotation) -> None:
    scope.rotation(command.rotation_id).delete()


@handles(c.BookMeeting, authorize=_scheduler)
def book_meeting(scope: CommandScope, command: c.BookMeeting) -> str:
    rotation = scope.rotation(command.rotation_id)
    if not rotation.deleted:  # a deleted rotation answers rotation_deleted first
        scope.require_new_meeting(command.rotation_id, command.meeting_id)
    host = rotation.book_meeting(
        meeting_id=command.meeting_id,
        host_id=command.host_id,
        record=command.record.model_dump(),
        starts_at=command.starts_at,
        at=scope.now,
        ineligible=scope.store.ineligible_users(list(rotation.members)),
    )
    scope.claim_meeting(command.rotation_id, command.meeting_id, host, rotation.version)
    return host
