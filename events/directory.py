"""Facts from the account's user directory, kept as events so audits see them as they were."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

DIRECTORY_NAMESPACE = uuid5(NAMESPACE_URL, "meeting-rotations/directory")
MANAGE_ROTATIONS = "manage_rotations"
SCHEDULE_FOR_OTHERS = "schedule_for_others"


@lru_cache(maxsize=100_000)  # asked for every member of every booking
def user_uuid(user_id: str) -> UUID:
    return uuid5(DIRECTORY_NAMESPACE, f"user\x00{user_id}")


def team_uuid(team_id: str) -> UUID:
    return uuid5(DIRECTORY_NAMESPACE, f"team\x00{team_id}")


def team_links_uuid(team_id: str) -> UUID:
    return uuid5(DIRECTORY_NAMESPACE, f"team-links\x00{team_id}")


class DirectoryUser(Aggregate):
    """A user as the directory last described them."""

    @staticmethod
    def create_id(user_id: str, **_: Any) -> UUID:
        return user_uuid(user_id)

    @event("Registered")
    def __init__(
        self,
        user_id: str,
        name: str,
        seat: bool,
        calendar_connected: bool,
        calendar_sync: bool,
        permissions: list[str],
    ) -> None:
        self.user_id = user_id
        self._describe(name, seat, calendar_connected, calendar_sync, permissions)

    @event("Updated")
    def update(
        self,
        name: str,
        seat: bool,
        calendar_connected: bool,
        calendar_sync: bool,
        permissions: list[str],
    ) -> None:
        self._describe(name, seat, calendar_connected, calendar_sync, permissions)

    def _describe(
        self,
        name: str,
        seat: bool,
        calendar_connected: bool,
        calendar_sync: bool,
        permissions: list[str],
    ) -> None:
        """The directory's latest word on a user replaces the previous one (and reactivates)."""
        self.name = name
        self.seat = seat
        self.calendar_connected = calendar_connected
        self.calendar_sync = calendar_sync
        self.permissions = list(permissions)
        self.deactivated = False

    @event("Deactivated")
    def deactivate(self) -> None:
        self.deactivated = True

    def ineligibility(self) -> str | None:
        """Why this user cannot host meetings now, or None when they can."""
        if self.deactivated:
            return "deactivated"
        if not self.seat:
            return "no_seat"
        if not self.calendar_connected:
            return "no_calendar"
        if not self.calendar_sync:
            return "calendar_sync_off"
        return None

    def may(self, permission: str) -> bool:
        return not self.deactivated and permission in self.permissions


def ineligibility(user: DirectoryUser | None) -> str | None:
    """Why a user cannot host, or None when they can: the one rule, a user the directory
    has never described (None) included, so every reader answers alike."""
    if user is None:
        return "unknown_user"
    return user.ineligibility()


class Team(Aggregate):
    """A team's current members, as the directory last listed them."""

    @staticmethod
    def create_id(team_id: str, **_: Any) -> UUID:
        return team_uuid(team_id)

    @event("Registered")
    def __init__(self, team_id: str, name: str, members: list[str]) -> None:
        self.team_id = team_id
        self.name = name
        self.members = list(dict.fromkeys(members))

    @event("Updated")
    def update(self, name: str, members: list[str]) -> None:
        self.name = name
        self.members = list(dict.fromkeys(members))


class TeamLinks(Aggregate):
    """Which rotations hold a team, so a team change reaches each of them."""

    @staticmethod
    def create_id(team_id: str, **_: Any) -> UUID:
        return team_links_uuid(team_id)

    @event("Started")
    def __init__(self, team_id: str) -> None:
        self.team_id = team_id
        self.rotations: list[str] = []

    @event("Linked")
    def link(self, rotation_id: str) -> None:
        if rotation_id not in self.rotations:
            self.rotations.append(rotation_id)

    @event("Unlinked")
    def unlink(self, rotation_id: str) -> None:
        if rotation_id in self.rotations:
            self.rotations.remove(rotation_id)


DIRECTORY_MODE_ID = uuid5(DIRECTORY_NAMESPACE, "mode")
OPEN = "open"
REQUIRED = "required"


class DirectoryMode(Aggregate):
    """The directory mode decisions were made under, from the moment a service started
    with it: audits re-derive a decision with the mode then in force, not today's."""

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return DIRECTORY_MODE_ID

    @event("Started")
    def __init__(self, mode: str) -> None:
        self.mode = mode

    @event("Changed")
    def change(self, mode: str) -> None:
        self.mode = mode
