"""The README's sessions run as written: every `$` command of its "A short session", "Audits"
and "Teams" console blocks, in order, against one service on a private store, and every output
the README shows under a command appears in what that command printed. The "Policies",
"Meeting lifecycle", "Holds" and "What-if" blocks run the same way against a service of their own (a
fresh store, the directory open as under `rotations dev`): they name rotations of their own,
so they need nothing of the first session, and a test of their own keeps each within its
time limit.

The environment stands in for `rotations dev` plus a second terminal with the venv activated:
the session's broker and a `rotations serve` on a fresh SQLite store (the log check reads its
log), and each block runs in one `bash` with the venv's `bin` first on PATH, so a variable a
command sets (`before=$(date ...)`) is there for the next. Between the Audits and the Teams
blocks the service is restarted with `ROTATIONS_DIRECTORY=required`, as the README says to.

Shown output is matched loosely where the README says it is: `…` stands for anything (ids,
times, positions), table borders are dropped and runs of whitespace are one space.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.client import RotationsClient
from tests.integration.service_process import ServiceProcess

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent  # the venv's bin: `rotations` and `python`, as activated
SESSION = "## A short session"
AUDITS = "## Audits: every answer re-derived from the events"
TEAMS = "## Teams, eligibility and permissions"
POLICIES = "## Policies: weights, windows, caps and levelling"
LIFECYCLE = "## Meeting lifecycle"
HOLDS = "## Holds: two schedulers never get the same member by accident"
WHAT_IF = "## What-if simulation and preview"
MARK = "@@readme-command-done@@"
BORDERS = re.compile(r"[\u2500-\u259f]")  # rich's box drawing (and its progress bar)


@dataclass
class Step:
    command: str
    shown: list[str] = field(default_factory=list)

    def expected_exit(self) -> int:
        """A rejected command exits with 1 (the README says so); everything else with 0."""
        return 1 if '"status": "rejected"' in "\n".join(self.shown) else 0


def section(text: str, heading: str) -> str:
    """The README's section under the heading (a prefix of it), up to the next `## `."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    assert len(starts) == 1, f"README has {len(starts)} sections {heading!r}"
    body: list[str] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        body.append(line)
    return "\n".join(body)


def console_steps(text: str) -> list[Step]:
    """The `$` commands of every ```console block, each with the lines shown under it; a line
    holding only a `# comment` in the column of the command's comment continues that comment
    and is not output (a table's ` #  user ...` header is)."""
    steps: list[Step] = []
    inside = False
    comment_column = -1
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside or not line.strip():
            continue
        if line.startswith("$ "):
            steps.append(Step(line[2:]))
            comment_column = line.find("  #") + 2 if "  #" in line else -1
        elif comment_column > 0 and line.find("#") == comment_column == len(line) - len(
            line.lstrip()
        ):
            continue
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1].shown.append(line)
    return steps


def normalized(text: str) -> str:
    return " ".join(BORDERS.sub(" ", text).split())


def shown_pattern(shown: list[str]) -> re.Pattern[str]:
    """`…` is anything (space around it optional); other whitespace is some whitespace."""
    pieces = [piece.strip() for piece in normalized(" ".join(shown)).split("…")]
    words = [r"\s+".join(map(re.escape, piece.split(" "))) for piece in pieces]
    return re.compile(r"\s*.*?\s*".join(word for word in words if word), re.DOTALL)


def run_block(steps: list[Step], env: dict[str, str], cwd: Path) -> list[tuple[int, str]]:
    """Each step's exit code and output (stdout and stderr), run in order in one bash."""
    script = "".join(f"{step.command}\nprintf '\\n{MARK} %s\\n' \"$?\"\n" for step in steps)
    result = subprocess.run(
        ["bash", "-c", script],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=400,
        check=False,
    )
    parts = re.split(rf"\n{MARK} (\d+)\n", result.stdout)
    outputs = parts[:-1:2]
    codes = [int(code) for code in parts[1::2]]
    assert len(codes) == len(steps), f"bash ran {len(codes)} of {len(steps)}:\n{result.stdout}"
    return list(zip(codes, outputs, strict=True))


def check_block(heading: str, env: dict[str, str], cwd: Path) -> None:
    steps = console_steps(section(README.read_text(encoding="utf-8"), heading))
    assert steps, f"no console commands under {heading!r}"
    failures = []
    for step, (code, output) in zip(steps, run_block(steps, env, cwd), strict=True):
        if code != step.expected_exit():
            failures.append(
                f"$ {step.command}\nexited {code}, not {step.expected_exit()}:\n{output}"
            )
        elif step.shown and not shown_pattern(step.shown).search(normalized(output)):
            shown = "\n".join(step.shown)
            failures.append(f"$ {step.command}\nthe README shows:\n{shown}\nit printed:\n{output}")
    assert not failures, f"{heading}:\n\n" + "\n\n".join(failures)


def wait_ready(service: ServiceProcess) -> None:
    """The service's readiness check, on a loop of its own (this test is not async)."""

    async def ready() -> None:
        async with RotationsClient(service.settings, timeout=30) as client:
            await service.wait_ready(client)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, ready()).result()


@pytest.fixture
def readme_service(bootstrap_servers: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(bootstrap_servers, f"sqlite:///{tmp_path}/readme.sqlite", tmp_path)
    yield service
    if service.process is not None:
        service.stop()
        service.check_shutdown_log()


def terminal(service: ServiceProcess, tmp_path: Path) -> dict[str, str]:
    """The second terminal: the venv activated, pointed at the service's broker, topics and
    store (what `rotations dev`'s defaults would be); not its directory mode or HTTP port."""
    env = {
        **service.env,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(BIN.parent),
        "COLUMNS": "200",
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
    }
    for name in ("ROTATIONS_DIRECTORY", "ROTATIONS_HTTP_PORT", "ROTATIONS_GROUP_ID"):
        env.pop(name, None)
    return env


@pytest.mark.timeout(900)
def test_the_readme_sessions_run_as_written(readme_service: ServiceProcess, tmp_path: Path) -> None:
    env = terminal(readme_service, tmp_path)
    readme_service.start()
    wait_ready(readme_service)
    check_block(SESSION, env, tmp_path)
    check_block(AUDITS, env, tmp_path)

    # "stop `rotations dev` (Ctrl-C) and start it again as ROTATIONS_DIRECTORY=required ..."
    assert readme_service.stop() == 0, readme_service.log_tail()
    readme_service.env["ROTATIONS_DIRECTORY"] = "required"
    readme_service.start()
    wait_ready(readme_service)
    check_block(TEAMS, env, tmp_path)


@pytest.mark.timeout(900)
def test_the_readme_policies_and_lifecycle_run_as_written(
    readme_service: ServiceProcess, tmp_path: Path
) -> None:
    env = terminal(readme_service, tmp_path)
    readme_service.start()
    wait_ready(readme_service)
    check_block(POLICIES, env, tmp_path)
    check_block(LIFECYCLE, env, tmp_path)
    check_block(HOLDS, env, tmp_path)
    check_block(WHAT_IF, env, tmp_path)


def test_the_readme_names_every_command_of_help() -> None:
    help_text = subprocess.run(
        [str(BIN / "rotations"), "--help"],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    panel = help_text.split("Commands", 1)[1]
    names = re.findall(r"^\W+([a-z][a-z-]*)\s{2,}\S", panel, re.MULTILINE)
    assert "serve" in names and "directory" in names, help_text
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("`rotations --help` lists every command") :].split("\n\n", 1)[0]
    missing = [name for name in names if f"`{name}`" not in paragraph]
    assert not missing, f"the README's --help paragraph leaves out {missing}:\n{paragraph}"
