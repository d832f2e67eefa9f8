"""`rotations directory user X --name ...` changes only what it names: the rest is read from
the store and sent along; without a readable store it refuses unless told --replace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service import cli_directory
from service.application import RotationsApplication
from service.cli import cli
from service.store import store_environment
from tests.unit.commands import fact

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    """kari: no seat, no calendar, may manage rotations."""
    url = f"sqlite:///{tmp_path}/directory.sqlite"
    app = RotationsApplication(env=store_environment(url))
    fields = {"seat": False, "calendar_connected": False, "calendar_sync": True}
    fact(
        app,
        "UserUpdated",
        user_id="kari",
        name="Kari N",
        permissions=["manage_rotations"],
        **fields,
    )
    app.close()
    yield url


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The facts the command would publish (no broker in unit tests)."""
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(cli_directory, "_publish", lambda f, timeout: sent.append(f))
    return sent


def invoke(store: str, *args: str) -> tuple[int, str]:
    env = {"ROTATIONS_STORE": store, "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["directory", "user", *args], env=env)
    return result.exit_code, result.output


def facts_of(sent: list[dict[str, Any]]) -> dict[str, Any]:
    (one,) = sent
    return {k: v for k, v in one.items() if k != "message_id"}


def test_a_new_name_keeps_seat_calendar_and_permissions(
    store: str, published: list[dict[str, Any]]
) -> None:
    code, output = invoke(store, "kari", "--name", "Kari Nordmann")

    assert code == 0, output
    assert facts_of(published) == {
        "type": "UserUpdated",
        "user_id": "kari",
        "name": "Kari Nordmann",
        "seat": False,
        "calendar_connected": False,
        "calendar_sync": True,
        "permissions": ["manage_rotations"],
    }


def test_named_flags_change_and_the_rest_stays(store: str, published: list[dict[str, Any]]) -> None:
    code, output = invoke(store, "kari", "--calendar", "--no-permissions")

    assert code == 0, output
    sent = facts_of(published)
    assert sent["calendar_connected"] is True and sent["permissions"] == []
    assert sent["seat"] is False and sent["name"] == "Kari N"


def test_a_user_the_store_does_not_know_starts_from_the_defaults(
    store: str, published: list[dict[str, Any]]
) -> None:
    code, output = invoke(store, "liv", "--permission", "schedule_for_others")

    assert code == 0, output
    sent = facts_of(published)
    assert sent["name"] == "liv" and sent["seat"] and sent["calendar_connected"]
    assert sent["permissions"] == ["schedule_for_others"]


def test_an_unreadable_store_is_refused_and_says_replace(published: list[dict[str, Any]]) -> None:
    code, output = invoke(UNREACHABLE, "kari", "--name", "Kari")

    assert code == 2
    assert output.startswith("error: cannot open the event store") and "--replace" in output
    assert len(output.strip().splitlines()) == 1
    assert published == []


def test_replace_sends_what_is_given_without_reading_the_store(
    published: list[dict[str, Any]],
) -> None:
    code, output = invoke(UNREACHABLE, "kari", "--name", "Kari", "--no-seat", "--replace")

    assert code == 0, output
    sent = facts_of(published)
    assert sent["name"] == "Kari" and sent["seat"] is False
    assert sent["calendar_connected"] is True and sent["permissions"] == []


def test_deactivate_needs_no_store(published: list[dict[str, Any]]) -> None:
    code, output = invoke(UNREACHABLE, "kari", "--deactivate")

    assert code == 0, output
    assert facts_of(published) == {"type": "UserDeactivated", "user_id": "kari"}


def test_no_store_yet_means_an_unknown_user_and_creates_none(
    tmp_path: Path, published: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path}/none-yet.sqlite"
    code, output = invoke(url, "kari", "--name", "Kari")

    assert code == 0, output
    assert facts_of(published)["name"] == "Kari"
    assert not (tmp_path / "none-yet.sqlite").exists()
