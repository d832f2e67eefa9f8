"""The `rotations` command line: run the service or the broker, talk to a running service."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from service.logs import configure_logging
from service.settings import Settings

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
    from service.runtime import StartupError
    from service.runtime import serve as run

    configure_logging()
    try:
        asyncio.run(run(Settings()))
    except StartupError as error:
        fail(str(error), 2)
    except KeyboardInterrupt:
        pass


@cli.command()
def broker(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) until Ctrl-C."""
    from service.embedded_broker import start_broker

    running = start_broker(port)
    console.print(f"broker listening; KAFKA_BOOTSTRAP_SERVERS={running.bootstrap_servers}")
    try:
        running.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="broker port on 127.0.0.1")] = 9092,
    store: Annotated[str, typer.Option(help="event store URL")] = "sqlite:///data/rotations.sqlite",
) -> None:
    """Broker + service + SQLite in one command; Ctrl-C stops both."""
    from service.embedded_broker import start_broker
    from service.runtime import StartupError
    from service.runtime import serve as run

    configure_logging()
    running = start_broker(port)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = running.bootstrap_servers
    os.environ.setdefault("ROTATIONS_STORE", store)
    settings = Settings()
    console.print(
        f"broker at {running.bootstrap_servers}, store {settings.store}; "
        "try: rotations send CreateRotation --rotation-id demo --field name=Sales "
        "--field members=kari,ola"
    )
    try:
        asyncio.run(run(settings))
    except StartupError as error:
        fail(str(error), 2)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


def _field_value(name: str, raw: str) -> Any:
    if name in ("members", "teams", "exclude"):
        return [v for v in raw.split(",") if v]
    if name == "available":
        return raw.lower() in ("1", "true", "yes", "on")
    if name == "record":
        kind, _, ident = raw.partition(":")
        return {"type": kind, "id": ident}
    return raw


async def _with_client(action: Any, timeout: float) -> Any:
    from service.client import RotationsClient

    async with RotationsClient(Settings(), timeout=timeout) as client:
        return await action(client)


def _talk(action: Any, timeout: float) -> Any:
    """Run one request; every failure becomes one clear line and a non-zero exit."""
    from aiokafka.errors import KafkaError

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it
    try:
        return asyncio.run(_with_client(action, timeout))
    except TimeoutError:
        fail(f"no reply within {timeout}s: is the service running?")
    except (KafkaError, OSError) as error:
        fail(f"cannot talk to the broker at {Settings().kafka_bootstrap_servers}: {error}")


@cli.command()
def send(
    command_type: Annotated[
        str,
        typer.Argument(
            help="CreateRotation, AddMember, BookMeeting, ...; - reads a JSON command from stdin"
        ),
    ],
    rotation_id: Annotated[str | None, typer.Option(help="rotation id")] = None,
    field: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE; lists comma-separated; record=deal:42")
    ] = None,
    actor: Annotated[str, typer.Option(help="the user issuing the command")] = "cli",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Send one command and print the service's reply."""
    if command_type == "-":
        command = json.loads(sys.stdin.read())
    else:
        command = {"type": command_type, "command_id": uuid.uuid4().hex, "actor": actor}
        if rotation_id:
            command["rotation_id"] = rotation_id
        for item in field or []:
            name, sep, raw = item.partition("=")
            if not sep:
                fail(f"--field takes NAME=VALUE, got {item!r}")
            command[name.replace("-", "_")] = _field_value(name, raw)
    reply = _talk(lambda client: client.command(command), timeout)
    console.print_json(data=reply)
    if reply.get("status") != "accepted":
        raise typer.Exit(1)


@cli.command()
def suggest(
    rotation_id: Annotated[str, typer.Argument(help="rotation id")],
    exclude: Annotated[list[str] | None, typer.Option(help="user whose calendar is full")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="RFC 3339 instant: answer as it stood then")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw reply")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply")] = 60.0,
) -> None:
    """Ask for the host suggestion and print the ranked candidates."""
    reply = _talk(lambda client: client.suggest(rotation_id, exclude, as_of), timeout)
    if as_json:
        console.print_json(data=reply)
        return
    if reply.get("error"):
        fail(f"{reply['error']['code']}: {reply['error']['message']}")
    table = Table(
        title=f"{rotation_id}: suggest {reply['host_id'] or 'nobody'} "
        f"({reply['reason']}, position {reply['position']})"
    )
    for column in ("#", "user", "meetings", "last assigned", "available", "joined"):
        table.add_column(column)
    for i, cand in enumerate(reply["candidates"], 1):
        table.add_row(
            str(i),
            cand["user_id"],
            str(cand["meetings"]),
            cand["last_assigned_at"] or "never",
            "yes" if cand["available"] else "no",
            cand["joined_at"],
        )
    console.print(table)


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    cli()


if __name__ == "__main__":
    main()
