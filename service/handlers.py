"""One handler per command: a table from command type to a short function.

Each handler gets the rotation (or creates it), lets the aggregate decide, and returns the
host it assigned, if any; saving is the unit of work's job. Permissions are the table's
second column, checked before the handler runs, by the rules in `events.permissions`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from events.errors import (
    DuplicateMeeting,
    HoldExists,
    HoldExpired,
    IneligibleMember,
    UnknownHold,
    UnknownMeeting,
    UnknownMember,
)
from events.permissions import require_manager, require_scheduler_for
from events.rotation import Meeting, Rotation
from service import contracts as c
from service.ledger import hold_key
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
    """Bookings and their lifecycle: naming a host other than yourself needs more."""
    if required:
        host_id = getattr(command, "host_id", None)
        actor = scope.store.find_user(command.actor)
        require_scheduler_for(command.actor, actor, type(command).__name__, host_id)


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


def _others_ineligible(
    scope: CommandScope, rotation: Rotation, joiners: list[str]
) -> dict[str, str]:
    """Who cannot host among the joiners, and (only when joins are levelled) the members."""
    asked = [*joiners, *rotation.members] if rotation.levels_joins else joiners
    return scope.store.ineligible_users(asked)


def _add_team(scope: CommandScope, rotation: Rotation, team_id: str) -> None:
    team = scope.store.find_team(team_id)
    if team is None and scope.store.directory_required:
        raise UnknownMember(f"no team {team_id!r} in the directory")
    members = [] if team is None else list(team.members)
    ineligible = _others_ineligible(scope, rotation, members)
    rotation.add_team(team_id, members, at=scope.now, ineligible=ineligible)
    scope.team_links(team_id).link(rotation.rotation_id)


@handles(c.CreateRotation)
def create_rotation(scope: CommandScope, command: c.CreateRotation) -> None:
    scope.require_no_rotation(command.rotation_id)
    members = list(dict.fromkeys(command.members))
    ineligible = scope.store.ineligible_users(members)
    if ineligible:
        user_id, why = next(iter(ineligible.items()))
        raise IneligibleMember(f"{user_id!r} cannot be a member: {why}")
    policy = command.policy.as_dict() if command.policy is not None else None
    rotation = scope.create_rotation(command.rotation_id, command.name, members, policy)
    for team_id in dict.fromkeys(command.teams):
        _add_team(scope, rotation, team_id)


@handles(c.RenameRotation)
def rename_rotation(scope: CommandScope, command: c.RenameRotation) -> None:
    scope.rotation(command.rotation_id).rename(command.name)


@handles(c.SetPolicy)
def set_policy(scope: CommandScope, command: c.SetPolicy) -> None:
    scope.rotation(command.rotation_id).set_policy(command.policy.as_dict(), at=scope.now)


@handles(c.AddMember)
def add_member(scope: CommandScope, command: c.AddMember) -> None:
    rotation = scope.rotation(command.rotation_id)
    others = _others_ineligible(scope, rotation, [command.user_id])
    rotation.add_member(
        command.user_id,
        at=scope.now,
        ineligible=others.pop(command.user_id, None),
        options=command.model_dump(mode="json", include={"weight", "priority", "cap"}),
        others_ineligible=others,
    )


@handles(c.SetMemberOptions)
def set_member_options(scope: CommandScope, command: c.SetMemberOptions) -> None:
    scope.rotation(command.rotation_id).set_member_options(command.user_id, command.options())


@handles(c.CreditMember)
def credit_member(scope: CommandScope, command: c.CreditMember) -> None:
    scope.rotation(command.rotation_id).credit_member(
        command.user_id, command.meetings, command.reason, actor=command.actor, at=scope.now
    )


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
    rotation = scope.rotation(command.rotation_id)
    rotation.toggle_availability(
        command.user_id,
        command.available,
        at=scope.now,
        ineligible=scope.store.ineligible_users(list(rotation.members)),
    )


@handles(c.DeleteRotation)
def delete_rotation(scope: CommandScope, command: c.DeleteRotation) -> None:
    scope.rotation(command.rotation_id).delete()


@handles(c.BookMeeting, authorize=_scheduler)
def book_meeting(scope: CommandScope, command: c.BookMeeting) -> str:
    rotation = scope.rotation(command.rotation_id)
    if not rotation.deleted:  # a deleted rotation answers rotation_deleted first
        scope.require_new_meeting(command.rotation_id, command.meeting_id)
    if command.hold_id is not None:
        _require_active_hold(scope, rotation, command.hold_id)
    host = rotation.book_meeting(
        meeting_id=command.meeting_id,
        host_id=command.host_id,
        record=command.record.model_dump(),
        starts_at=command.starts_at,
        at=scope.now,
        ineligible=scope.store.ineligible_users(list(rotation.members)),
        preferred_host_id=command.preferred_host_id,
        hold_id=command.hold_id,
    )
    scope.claim_meeting(command.rotation_id, command.meeting_id, host, rotation.version)
    if command.hold_id is not None:
        _mark(scope, rotation, hold_key(command.hold_id))
    return host


def _require_active_hold(scope: CommandScope, rotation: Rotation, hold_id: str) -> None:
    """Held now, or the reason why not: the rotation keeps only active holds, so one that
    expired and was folded away is told apart from one never taken (or ended) by its
    latest event, found through the claims index."""
    rotation.require_live()
    if hold_id in rotation.holds:
        rotation.active_hold(hold_id, scope.now)  # raises hold_expired once it has expired
        return
    latest = scope.meeting_event(rotation.rotation_id, hold_key(hold_id))
    if isinstance(latest, Rotation.HostHeld) and latest.expires_at <= scope.now:
        raise HoldExpired(f"hold {hold_id!r} expired at {latest.expires_at.isoformat()}")
    ended = "" if latest is None else " (it was booked or released)"
    raise UnknownHold(f"no active hold {hold_id!r} in {rotation.rotation_id!r}{ended}")


@handles(c.HoldHost, authorize=_scheduler)
def hold_host(scope: CommandScope, command: c.HoldHost) -> str:
    rotation = scope.rotation(command.rotation_id)
    rotation.require_live()
    key = hold_key(command.hold_id)
    try:
        scope.require_new_meeting(command.rotation_id, key)
    except DuplicateMeeting:
        raise HoldExists(
            f"hold {command.hold_id!r} was taken before in {command.rotation_id!r}"
        ) from None
    host = rotation.hold_host(
        hold_id=command.hold_id,
        seconds=command.seconds,
        at=scope.now,
        exclude=command.exclude,
        starts_at=command.starts_at,
        ineligible=scope.store.ineligible_users(list(rotation.members)),
        preferred_host_id=command.preferred_host_id,
        actor=command.actor,
    )
    scope.claim_meeting(command.rotation_id, key, host, rotation.version)
    return host


@handles(c.ReleaseHold, authorize=_scheduler)
def release_hold(scope: CommandScope, command: c.ReleaseHold) -> str:
    rotation = scope.rotation(command.rotation_id)
    _require_active_hold(scope, rotation, command.hold_id)
    host = rotation.release_hold(command.hold_id, actor=command.actor, at=scope.now)
    _mark(scope, rotation, hold_key(command.hold_id))
    return host


def _meeting(scope: CommandScope, rotation: Rotation, meeting_id: str) -> Meeting:
    """The meeting's facts, from its latest event (found by id through the index)."""
    rotation.require_live()
    found = scope.meeting_event(rotation.rotation_id, meeting_id)
    if found is None:
        raise UnknownMeeting(f"no meeting {meeting_id!r} in {rotation.rotation_id!r}")
    return found.facts()  # type: ignore[attr-defined, no-any-return]


def _mark(scope: CommandScope, rotation: Rotation, meeting_id: str) -> None:
    """The meeting's newest event is the one just recorded."""
    latest = rotation.pending_events[-1]
    assert isinstance(latest, Rotation.Event)
    scope.mark_meeting(rotation.rotation_id, meeting_id, latest)


@handles(c.CancelMeeting, authorize=_scheduler)
def cancel_meeting(scope: CommandScope, command: c.CancelMeeting) -> None:
    rotation = scope.rotation(command.rotation_id)
    meeting = _meeting(scope, rotation, command.meeting_id)
    rotation.cancel_meeting(meeting, command.reason, actor=command.actor, at=scope.now)
    _mark(scope, rotation, command.meeting_id)


@handles(c.RescheduleMeeting, authorize=_scheduler)
def reschedule_meeting(scope: CommandScope, command: c.RescheduleMeeting) -> None:
    rotation = scope.rotation(command.rotation_id)
    meeting = _meeting(scope, rotation, command.meeting_id)
    rotation.reschedule_meeting(meeting, command.starts_at, actor=command.actor, at=scope.now)
    _mark(scope, rotation, command.meeting_id)


@handles(c.ReassignMeeting, authorize=_scheduler)
def reassign_meeting(scope: CommandScope, command: c.ReassignMeeting) -> str:
    rotation = scope.rotation(command.rotation_id)
    meeting = _meeting(scope, rotation, command.meeting_id)
    host = rotation.reassign_meeting(
        meeting,
        command.host_id,
        actor=command.actor,
        at=scope.now,
        ineligible=scope.store.ineligible_users(list(rotation.members)),
    )
    _mark(scope, rotation, command.meeting_id)
    return host


@handles(c.MarkNoShow, authorize=_scheduler)
def mark_no_show(scope: CommandScope, command: c.MarkNoShow) -> None:
    rotation = scope.rotation(command.rotation_id)
    meeting = _meeting(scope, rotation, command.meeting_id)
    if rotation.mark_no_show(meeting, actor=command.actor, at=scope.now):
        _mark(scope, rotation, command.meeting_id)
