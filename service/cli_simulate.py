"""`rotations simulate` and `rotations preview`: what-if answers from the store (no broker).

The policy file is checked against the contract's own schemas (a policy as `SetPolicy`
takes it, member options as `SetMemberOptions` does) before the store is opened: a bad file
exits with 2, as a bad field of `send` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError
from rich.table import Table

from service.contracts import Cap, Identifier, Policy, Priority, Weight, WireModel

if TYPE_CHECKING:
    from projections.simulation import Preview, Simulation, WhatIf


class MemberOverride(WireModel):
    """Options that replace a member's recorded ones; fields left out stay as recorded."""

    weight: Weight | None = None
    priority: Priority | None = None
    cap: Cap | None = None

    def options(self) -> dict[str, Any]:
        given = self.model_dump(mode="json")
        return {name: given[name] for name in self.model_fields_set}


class PolicyFile(WireModel):
    """`{"policy": {...}, "members": {"USER": {"weight", "priority", "cap"}}}`; without a
    policy the recorded one stands."""

    policy: Policy | None = None
    members: dict[Identifier, MemberOverride] = Field(default_factory=dict)


_INSTANT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _fail(message: str, code: int) -> None:
    from service.cli import fail

    fail(message, code)


def _instant(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return _INSTANT.validate_python(value)
    except ValidationError:
        _fail(f"{option} {value!r}: not an RFC 3339 instant with a UTC offset", 2)
        raise


def what_if(path: Path, start: str | None, end: str | None) -> WhatIf:
    """The file and the range as the simulation takes them; exit 2 when they are wrong."""
    from projections.simulation import WhatIf

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        _fail(f"cannot read the policy file {str(path)!r}: {reason}", 2)
    try:
        parsed = PolicyFile.model_validate_json(text)
    except ValidationError as error:
        from service.contracts import describe_validation_error

        _fail(f"{path}: {describe_validation_error(error.errors())}", 2)
        raise
    return WhatIf(
        policy=None if parsed.policy is None else parsed.policy.as_dict(),
        members={user: options.options() for user, options in parsed.members.items()},
        start=_instant("--from", start),
        end=_instant("--to", end),
    )


def simulation_json(simulation: Simulation) -> dict[str, Any]:
    """The reply's shape; fairness as the suggestion reply carries it (deviation rounded to
    6 places at this edge only)."""
    from service.suggestions import fairness_body

    return {
        "rotation_id": simulation.rotation_id,
        "bookings": simulation.bookings,
        "members": [
            {"user_id": m.user_id, "actual": m.actual, "simulated": m.simulated}
            for m in simulation.members
        ],
        "fairness": {
            "actual": fairness_body(simulation.actual).model_dump(),
            "simulated": fairness_body(simulation.simulated).model_dump(),
        },
        "changed": list(simulation.changed),
    }


def simulation_table(simulation: Simulation) -> Table:
    data = simulation_json(simulation)
    table = Table(title=f"{simulation.rotation_id}", caption=_fairness_caption(data["fairness"]))
    for name in ("user", "actual", "simulated", "change"):
        table.add_column(name, justify="left" if name == "user" else "right")
    for member in simulation.members:
        change = member.simulated - member.actual
        table.add_row(member.user_id, str(member.actual), str(member.simulated), f"{change:+d}")
    return table


def summary_line(simulation: Simulation, most: int = 20) -> str:
    """How much moved: bookings replayed, meetings with another host (the first few)."""
    changed = simulation.changed
    named = ", ".join(changed[:most]) + (", …" if len(changed) > most else "")
    moved = f": {named}" if changed else ""
    unassigned = len(simulation.unassigned)
    nobody = f" ({unassigned} no one could host)" if unassigned else ""
    return (
        f"{simulation.bookings} bookings replayed; {len(changed)} meetings with another "
        f"host{nobody}{moved}"
    )


def _fairness_caption(figures: dict[str, dict[str, Any]]) -> str:
    actual, simulated = figures["actual"], figures["simulated"]
    return (
        f"deviation {actual['deviation']} → {simulated['deviation']}, "
        f"spread {actual['spread']} → {simulated['spread']}"
    )


def preview_table(found: Preview) -> Table:
    table = Table(title=f"{found.rotation_id}: next {found.requested}")
    for name in ("#", "host", "reason"):
        table.add_column(name)
    for i, booking in enumerate(found.next, start=1):
        table.add_row(str(i), booking.host_id, booking.reason)
    if len(found.next) < found.requested:
        table.caption = f"no one can host booking {len(found.next) + 1} (no_available_member)"
    return table


def simulate(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    policy: Annotated[
        Path,
        typer.Option(
            help='JSON: {"policy": {...}, "members": {"USER": {"weight", "priority", "cap"}}}'
        ),
    ],
    start: Annotated[
        str | None,
        typer.Option("--from", help="RFC 3339: decisions before it stay as recorded"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="RFC 3339: the simulation stops after it")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    html: Annotated[
        Path | None, typer.Option(help="write a chart of recorded against simulated meetings")
    ] = None,
) -> None:
    """Replay a rotation's history under another policy and member options: every
    auto-assigned booking, automatic reassignment and hold re-decided; each member's
    meetings recorded and simulated, fairness, and the meetings that change host."""
    from projections.simulation import render_html
    from projections.simulation import simulate as run
    from service.cli import _reading

    settings = what_if(policy, start, end)
    simulation = _reading(lambda app: run(app, rotation_id, settings))
    if html is not None:
        try:
            html.write_text(render_html(simulation), encoding="utf-8")
        except OSError as error:
            _fail(f"cannot write {html}: {error.strerror or error}", 1)
    if as_json:
        typer.echo(json.dumps(simulation_json(simulation), indent=2))
        return
    from service.cli import console

    console.print(simulation_table(simulation))
    console.print(summary_line(simulation), highlight=False)
    if html is not None:
        console.print(f"wrote {html}")


def preview(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    next_: Annotated[int, typer.Option("--next", min=1, max=1000, help="how many bookings")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The next N hosts if N auto-assigned bookings came now, decided by a copy of the
    rotation as stored; nothing is stored."""
    from projections.simulation import preview as ask
    from service.cli import _reading, console

    found = _reading(lambda app: ask(app, rotation_id, next_, datetime.now(UTC)))
    if as_json:
        typer.echo(json.dumps(found.to_json(), indent=2))
        return
    console.print(preview_table(found))


def register(cli: typer.Typer) -> None:
    cli.command()(simulate)
    cli.command()(preview)
