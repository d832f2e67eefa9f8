"""The `rotations` command line: run the service or the broker, talk to a running service."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from service.logs import configure_logging
from service.settings import Settings

if TYPE_CHECKING:  # the CLI starts fast: the store's modules load when a command needs them
    from service.application import RotationsApplication
    from service.contracts import SuggestHost
    from service.embedded_broker import EmbeddedBroker

T = TypeVar("T")

cli = typer.Typer(
    help="Meeting rotations: round-robin host assignment, event-sourced, over Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    one_line = " ".join(message.split())
    err.print(f"[red]error:[/red] {one_line}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@cli.command()
def serve() -> None:
    """Run the service, configured from the environment (see the README's table)."""
    from service.bootstrap import StartupError
    from service.kafka_security import KafkaSecurityError, kafka_security
    from service.runtime import serve as run

    configure_logging()
    try:
        settings = Settings()
        kafka_security(settings)  # an unusable TLS or SASL setting: said before anything starts
        asyncio.run(run(settings))
    except (StartupError, KafkaSecurityError) as error:
        fail(str(error), 2)
    except KeyboardInterrupt:
        pass


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: unwind through `finally`, which stops the broker child."""
    raise KeyboardInterrupt


def _check_free(ports: list[tuple[str, int, str]]) -> None:
    """Each (host, port, what) free, or one line and exit 2, before anything is printed or
    started (a second broker would fail to bind while the first answered in its place)."""
    from service.embedded_broker import port_in_use

    for host, port, what in ports:
        if port and port_in_use(host, port):
            fail(
                f"{host}:{port} ({what}) is already in use: is another `rotations dev` "
                "or `rotations broker` running?",
                2,
            )


@cli.command()
def broker(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) until Ctrl-C or SIGTERM."""
    from service.embedded_broker import start_broker

    _check_free([("127.0.0.1", port, "the broker's port, --port")])
    signal.signal(signal.SIGTERM, _interrupt)
    running: EmbeddedBroker | None = None  # interrupted while starting: stopped at exit
    try:
        running = start_broker(port)
        console.print(f"broker listening; KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}")
        running.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if running is not None:
            running.stop()


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="broker port on 127.0.0.1")] = 9092,
    store: Annotated[
        str | None,
        typer.Option(help="event store URL [default: ROTATIONS_STORE, else the user data folder]"),
    ] = None,
) -> None:
    """Broker + service + SQLite in one command; Ctrl-C (or SIGTERM) stops both."""
    from service.bootstrap import StartupError
    from service.embedded_broker import start_broker
    from service.runtime import serve as run

    if store is not None:
        os.environ["ROTATIONS_STORE"] = store
    os.environ.setdefault("ROTATIONS_DIRECTORY", "open")  # a demo needs no directory
    settings = Settings()
    _check_free(
        [
            ("127.0.0.1", port, "the broker's port, --port"),
            (settings.http_host, settings.http_port, "the HTTP port, ROTATIONS_HTTP_PORT"),
        ]
    )
    configure_logging()
    signal.signal(signal.SIGTERM, _interrupt)  # until the service's loop handles it
    running: EmbeddedBroker | None = None  # interrupted while starting: stopped at exit
    try:
        running = start_broker(port)
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = running.bootstrap_servers
        settings = Settings()
        console.print(
            f"broker at {running.bootstrap_servers}, store {settings.store}; "
            "try: rotations send CreateRotation --rotation-id demo --field name=Sales "
            "--field members=kari,ola"
        )
        # The service's loop stops its consumers on Ctrl-C/SIGTERM; the broker, in a session
        # of its own, gets neither and is stopped after them (stopped first, the consumers
        # would log a screenful of connection errors).
        asyncio.run(run(settings))
    except StartupError as error:
        fail(str(error), 2)
    except KeyboardInterrupt:
        pass
    finally:
        if running is not None:
            running.stop()


async def _with_client(action: Any, timeout: float) -> Any:
    from service.client import RotationsClient

    async with RotationsClient(Settings(), timeout=timeout) as client:
        return await action(client)


def _talk(action: Any, timeout: float) -> Any:
    """Run one request; every failure becomes one clear line and a non-zero exit."""
    from aiokafka.errors import KafkaError

    from service.kafka_security import KafkaSecurityError

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it
    try:
        return asyncio.run(_with_client(action, timeout))
    except KafkaSecurityError as error:  # a TLS or SASL setting, or an untrusted broker
        fail(str(error), 2)
    except TimeoutError:
        fail(f"no reply within {timeout}s: is the service running?")
    except (KafkaError, OSError) as error:
        fail(f"cannot talk to the broker at {Settings().kafka_bootstrap_servers}: {error}")


def _send_epilog() -> str:
    from service.cli_fields import help_epilog

    return help_epilog()


@cli.command(epilog=_send_epilog())
def send(
    command_type: Annotated[
        str,
        typer.Argument(help="a command type (see below); - reads a JSON command from stdin"),
    ],
    rotation_id: Annotated[str | None, typer.Option(help="rotation id")] = None,
    field: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE, parsed by the command's schema; lists a,b; record=deal:42"),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            help="the user issuing the command  [default: the token's subject, else cli]",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="signed actors: a JWT, sent as the header authorization: Bearer <JWT>"),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="signed actors: a file holding the JWT (kept out of the process list)"),
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Send one command and print the service's reply (a bad field exits with 2, unsent)."""
    headers: dict[str, str] = {}
    if token is not None and token_file is not None:
        fail("give --token or --token-file, not both", 2)
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            fail(f"cannot read the token file {str(token_file)!r}: {reason}", 2)
    if token is not None:
        from service.actor_tokens import bearer_header, unverified_subject

        if not token.strip():
            fail("the token is empty", 2)
        headers["authorization"] = bearer_header(token)
        actor = actor or unverified_subject(token)
    command = _command_to_send(command_type, rotation_id, field or [], actor or "cli")
    reply = _talk(lambda client: client.command(command, headers=headers or None), timeout)
    console.print_json(data=reply)
    if reply.get("status") != "accepted":
        raise typer.Exit(1)


def _command_to_send(
    command_type: str, rotation_id: str | None, fields: list[str], actor: str
) -> dict[str, Any]:
    """The command as JSON, or one line and exit 2 when it does not fit its schema."""
    from service.cli_fields import FieldError, build_command, json_command

    try:
        if command_type == "-":
            return json_command(sys.stdin.read())
        base: dict[str, Any] = {"command_id": uuid.uuid4().hex, "actor": actor}
        if rotation_id:
            base["rotation_id"] = rotation_id
        return build_command(command_type, base, fields)
    except FieldError as error:
        fail(str(error), 2)
        raise


@cli.command()
def commands() -> None:
    """Every command type `send` takes, with its fields and an example."""
    from service.cli_fields import catalogue
    from service.cli_render import commands_table

    console.print(commands_table(catalogue()))


@cli.command()
def suggest(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    exclude: Annotated[list[str] | None, typer.Option(help="user whose calendar is full")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="RFC 3339 instant: answer as it stood then")
    ] = None,
    starts_at: Annotated[
        str | None,
        typer.Option(help="RFC 3339 start of the meeting (places it under count_by: starts_at)"),
    ] = None,
    preferred_host: Annotated[
        str | None,
        typer.Option(help="member chosen when it can host (e.g. the record's owner)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw reply")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Ask for the host suggestion: the ranked candidates with their weights, priorities,
    credits, holds and caps, who may not host and why, and the fairness summary."""
    from service.cli_render import suggestion_table
    from service.contracts import SuggestionReply

    request = _check_suggest(rotation_id, exclude or [], as_of, starts_at, preferred_host)
    reply = _talk(
        lambda client: client.suggest(
            rotation_id,
            exclude,
            as_of,
            starts_at=request.starts_at,
            preferred_host_id=preferred_host,
        ),
        timeout,
    )
    if as_json:
        console.print_json(data=reply)
        return
    if reply.get("error"):
        fail(f"{reply['error']['code']}: {reply['error']['message']}")
    console.print(suggestion_table(rotation_id, SuggestionReply.model_validate(reply)))


def _check_suggest(
    rotation_id: str,
    exclude: list[str],
    as_of: str | None,
    starts_at: str | None = None,
    preferred_host: str | None = None,
) -> SuggestHost:
    """The request's schema, checked before connecting: a bad --as-of or --starts-at exits
    with 2."""
    from pydantic import ValidationError

    from service.contracts import SuggestHost, describe_validation_error

    request: dict[str, Any] = {"rotation_id": rotation_id, "exclude": exclude}
    for name, value in (
        ("as_of", as_of),
        ("starts_at", starts_at),
        ("preferred_host_id", preferred_host),
    ):
        if value is not None:
            request[name] = value
    try:
        return SuggestHost.model_validate(request)
    except ValidationError as error:
        fail(describe_validation_error(error.errors()), 2)
        raise


# -- reading: list, show (from the store and its read model; no broker needed) -----------


@cli.command("list")
def list_rotations(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per rotation")] = False,
) -> None:
    """Every rotation in the store: name, member count, deleted or not."""
    from projections.catalog import list_rotations as listed
    from service.cli_render import rotations_table

    app = _open_store()
    try:
        rotations = listed(app)
    finally:
        app.close()
    if as_json:
        for summary in rotations:
            typer.echo(json.dumps(summary.to_json()))
        return
    console.print(rotations_table(rotations))


@cli.command()
def show(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """A rotation as it stands: name, members with their state, teams."""
    from projections.catalog import show_rotation
    from service.cli_render import rotation_view

    detail = _reading(lambda app: show_rotation(app, rotation_id))
    if as_json:
        typer.echo(json.dumps(detail.to_json()))
        return
    console.print(rotation_view(detail))


@cli.command()
def policy(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """A rotation's distribution policy (every field) and every member's options: weight,
    priority, cap (its own or the policy's), and the credits and meetings that count now."""
    from datetime import UTC, datetime

    from projections.catalog import rotation_policy
    from service.cli_render import policy_view

    view = _reading(lambda app: rotation_policy(app, rotation_id, datetime.now(UTC)))
    if as_json:
        typer.echo(json.dumps(view.to_json()))
        return
    console.print(policy_view(view))


@cli.command()
def meetings(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    member: Annotated[
        str | None, typer.Option(help="only the meetings this user hosts now")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="booked, no_show or cancelled (the status now; cancelled wins), or "
            "rescheduled / reassigned (ever)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per meeting")] = False,
) -> None:
    """A rotation's meetings in booking order, from the read model: host, record, booked,
    start, status, and how often each was reassigned or rescheduled."""
    from projections.catalog import MEETING_FILTERS, meeting_json, rotation_meetings
    from service.cli_render import meetings_table

    if status is not None and status not in MEETING_FILTERS:
        fail(f"--status {status!r}: one of {', '.join(MEETING_FILTERS)}", 2)
    listing = _reading(lambda app: rotation_meetings(app, rotation_id, member, status))
    if as_json:
        for meeting in listing.meetings:
            typer.echo(json.dumps(meeting_json(rotation_id, meeting)))
        return
    console.print(meetings_table(listing))


# -- audits: replay, audit, explain (they read the store directly; no broker needed) ------


def _reading(read: Callable[[RotationsApplication], T]) -> T:
    """`read` on the configured store, closed afterwards; a RotationError (an unknown
    rotation, ...) is one line and exit 1."""
    from events.errors import RotationError

    app = _open_store()
    try:
        return read(app)
    except RotationError as error:
        fail(str(error))
        raise
    finally:
        app.close()


def _open_store() -> RotationsApplication:
    """The application on the configured store (ROTATIONS_STORE) and directory mode; one line
    and exit 2 when there is no store there (opening it would create an empty one)."""
    from service.bootstrap import StartupError, open_application
    from service.store import missing_store

    settings = Settings()
    if (path := missing_store(settings.store)) is not None:
        fail(f"no store at {path} (set ROTATIONS_STORE to the store's URL)", 2)
    try:
        return open_application(settings)
    except StartupError as error:
        fail(str(error), 2)
        raise


@cli.command()
def replay(
    swap: Annotated[
        bool, typer.Option("--swap", help="make the rebuilt table the live read model")
    ] = False,
) -> None:
    """Rebuild the read model from position 0 into a fresh table; compare with the live one.

    Without --swap the rebuilt table is dropped afterwards and differences exit with 1.
    With --swap it becomes the live table (the old one is kept as a backup); restart a
    running service afterwards.
    """
    from projections import replay as rebuild_model
    from service.audit_render import print_comparison, replay_progress

    app = _open_store()
    try:
        with replay_progress(console) as bar:
            task = bar.add_task("replay", total=None)
            rebuilt = rebuild_model.rebuild(
                app, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
        comparison = rebuild_model.compare(app, rebuilt.table_name)
        print_comparison(console, rebuilt, comparison)
        if swap:
            backup = rebuild_model.swap(app, rebuilt.table_name)
            kept = f"; the old one is kept as {backup}" if backup else ""
            console.print(f"[bold]swapped: {rebuilt.table_name} is now the live table{kept}")
            console.print("restart a running service so it reloads the read model")
        else:
            rebuild_model.drop_view(app, rebuilt.table_name)
    finally:
        app.close()
    if not swap and not comparison.identical:
        raise typer.Exit(1)


@cli.command()
def audit(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object per line")] = False,
) -> None:
    """Every event of a rotation: members, resets, availability, bookings, renames, deletion."""
    from events.errors import RotationError
    from projections.audit import audit_history
    from service.audit_render import audit_table

    app = _open_store()
    try:
        entries = audit_history(app, rotation_id)
    except RotationError as error:
        fail(str(error))
    finally:
        app.close()
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.to_json()))
        return
    console.print(audit_table(rotation_id, entries))


@cli.command()
def explain(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    meeting_id: Annotated[str, typer.Argument(help="meeting id")],
) -> None:
    """A meeting's whole life: booked, rescheduled, reassigned, cancelled or no-show, each
    decision (the booking, each reassignment) with its stored record re-derived from the
    events before it.

    A stored record that the events do not re-derive is printed in red and exits with 1.
    """
    from events.errors import RotationError
    from projections.audit import MeetingNotFound, explain_meeting
    from service.audit_render import print_explanation

    app = _open_store()
    try:
        life = explain_meeting(app, rotation_id, meeting_id)
    except (RotationError, MeetingNotFound) as error:
        fail(str(error))
    finally:
        app.close()
    print_explanation(console, life)
    if life.matches is False:
        raise typer.Exit(1)


# -- documents: the AsyncAPI document and the audit report ------------------------------


@cli.command()
def asyncapi(
    out: Annotated[
        Path | None,
        typer.Option(help="file to write (.yaml, .yml or .json); without it, print YAML"),
    ] = None,
    from_env: Annotated[
        bool,
        typer.Option(
            "--from-env",
            help="document the environment's topic prefix and broker instead of the defaults",
        ),
    ] = False,
) -> None:
    """Write the AsyncAPI 3.0 document of the Kafka interface (docs/asyncapi.yaml)."""
    from service.asyncapi import build_asyncapi

    try:
        document = build_asyncapi(Settings() if from_env else None)
    except Exception as error:
        fail(f"cannot build the AsyncAPI document: {type(error).__name__}: {error}")
        raise
    if out is None:
        typer.echo(document.to_yaml(), nl=False)
        return
    if out.suffix == ".json":
        text = json.dumps(document.to_jsonable(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = document.to_yaml()
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {out}: {error.strerror or error}")
    console.print(f"wrote {out}")


@cli.command()
def report(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML audit report of a rotation, from the store (ROTATIONS_STORE).

    A chart of each member's meetings since the last reset over time (resets, availability
    and overrides marked), a fairness summary and every event in order.
    """
    from events.errors import RotationError
    from projections.report import build_report, render_html

    app = _open_store()
    try:
        page = render_html(build_report(app, rotation_id))
    except RotationError as error:
        fail(str(error))
        raise
    except Exception as error:
        fail(f"cannot build the report: {type(error).__name__}: {error}")
        raise
    finally:
        app.close()
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {out}: {error.strerror or error}")
    console.print(f"wrote {out}")


def _add_directory() -> None:
    from service.cli_directory import directory_cli

    cli.add_typer(directory_cli, name="directory")


_add_directory()


def _add_simulate() -> None:
    from service.cli_simulate import register

    register(cli)


_add_simulate()


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    cli()


if __name__ == "__main__":
    main()
