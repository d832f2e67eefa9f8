"""Rich renderings of audit answers for the `rotations` CLI (replay, audit, explain).

`print_explanation` takes a decision's explanation or a meeting's whole life
(`projections.audit.explain_meeting`).

Kept apart from service/cli.py so the commands stay thin; every value that came from a
client (ids, names) is escaped, so it is shown as text and never read as rich markup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from events.rotation import LEVEL_JOIN, LEVEL_RETURN
from projections.audit import (
    REASSIGNED,
    SERVICE,
    AuditEntry,
    Decision,
    Explanation,
    MeetingLife,
    can_host,
    describe_candidate,
    describe_cap,
    describe_policy,
    share_of,
)
from projections.replay import Comparison, Rebuilt

MAX_DIFFERENCE_ROWS = 50


class RateColumn(ProgressColumn):
    """Events per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- events/s" if speed is None else f"{speed:,.0f} events/s")


def replay_progress(console: Console) -> Progress:
    """A bar with done/total events, events/s and ETA."""
    return Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def _when(value: datetime | None) -> str:
    return "never" if value is None else value.isoformat()


def audit_table(rotation_id: str, entries: list[AuditEntry]) -> Table:
    table = Table(title=f"{escape(rotation_id)}: {len(entries)} events")
    table.add_column("position")
    table.add_column("v")
    table.add_column("time", no_wrap=True)
    for column in ("event", "what", "by", "suggested", "host", "override"):
        table.add_column(column)
    for e in entries:
        override = "" if e.override is None else ("YES" if e.override else "no")
        table.add_row(
            str(e.position),
            str(e.version),
            e.timestamp.isoformat(sep=" ", timespec="milliseconds"),
            e.event,
            escape(e.summary),
            escape(_actor(e)),
            escape(e.suggested_host_id or ""),
            escape(e.host_id or ""),
            f"[bold yellow]{override}[/]" if e.override else override,
        )
    return table


def _actor(entry: AuditEntry) -> str:
    """Who did it, where the event says: a levelling credit is the service's."""
    if entry.credit_kind in (LEVEL_JOIN, LEVEL_RETURN):
        return SERVICE
    return entry.actor or ""


CANDIDATE_COLUMNS = (
    "#",
    "user",
    "meetings",
    "credits",
    "held",
    "weight",
    "share",
    "priority",
    "cap",
    "hosts",
    "last assigned",
    "joined",
    "join #",
)


def candidates_table(
    title: str, candidates: Iterable[dict[str, Any]], excluded: Collection[str] = ()
) -> Table:
    """Every candidate as the decision saw it: what counted, weight and exact share,
    priority, cap, and whether it could host (else why not; `excluded`: the current host of
    a reassigned meeting)."""
    table = Table(title=title)
    for column in CANDIDATE_COLUMNS:
        table.add_column(column)
    for i, c in enumerate(candidates, 1):
        capped = " (capped)" if c.get("capped") else ""
        table.add_row(
            str(i),
            escape(str(c.get("user_id"))),
            str(c.get("meetings")),
            str(c.get("credits", 0)),
            str(c.get("held", 0)),
            str(c.get("weight")),
            share_of(c),
            str(c.get("priority")),
            describe_cap(c.get("cap")) + capped,
            "excluded (current host)" if c.get("user_id") in excluded else escape(can_host(c)),
            _when(c.get("last_assigned_at")),
            _when(c.get("joined_at")),
            str(c.get("join_seq")),
        )
    return table


def _window(window: dict[str, datetime] | None) -> str:
    if window is None:
        return "every meeting since the last reset"
    return f"{window['start'].isoformat()} to {window['end'].isoformat()}"


def _inputs(decision: Decision) -> list[tuple[str, str]]:
    """What placed the decision, as label and value."""
    return [
        ("policy", describe_policy(decision.policy)),
        ("reference time", decision.reference_at.isoformat()),
        ("window", _window(decision.window)),
        ("preferred host", decision.preferred_host_id or "none"),
    ]


def side_by_side(stored: Decision, derived: Decision) -> Table:
    """The stored and the re-derived decision in two columns; differing rows in red."""
    table = Table(title="stored vs re-derived")
    for column in ("", "stored", "re-derived"):
        table.add_column(column)
    rows = [
        ("suggested", stored.suggested_host_id or "nobody", derived.suggested_host_id or "nobody"),
        ("override", _yes(stored.override), _yes(derived.override)),
        ("reason", stored.reason, derived.reason),
    ]
    rows += [
        (label, was, now)
        for (label, was), (_, now) in zip(_inputs(stored), _inputs(derived), strict=True)
    ]
    count = max(len(stored.candidates), len(derived.candidates))
    for i in range(count):
        rows.append(
            (
                f"candidate {i + 1}",
                describe_candidate(stored.candidates[i] if i < len(stored.candidates) else None),
                describe_candidate(derived.candidates[i] if i < len(derived.candidates) else None),
            )
        )
    for label, was, now in rows:
        style = "red" if was != now else None
        table.add_row(label, escape(was), escape(now), style=style)
    return table


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _decision_lines(label: str, decision: Decision) -> str:
    suggested = escape(decision.suggested_host_id or "nobody")
    override = "yes" if decision.override else "no"
    (policy, *placing) = (f"{name} {escape(value)}" for name, value in _inputs(decision))
    return (
        f"[bold]{label}[/bold]: suggested {suggested}, override {override}, "
        f"reason {escape(decision.reason)}\n  {policy}\n  {'; '.join(placing)}"
    )


def print_explanation(console: Console, x: Explanation | MeetingLife) -> None:
    """A decision (a booking's, a reassignment's): the stored record, the re-derivation and
    the verdict. A meeting's life: each of its events in order, each decision explained."""
    if isinstance(x, MeetingLife):
        print_meeting_life(console, x)
        return
    record = f"{x.record.get('type', '?')}:{x.record.get('id', '?')}" if x.record else "none"
    if x.kind == REASSIGNED:
        by = f" by {escape(x.actor)}" if x.actor else ""
        console.print(
            f"[bold]meeting {escape(x.meeting_id)}[/bold] in rotation {escape(x.rotation_id)}: "
            f"reassigned{by} from {escape(x.previous_host_id or '?')} to "
            f"[bold]{escape(x.host_id)}[/bold]"
        )
        made = "reassigned"
        excluded: tuple[str, ...] = (x.previous_host_id,) if x.previous_host_id else ()
    else:
        console.print(
            f"[bold]meeting {escape(x.meeting_id)}[/bold] in rotation {escape(x.rotation_id)}: "
            f"hosted by [bold]{escape(x.host_id)}[/bold]"
        )
        made, excluded = "booked", ()
    console.print(
        f"{made} at {x.at.isoformat()}; event version {x.version}, position {x.position}, "
        f"recorded {x.timestamp.isoformat()}"
    )
    console.print(f"record {escape(record)}; starts at {_when(x.starts_at)}")
    if x.stored is None:
        console.print(
            "[yellow]stored decision record: none (booked before decision records were "
            "kept); the re-derivation below is all there is[/yellow]"
        )
    else:
        console.print(_decision_lines("stored decision record", x.stored))
        console.print(candidates_table("stored candidates", x.stored.candidates, excluded))
    console.print(
        _decision_lines("re-derived from the events before it", x.derived)
        + f"\n  (directory {escape(x.directory)}, the mode in force when it was {made})"
    )
    console.print(candidates_table("re-derived candidates", x.derived.candidates, excluded))
    if x.matches is False and x.stored is not None:
        console.print(
            "[bold red]MISMATCH: the stored decision record is not what the events "
            "before it re-derive[/bold red]"
        )
        console.print(side_by_side(x.stored, x.derived))
        for difference in x.differences:
            console.print(f"[red]  - {escape(difference)}[/red]")
    elif x.matches:
        console.print("[bold green]matches: the stored decision record re-derives exactly[/]")


def print_meeting_life(console: Console, life: MeetingLife) -> None:
    """Each event of the meeting in order; a decision with its explanation; the verdict."""
    console.print(
        f"[bold]meeting {escape(life.meeting_id)}[/bold] in rotation "
        f"{escape(life.rotation_id)}: {len(life.entries)} "
        f"{'event' if len(life.entries) == 1 else 'events'}, now "
        f"[bold]{escape(life.status.replace('_', '-'))}[/bold], host "
        f"[bold]{escape(life.host_id)}[/bold]"
    )
    for n, item in enumerate(life.entries, 1):
        e = item.entry
        console.rule(
            f"{n}. {item.kind.replace('_', '-')} (version {e.version}, position {e.position}, "
            f"{e.timestamp.isoformat(timespec='milliseconds')})"
        )
        if item.explanation is not None:
            print_explanation(console, item.explanation)
        else:
            console.print(escape(e.summary))
    verdict = life.matches
    if verdict is False:
        console.print(
            f"[bold red]MISMATCH: {len(life.differences)} differences in this meeting's "
            "decision records[/bold red]"
        )
    elif verdict:
        console.print(
            f"[bold green]matches: all {len(life.explanations)} decision records re-derive "
            "exactly[/]"
        )


def print_comparison(console: Console, rebuilt: Rebuilt, c: Comparison) -> None:
    console.print(
        f"rebuilt {rebuilt.applied} events into {c.rebuilt_table} in {rebuilt.seconds:.2f}s "
        f"(position {c.rebuilt_position}); live {c.live_table} is at position "
        f"{c.live_position}"
    )
    if c.identical:
        console.print(f"[bold green]identical: {c.rebuilt_rows} rotations, row by row[/bold green]")
        return
    console.print(
        f"[bold red]{len(c.differences)} differences[/bold red] "
        f"({c.live_rows} live rows, {c.rebuilt_rows} rebuilt rows)"
    )
    if c.live_position != c.rebuilt_position:
        console.print(
            "[yellow]the live table is at another position: differences may be lag, "
            "not corruption[/yellow]"
        )
    table = Table()
    for column in ("rotation", "what", "live", "rebuilt"):
        table.add_column(column)
    ordered = sorted(c.differences, key=lambda d: (d.rotation_id or d.rotation_key, d.what))
    for d in ordered[:MAX_DIFFERENCE_ROWS]:
        table.add_row(
            escape(d.rotation_id or d.rotation_key),
            d.what,
            escape(_short(d.live)),
            escape(_short(d.rebuilt)),
        )
    console.print(table)
    if len(ordered) > MAX_DIFFERENCE_ROWS:
        console.print(f"... and {len(ordered) - MAX_DIFFERENCE_ROWS} more differences")


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
