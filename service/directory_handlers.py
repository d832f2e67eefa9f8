"""One handler per directory fact: users and teams as the account's directory describes them.

A team's new member list also reaches every rotation that holds the team (its links).
Saving, receipts and retries are the application's, as for commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.directory import DirectoryUser, Team
from service import contracts as c
from service.unit_of_work import CommandScope

DirectoryFact = c.UserUpdated | c.UserDeactivated | c.TeamUpdated


def record_user(scope: CommandScope, fact: c.UserUpdated) -> None:
    """The directory's latest word on a user replaces the previous one (and reactivates)."""
    details: dict[str, Any] = {
        "name": fact.name,
        "seat": fact.seat,
        "calendar_connected": fact.calendar_connected,
        "calendar_sync": fact.calendar_sync,
        "permissions": list(fact.permissions),
    }
    user = scope.user(fact.user_id)
    if user is None:
        scope.add(DirectoryUser(user_id=fact.user_id, **details))
    else:
        user.update(**details)


def deactivate_user(scope: CommandScope, fact: c.UserDeactivated) -> None:
    """A user the directory never described is recorded as deactivated all the same."""
    user = scope.user(fact.user_id)
    if user is None:
        user = DirectoryUser(
            user_id=fact.user_id,
            name="",
            seat=False,
            calendar_connected=False,
            calendar_sync=False,
            permissions=[],
        )
        scope.add(user)
    user.deactivate()


def update_team(scope: CommandScope, fact: c.TeamUpdated) -> None:
    members = list(fact.members)
    team = scope.team(fact.team_id)
    if team is None:
        scope.add(Team(team_id=fact.team_id, name=fact.name, members=members))
    else:
        team.update(name=fact.name, members=members)
    for rotation_id in scope.rotations_holding(fact.team_id):
        rotation = scope.rotation(rotation_id)
        asked = [*rotation.members, *members] if rotation.levels_joins else []
        ineligible = scope.store.ineligible_users(asked) if asked else {}
        rotation.team_changed(fact.team_id, members, at=scope.now, ineligible=ineligible)


DIRECTORY_HANDLERS: dict[type[DirectoryFact], Callable[[CommandScope, Any], None]] = {
    c.UserUpdated: record_user,
    c.UserDeactivated: deactivate_user,
    c.TeamUpdated: update_team,
}
