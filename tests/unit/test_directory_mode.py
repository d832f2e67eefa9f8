"""Decisions are re-derived with the directory mode that was in force when they were made."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from projections.audit import explain_booking
from projections.point_in_time import suggest_as_of
from service.application import RotationsApplication
from service.cli import cli
from service.store import store_environment
from tests.unit.commands import book, ok, user


def test_explain_under_another_shell_mode_uses_the_recorded_mode(tmp_path: Path) -> None:
    """The README's flow: bookings under `rotations dev` (open), explained from a shell whose
    default is `required`, where none of the members is in the directory."""
    url = f"sqlite:///{tmp_path}/dev.sqlite"
    service = RotationsApplication(env=store_environment(url), directory="open")
    assert service.record_directory_mode()
    assert not service.record_directory_mode()  # unchanged: nothing more stored
    ok(service, "CreateRotation", "r", name="Sales", members=["kari", "ola"])
    book(service, "r", "m1")
    service.close()

    env = {"ROTATIONS_STORE": url, "ROTATIONS_DIRECTORY": "required", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["explain", "r", "m1"], env=env)

    assert result.exit_code == 0, result.output
    assert "MISMATCH" not in result.output
    assert "directory open" in result.output
    assert "matches" in result.output


def test_each_booking_is_explained_under_its_own_mode(
    open_app: Callable[[], RotationsApplication],
) -> None:
    opened = open_app()
    opened.record_directory_mode()
    ok(opened, "CreateRotation", "r", name="Sales", members=["kari", "ola"])
    book(opened, "r", "m1")  # open: kari and ola (unknown to the directory) both can host
    between = datetime.now(UTC)
    strict = RotationsApplication(env=dict(opened.env), directory="required")
    try:
        assert strict.record_directory_mode()  # the service restarted in required mode
        user(strict, "ola")
        user(strict, "tester")  # the actor of every test command
        book(strict, "r", "m2")  # only ola is in the directory now

        first = explain_booking(strict, "r", "m1")
        second = explain_booking(strict, "r", "m2")
        assert (first.directory, first.matches) == ("open", True)
        assert (second.directory, second.matches) == ("required", True)
        assert second.host_id == "ola"
        then = suggest_as_of(strict, "r", between)  # as it was answered then: open
        assert [c.eligible for c in then.suggestion.candidates] == [True, True]
        now = suggest_as_of(strict, "r", datetime.now(UTC))
        assert {c.user_id: c.why for c in now.suggestion.candidates} == {
            "kari": "unknown_user",
            "ola": None,
        }
    finally:
        strict.close()


def test_without_a_recorded_mode_the_readers_own_mode_stands_in(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()  # never recorded a mode (an application that only reads, a test)
    ok(app, "CreateRotation", "r", name="Sales", members=["kari"])
    book(app, "r", "m1")
    assert explain_booking(app, "r", "m1").directory == "open"
