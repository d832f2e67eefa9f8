"""`rotations directory ...`: seed users and teams for a demo (publishes directory facts),
and list what the store holds of them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from events.directory import DirectoryUser

directory_cli = typer.Typer(
    help="Publish user-directory facts (users, teams) to the service, e.g. to seed a demo.",
    no_args_is_help=True,
)


def _publish(fact: dict[str, Any], timeout: float) -> None:
    from service.cli import _talk, console, fail

    reply = _talk(lambda client: client.directory(fact), timeout)
    console.print_json(data=reply)
    if reply.get("status") != "accepted":
        fail(f"{reply['error']['code']}: {reply['error']['message']}")


@dataclass(frozen=True)
class UserChange:
    """What `directory user` was told: None leaves a fact as the user has it now."""

    name: str | None = None
    seat: bool | None = None
    calendar: bool | None = None
    sync: bool | None = None
    permissions: list[str] | None = None


def user_fact(user_id: str, change: UserChange, current: DirectoryUser | None) -> dict[str, Any]:
    """A UserUpdated with the named changes on top of the user's current facts (a new or a
    replaced user starts from: name = id, seat, calendar and sync on, no permissions)."""

    def keep(value: Any, now: Any, default: Any) -> Any:
        if value is not None:
            return value
        return now if current is not None else default

    return {
        "type": "UserUpdated",
        "user_id": user_id,
        "name": keep(change.name, current and current.name, user_id) or user_id,
        "seat": keep(change.seat, current and current.seat, True),
        "calendar_connected": keep(change.calendar, current and current.calendar_connected, True),
        "calendar_sync": keep(change.sync, current and current.calendar_sync, True),
        "permissions": list(keep(change.permissions, current and current.permissions, [])),
    }


def current_user(user_id: str) -> DirectoryUser | None:
    """The user as the store has them; one line and exit 2 when the store cannot be read."""
    from service.bootstrap import StartupError, open_application
    from service.cli import fail
    from service.settings import Settings
    from service.store import missing_store

    settings = Settings()
    if missing_store(settings.store) is not None:
        return None  # no store yet, so nobody in it: opening one would create it
    try:
        app = open_application(settings)
    except StartupError as error:
        fail(
            f"{error}; cannot read {user_id!r} to change only what you named: "
            "pass --replace to send the user's facts as given (defaults for the rest)",
            2,
        )
        raise
    try:
        return app.find_user(user_id)
    finally:
        app.close()


@directory_cli.command("user")
def user(
    user_id: Annotated[str, typer.Argument(help="user id")],
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    seat: Annotated[bool | None, typer.Option("--seat/--no-seat", help="has a paid seat")] = None,
    calendar: Annotated[
        bool | None, typer.Option("--calendar/--no-calendar", help="calendar connected")
    ] = None,
    sync: Annotated[bool | None, typer.Option("--sync/--no-sync", help="calendar sync on")] = None,
    permission: Annotated[
        list[str] | None,
        typer.Option(help="manage_rotations or schedule_for_others; repeat for both"),
    ] = None,
    no_permissions: Annotated[
        bool, typer.Option("--no-permissions", help="take every permission away")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="send only what is given (defaults for the rest) without reading the store",
        ),
    ] = False,
    deactivate: Annotated[bool, typer.Option(help="send UserDeactivated instead")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Change what you name of a user (UserUpdated; the rest is read from the store and
    kept), or deactivate one (--deactivate)."""
    if deactivate:
        fact: dict[str, Any] = {"type": "UserDeactivated", "user_id": user_id}
    else:
        permissions = [] if no_permissions else permission
        change = UserChange(name, seat, calendar, sync, permissions)
        fact = user_fact(user_id, change, None if replace else current_user(user_id))
    _publish({**fact, "message_id": uuid.uuid4().hex}, timeout)


@directory_cli.command("team")
def team(
    team_id: Annotated[str, typer.Argument(help="team id")],
    member: Annotated[list[str] | None, typer.Option(help="a member's user id; repeat")] = None,
    name: Annotated[str, typer.Option(help="display name")] = "",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Set a team's full member list (TeamUpdated); rotations holding the team follow it."""
    fact = {
        "type": "TeamUpdated",
        "message_id": uuid.uuid4().hex,
        "team_id": team_id,
        "name": name or team_id,
        "members": member or [],
    }
    _publish(fact, timeout)


@directory_cli.command("list")
def list_directory(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The directory's users (with whether each may host) and teams, from the store."""
    from projections.catalog import directory_listing
    from service.cli import _open_store, console
    from service.cli_render import directory_view

    app = _open_store()
    try:
        directory = directory_listing(app)
    finally:
        app.close()
    if as_json:
        typer.echo(json.dumps(directory.to_json()))
        return
    console.print(directory_view(directory))
