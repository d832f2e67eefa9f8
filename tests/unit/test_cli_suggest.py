"""`rotations suggest`: the table says who may not host and why; a bad request exits 2."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from rich.console import Console
from typer.testing import CliRunner

from service.cli import cli
from service.cli_render import suggestion_table
from service.contracts import Candidate, SuggestionReply

AT = datetime(2026, 11, 24, 17, 20, 1, tzinfo=UTC)


def rendered(reply: SuggestionReply) -> str:
    out = StringIO()
    Console(file=out, width=200).print(suggestion_table("sales-emea", reply))
    return out.getvalue()


def candidate(user_id: str, **extra: object) -> Candidate:
    fields: dict[str, object] = {
        "user_id": user_id,
        "meetings": 0,
        "last_assigned_at": None,
        "available": True,
        "joined_at": AT,
        **extra,
    }
    return Candidate.model_validate(fields)


def row_of(text: str, user_id: str) -> list[str]:
    rows = [line.split("│")[1:-1] for line in text.splitlines() if line.startswith("│")]
    (row,) = [cells for cells in rows if cells[1].strip() == user_id]
    return [cell.strip() for cell in row]


def test_the_table_says_eligible_and_why_not() -> None:
    reply = SuggestionReply(
        rotation_id="sales-emea",
        host_id="per",
        reason="fewest_meetings",
        position=7,
        candidates=[
            candidate("per"),
            candidate("kari", meetings=1, last_assigned_at=AT, eligible=False, why="no_calendar"),
            candidate("ola", available=False),
        ],
    )

    text = rendered(reply)

    assert "sales-emea: suggest per (fewest_meetings, position 7)" in text
    assert "eligible" in text
    assert "no (no_calendar)" in row_of(text, "kari")
    assert "2026-11-24T17:20:01+00:00" in row_of(text, "kari")
    assert row_of(text, "per")[4:6] == ["yes", "yes"]
    assert row_of(text, "ola")[4:6] == ["no", "yes"]


def test_nobody_to_suggest() -> None:
    text = rendered(SuggestionReply(rotation_id="r", reason="no_available_member", position=3))

    assert "suggest nobody (no_available_member, position 3)" in text


@pytest.mark.parametrize("as_of", ["yesterday", "2026-11-24T17:20:05"])
def test_a_bad_as_of_exits_2_before_connecting(as_of: str) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["suggest", "r", "--as-of", as_of, "--timeout", "1"], env=env)

    assert result.exit_code == 2
    assert result.output.startswith("error: as_of:") and "Traceback" not in result.output
