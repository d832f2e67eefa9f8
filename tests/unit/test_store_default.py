"""The default store is one file in the user's data folder, whatever the working directory; the
audit commands say where they looked instead of creating an empty store there.

Every test points XDG_DATA_HOME (which platformdirs honours on Linux) at a tmp dir: none may
touch the real per-user folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.application import RotationsApplication
from service.cli import cli
from service.settings import Settings
from service.store import missing_store, sqlite_path, store_environment


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("ROTATIONS_STORE", raising=False)
    yield home


def test_the_default_store_is_in_the_user_data_folder_from_any_folder(
    data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = f"sqlite:///{data_home / 'rotations' / 'rotations.sqlite'}"
    stores = set()
    for folder in (tmp_path / "a", tmp_path / "b"):
        folder.mkdir()
        monkeypatch.chdir(folder)
        stores.add(Settings().store)

    assert stores == {expected}
    assert Path(str(sqlite_path(expected))).is_absolute()


def test_rotations_store_still_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATIONS_STORE", "postgresql://u@db:5432/rotations")

    assert Settings().store == "postgresql://u@db:5432/rotations"


def test_missing_store_names_only_a_sqlite_file_that_is_not_there(tmp_path: Path) -> None:
    there = tmp_path / "there.sqlite"
    RotationsApplication(env=store_environment(f"sqlite:///{there}")).close()

    assert missing_store(f"sqlite:///{tmp_path}/absent.sqlite") == tmp_path / "absent.sqlite"
    assert missing_store(f"sqlite:///{there}") is None
    assert missing_store("sqlite:///:memory:") is None
    assert missing_store("postgresql://postgres@127.0.0.1:5432/test") is None


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "r1"],
        ["audit", "r1"],
        ["explain", "r1", "m1"],
        ["replay"],
        ["report", "r1"],
        ["directory", "list"],
    ],
    ids=lambda args: " ".join(args),
)
def test_reading_commands_say_there_is_no_store_and_create_none(
    command: list[str], data_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `report` would write report.html here
    store = data_home / "rotations" / "rotations.sqlite"

    result = CliRunner().invoke(cli, command, env={"COLUMNS": "200"})

    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: no store at {store}"), result.output
    assert "ROTATIONS_STORE" in lines[0]
    assert not store.exists() and not store.parent.exists()
    assert not (tmp_path / "report.html").exists()


def test_an_explicit_missing_store_is_named_too(tmp_path: Path) -> None:
    absent = tmp_path / "elsewhere" / "rotations.sqlite"

    result = CliRunner().invoke(cli, ["list"], env={"ROTATIONS_STORE": f"sqlite:///{absent}"})

    assert result.exit_code == 2 and f"no store at {absent}" in result.output
    assert not absent.parent.exists()
