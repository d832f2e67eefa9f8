"""`rotations suggest`: the table says who may not host and why, what ranks each member
(weight, priority, credits, holds, caps) and how fair it stands; a bad request exits 2."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from service import cli as cli_module
from service.cli import cli
from service.cli_render import SUGGESTION_COLUMNS, suggestion_table
from service.contracts import Candidate, Fairness, SuggestionReply

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
    available = SUGGESTION_COLUMNS.index("available")
    assert row_of(text, "per")[available : available + 2] == ["yes", "yes"]
    assert row_of(text, "ola")[available : available + 2] == ["no", "yes"]


def test_the_table_shows_what_ranks_each_member_and_the_fairness() -> None:
    reply = SuggestionReply(
        rotation_id="sales-emea",
        host_id="per",
        reason="preferred_host",
        position=9,
        candidates=[
            candidate("per", weight=200, priority=4, credits=2, held=1),
            candidate("kari", meetings=5, cap={"meetings": 5, "per": "week"}, capped=True),
        ],
        fairness=Fairness(meetings=7, spread=3, deviation=0.238095),
    )

    text = rendered(reply)

    columns = dict(zip(SUGGESTION_COLUMNS, row_of(text, "per"), strict=True))
    assert {k: columns[k] for k in ("weight", "priority", "credits", "held", "cap", "capped")} == {
        "weight": "200",
        "priority": "4",
        "credits": "2",
        "held": "1",
        "cap": "-",
        "capped": "no",
    }
    kari = dict(zip(SUGGESTION_COLUMNS, row_of(text, "kari"), strict=True))
    assert (kari["cap"], kari["capped"], kari["meetings"]) == ("5/week", "yes", "5")
    assert "fairness: 7 meetings + credits, spread 3, deviation 0.238095" in text


def test_a_reply_without_fairness_says_so() -> None:
    text = rendered(SuggestionReply(rotation_id="r", host_id="a", reason="x", position=1))

    assert "fairness: not given" in text


def test_nobody_to_suggest() -> None:
    text = rendered(SuggestionReply(rotation_id="r", reason="no_available_member", position=3))

    assert "suggest nobody (no_available_member, position 3)" in text


class FakeClient:
    """What `suggest` sends, and a reply without a broker."""

    def __init__(self) -> None:
        self.sent: dict[str, Any] = {}

    async def suggest(self, rotation_id: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.sent = {"rotation_id": rotation_id, "args": args, **kwargs}
        reply = SuggestionReply(
            rotation_id=rotation_id,
            host_id="per",
            reason="preferred_host",
            position=3,
            candidates=[candidate("per")],
            fairness=Fairness(meetings=0, spread=None, deviation=0),
        )
        return dict(json.loads(reply.model_dump_json()))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(cli_module, "_talk", lambda action, timeout: asyncio.run(action(client)))
    return client


def test_starts_at_and_the_preferred_host_are_sent(fake: FakeClient) -> None:
    args = ["suggest", "r", "--starts-at", "2026-11-24T17:20:05+01:00", "--preferred-host", "per"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert fake.sent["preferred_host_id"] == "per"
    assert fake.sent["starts_at"] == datetime.fromisoformat("2026-11-24T17:20:05+01:00")
    assert "suggest per (preferred_host, position 3)" in result.output
    assert "fairness: 0 meetings + credits, spread -, deviation 0" in result.output


def test_without_them_nothing_more_is_sent(fake: FakeClient) -> None:
    result = CliRunner().invoke(cli, ["suggest", "r", "--json"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert fake.sent["starts_at"] is None and fake.sent["preferred_host_id"] is None
    assert json.loads(result.output)["fairness"]["deviation"] == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [("--starts-at", "tomorrow"), ("--starts-at", "2026-11-24T17:20:05"), ("--preferred-host", "")],
)
def test_a_bad_starts_at_or_preferred_host_exits_2_before_connecting(
    option: str, value: str
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["suggest", "r", option, value, "--timeout", "1"], env=env)

    assert result.exit_code == 2, result.output
    field = "starts_at" if option == "--starts-at" else "preferred_host_id"
    assert result.output.startswith(f"error: {field}:") and "Traceback" not in result.output


@pytest.mark.parametrize("as_of", ["yesterday", "2026-11-24T17:20:05"])
def test_a_bad_as_of_exits_2_before_connecting(as_of: str) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["suggest", "r", "--as-of", as_of, "--timeout", "1"], env=env)

    assert result.exit_code == 2
    assert result.output.startswith("error: as_of:") and "Traceback" not in result.output
