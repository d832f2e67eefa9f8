"""Tables of the CLI's answers: suggestions, rotations, a rotation's policy and meetings, the
directory, the command catalogue.

Apart from the commands that print them, so each table is tested from a value, no broker
or store needed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from projections.catalog import (
    Directory,
    MeetingsListing,
    PolicyView,
    RotationDetail,
    RotationSummary,
)
from service.cli_fields import CommandDoc
from service.contracts import Candidate, Cap, Fairness, SuggestionReply


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def eligibility(candidate: Candidate) -> str:
    """`yes`, or `no (why)`: the reason the directory gives (no_calendar, no_seat, ...)."""
    if candidate.eligible:
        return "yes"
    return f"no ({candidate.why})" if candidate.why else "no"


def _time(value: datetime | None, never: str = "never") -> str:
    return value.isoformat() if value else never


def cap_text(cap: Cap | dict[str, Any] | None) -> str:
    """A cap in the short form `rotations send` takes (`5/week`), or `-` for none."""
    if cap is None:
        return "-"
    if isinstance(cap, Cap):
        return f"{cap.meetings}/{cap.per}"
    return f"{cap['meetings']}/{cap['per']}"


def fairness_text(fairness: Fairness | None) -> str:
    """The reply's fairness summary on one line (a reply from before v2 has none)."""
    if fairness is None:
        return "fairness: not given"
    spread = "-" if fairness.spread is None else str(fairness.spread)
    return (
        f"fairness: {fairness.meetings} meetings + credits, spread {spread}, "
        f"deviation {fairness.deviation:g}"
    )


SUGGESTION_COLUMNS = (
    "#",
    "user",
    "meetings",
    "credits",
    "held",
    "weight",
    "priority",
    "cap",
    "capped",
    "last assigned",
    "available",
    "eligible",
    "joined",
)


def suggestion_table(rotation_id: str, reply: SuggestionReply) -> Table:
    """The ranked candidates with what ranks them (meetings, credits, holds, weight, priority),
    their caps, whether each may host and why not; the fairness summary below."""
    table = Table(
        title=f"{rotation_id}: suggest {reply.host_id or 'nobody'} "
        f"({reply.reason}, position {reply.position})",
        caption=fairness_text(reply.fairness),
    )
    for column in SUGGESTION_COLUMNS:
        table.add_column(column)
    for i, cand in enumerate(reply.candidates, 1):
        table.add_row(
            str(i),
            cand.user_id,
            str(cand.meetings),
            str(cand.credits),
            str(cand.held),
            str(cand.weight),
            str(cand.priority),
            cap_text(cand.cap),
            yes_no(cand.capped),
            _time(cand.last_assigned_at),
            yes_no(cand.available),
            eligibility(cand),
            _time(cand.joined_at),
        )
    return table


def policy_view(view: PolicyView) -> RenderableType:
    """A rotation's policy, field by field, and every member's options and standing now."""
    deleted = " [red](deleted)[/red]" if view.deleted else ""
    policy = Table(
        title=f"{view.rotation_id}: {view.name}{deleted} (version {view.version}): policy"
    )
    for column in ("field", "value", ""):
        policy.add_column(column)
    defaults = set(view.defaults())
    for name, value in view.policy.items():
        policy.add_row(name, _policy_value(name, value), "default" if name in defaults else "")
    if view.window is not None:
        window = f"{view.window['start'].isoformat()} to {view.window['end'].isoformat()}"
    else:
        window = "since the last reset"
    members = Table(title="members", caption=f"counted at {view.at.isoformat()}, window {window}")
    for column in ("user", "weight", "priority", "cap", "cap from", "credits", "meetings"):
        members.add_column(column)
    members.add_column("capped")
    members.add_column("available")
    for m in view.members:
        members.add_row(
            m.user_id,
            str(m.weight),
            str(m.priority),
            cap_text(m.cap),
            m.cap_from or "-",
            str(m.credits),
            str(m.meetings),
            yes_no(m.capped),
            yes_no(m.available),
        )
    return Group(policy, members)


def _policy_value(name: str, value: Any) -> str:
    if name == "cap":
        return cap_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def meetings_table(listing: MeetingsListing) -> Table:
    """A rotation's meetings in booking order: host now, record, times, status."""
    deleted = " [red](deleted)[/red]" if listing.deleted else ""
    table = Table(title=f"{listing.rotation_id}{deleted}: {len(listing.meetings)} meetings")
    for column in ("meeting", "host", "record", "booked", "starts", "status", "changes"):
        table.add_column(column)
    for m in listing.meetings:
        record = f"{m.record_type}:{m.record_id}" if m.record_type else "-"
        changes = [
            f"{count}x {what}"
            for count, what in ((m.reassignments, "reassigned"), (m.reschedules, "rescheduled"))
            if count
        ]
        table.add_row(
            m.meeting_id,
            m.host_id,
            record,
            m.booked_at.isoformat(),
            _time(m.starts_at, "-"),
            m.status,
            ", ".join(changes) or "-",
        )
    return table


def rotations_table(rotations: list[RotationSummary]) -> Table:
    table = Table(title=f"{len(rotations)} rotations")
    for column in ("rotation", "name", "members", "teams", "deleted", "version"):
        table.add_column(column)
    for r in rotations:
        table.add_row(
            r.rotation_id, r.name, str(r.members), str(r.teams), yes_no(r.deleted), str(r.version)
        )
    return table


def rotation_view(detail: RotationDetail) -> RenderableType:
    """A rotation's members with their state, and its teams."""
    deleted = " [red](deleted)[/red]" if detail.deleted else ""
    members = Table(
        title=f"{detail.rotation_id}: {detail.name}{deleted} (version {detail.version})"
    )
    for column in ("user", "meetings", "available", "last assigned", "joined", "via"):
        members.add_column(column)
    for m in detail.members:
        members.add_row(
            m.user_id,
            str(m.meetings),
            yes_no(m.available),
            m.last_assigned_at or "never",
            m.joined_at,
            ", ".join(m.sources),
        )
    teams = Table(title="teams")
    teams.add_column("team")
    teams.add_column("members")
    for team, ids in detail.teams.items():
        teams.add_row(team, ", ".join(ids))
    return Group(members, teams) if detail.teams else members


def directory_view(directory: Directory) -> RenderableType:
    users = Table(title=f"{len(directory.users)} users")
    for column in ("user", "name", "seat", "calendar", "sync", "permissions", "eligible"):
        users.add_column(column)
    for u in directory.users:
        why = u.ineligibility()
        users.add_row(
            u.user_id,
            u.name,
            yes_no(u.seat),
            yes_no(u.calendar_connected),
            yes_no(u.calendar_sync),
            ", ".join(u.permissions),
            f"no ({why})" if why else "yes",
        )
    teams = Table(title=f"{len(directory.teams)} teams")
    for column in ("team", "name", "members"):
        teams.add_column(column)
    for t in directory.teams:
        teams.add_row(t.team_id, t.name, ", ".join(t.members))
    return Group(users, teams)


def commands_table(docs: list[CommandDoc]) -> Table:
    """Every command type, its --field names and kinds, and an example."""
    table = Table(title="commands (rotations send TYPE --rotation-id ID --field NAME=VALUE ...)")
    for column in ("type", "fields (* required)", "example"):
        table.add_column(column)
    for doc in docs:
        fields = "\n".join(f"{f.name}{'*' if f.required else ''}: {f.kind}" for f in doc.fields)
        table.add_row(doc.type, fields or "-", doc.example)
    return table
