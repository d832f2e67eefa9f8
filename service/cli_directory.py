"""`rotations directory ...`: seed users and teams for a demo (publishes directory facts)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

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


@directory_cli.command("user")
def user(
    user_id: Annotated[str, typer.Argument(help="user id")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    seat: Annotated[bool, typer.Option("--seat/--no-seat", help="has a paid seat")] = True,
    calendar: Annotated[
        bool, typer.Option("--calendar/--no-calendar", help="calendar connected")
    ] = True,
    sync: Annotated[bool, typer.Option("--sync/--no-sync", help="calendar sync on")] = True,
    permission: Annotated[
        list[str] | None,
        typer.Option(help="manage_rotations or schedule_for_others; repeat for both"),
    ] = None,
    deactivate: Annotated[bool, typer.Option(help="send UserDeactivated instead")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Describe a user (UserUpdated), or deactivate one (--deactivate)."""
    if deactivate:
        fact: dict[str, Any] = {"type": "UserDeactivated", "user_id": user_id}
    else:
        fact = {
            "type": "UserUpdated",
            "user_id": user_id,
            "name": name or user_id,
            "seat": seat,
            "calendar_connected": calendar,
            "calendar_sync": sync,
            "permissions": permission or [],
        }
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
