"""`rotations list | show | directory list` read the store and its read model, no broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.cli import cli
from service.store import store_environment
from tests.unit.commands import book, fact, ok, user

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    """Three rotations (one deleted, one stored after the view's position), users, a team."""
    url = f"sqlite:///{tmp_path}/reading.sqlite"
    app = RotationsApplication(env=store_environment(url))
    user(app, "kari", permissions=["manage_rotations"])
    user(app, "ola", eligible=False)
    fact(app, "TeamUpdated", team_id="sales", name="Sales team", members=["per", "liv"])
    ok(app, "CreateRotation", "emea", name="Sales EMEA", members=["kari", "ola"])
    ok(app, "AddTeam", "emea", team_id="sales")
    book(app, "emea", "m1", host_id="kari")
    ok(app, "ToggleAvailability", "emea", user_id="ola", available=False)
    ok(app, "CreateRotation", "gone", name="Old", members=["kari"])
    ok(app, "DeleteRotation", "gone")
    RotationProjector(app, open_view(app)).catch_up()
    ok(app, "CreateRotation", "apac", name="Sales APAC", members=["liv"])  # past the view
    ok(app, "RenameRotation", "emea", name="EMEA")  # past the view too
    app.close()
    yield url


def invoke(store: str, *args: str) -> tuple[int, str]:
    env = {"ROTATIONS_STORE": store, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_list_json_has_every_rotation_with_counts_and_deletion(store: str) -> None:
    code, output = invoke(store, "list", "--json")

    assert code == 0, output
    rows = [json.loads(line) for line in output.splitlines()]
    assert [(r["rotation_id"], r["name"], r["members"], r["deleted"]) for r in rows] == [
        ("apac", "Sales APAC", 1, False),
        ("emea", "EMEA", 4, False),
        ("gone", "Old", 1, True),
    ]
    assert rows[1]["teams"] == 1 and rows[1]["version"] == 5


def test_list_prints_a_table(store: str) -> None:
    code, output = invoke(store, "list")

    assert code == 0, output
    assert "3 rotations" in output
    for expected in ("apac", "Sales APAC", "EMEA", "gone"):
        assert expected in output


def test_list_does_not_move_the_read_model(store: str) -> None:
    app = RotationsApplication(env=store_environment(store))
    before = RotationProjector(app, open_view(app)).position
    app.close()

    assert invoke(store, "list")[0] == 0

    app = RotationsApplication(env=store_environment(store))
    try:
        assert RotationProjector(app, open_view(app)).position == before
    finally:
        app.close()


def test_list_of_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    RotationsApplication(env=store_environment(url)).close()  # a store with nothing in it
    code, output = invoke(url, "list", "--json")

    assert code == 0 and output == ""


def test_show_json_has_members_with_their_state_and_teams(store: str) -> None:
    code, output = invoke(store, "show", "emea", "--json")

    assert code == 0, output
    shown = json.loads(output)
    assert shown["name"] == "EMEA" and shown["deleted"] is False
    members = {m["user_id"]: m for m in shown["members"]}
    assert list(members) == ["kari", "ola", "per", "liv"]
    assert members["kari"]["meetings"] == 1 and members["kari"]["last_assigned_at"]
    assert members["ola"]["available"] is False
    assert members["per"]["sources"] == ["team:sales"]
    assert shown["teams"] == {"sales": ["per", "liv"]}


def test_show_prints_members_and_teams(store: str) -> None:
    code, output = invoke(store, "show", "emea")

    assert code == 0, output
    for expected in ("emea: EMEA", "kari", "never", "team:sales", "teams", "per, liv"):
        assert expected in output


def test_show_a_deleted_rotation_says_so(store: str) -> None:
    code, output = invoke(store, "show", "gone")

    assert code == 0, output
    assert "(deleted)" in output


def test_show_an_unknown_rotation_fails(store: str) -> None:
    code, output = invoke(store, "show", "nope")

    assert code == 1
    assert "no rotation 'nope'" in output


def test_directory_list_json_has_users_and_teams(store: str) -> None:
    code, output = invoke(store, "directory", "list", "--json")

    assert code == 0, output
    listed = json.loads(output)
    users = {u["user_id"]: u for u in listed["users"]}
    assert users["kari"]["permissions"] == ["manage_rotations"]
    assert users["kari"]["ineligible"] is None
    assert users["ola"]["ineligible"] == "no_calendar"
    assert listed["teams"] == [
        {"team_id": "sales", "name": "Sales team", "members": ["per", "liv"]}
    ]


def test_directory_list_prints_eligibility(store: str) -> None:
    code, output = invoke(store, "directory", "list")

    assert code == 0, output
    for expected in ("2 users", "no (no_calendar)", "1 teams", "Sales team", "per, liv"):
        assert expected in output


def test_a_store_that_cannot_be_opened_is_one_line() -> None:
    code, output = invoke(UNREACHABLE, "list")

    assert code == 2
    assert output.startswith("error: cannot open the event store") and "Traceback" not in output
