"""The audit report: folded from the events, self-contained, and drawn by a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from events.errors import UnknownRotation
from projections.report import build_report, render_html
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER
from service.store import store_environment
from tests.environment import unavailable

RID = "sales-emea"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The application's clock and the events' timestamps, moved on by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("eventsourcing.domain.datetime_now_with_tzinfo", clock)
    return clock


def run(app: RotationsApplication, type_: str, **fields: Any) -> None:
    message = {"command_id": str(uuid4()), "rotation_id": RID, "actor": "tester", **fields}
    reply = app.execute(COMMAND_ADAPTER.validate_python({"type": type_, **message}))
    assert reply.status == "accepted", reply.error


def book(app: RotationsApplication, meeting: str, host: str | None = None) -> None:
    fields: dict[str, Any] = {"meeting_id": meeting, "record": {"type": "deal", "id": meeting}}
    if host is not None:
        fields["host_id"] = host
    run(app, "BookMeeting", **fields)


def history(app: RotationsApplication, clock: Clock) -> None:
    """Two weeks of a rotation: bookings, an absence, an override, a join, a leave."""
    run(app, "CreateRotation", name="Sales <EMEA>", members=["kari", "ola", "per"])
    for i in range(6):
        clock.advance(hours=9)
        book(app, f"m{i}")
    clock.advance(days=1)
    run(app, "ToggleAvailability", user_id="ola", available=False)
    for i in range(6, 10):
        clock.advance(hours=10)
        book(app, f"m{i}")
    clock.advance(hours=5)
    book(app, "m10", host="ola")  # an override: ola is away, so not the suggestion
    clock.advance(days=1)
    run(app, "ToggleAvailability", user_id="ola", available=True)
    clock.advance(days=1)
    run(app, "AddMember", user_id="liv")  # every count back to 0
    for i in range(11, 19):
        clock.advance(hours=8)
        book(app, f"m{i}")
    clock.advance(days=1)
    run(app, "RemoveMember", user_id="per")
    for i in range(19, 22):
        clock.advance(hours=7)
        book(app, f"m{i}")


@pytest.fixture
def sqlite_app(tmp_path: Path, clock: Clock) -> Iterator[RotationsApplication]:
    app = RotationsApplication(
        env=store_environment(f"sqlite:///{tmp_path}/store.sqlite"), clock=clock
    )
    history(app, clock)
    yield app
    app.close()


def test_report_folds_counts_resets_overrides_and_availability(
    open_app: Callable[[], RotationsApplication], clock: Clock
) -> None:
    app = open_app()
    app.clock = clock
    history(app, clock)

    report = build_report(app, RID, now=clock.now)

    assert report.name == "Sales <EMEA>"
    assert report.members == ["kari", "ola", "liv"]
    assert report.everyone == ["kari", "ola", "per", "liv"]
    assert len(report.steps) == 1 + 22 + 2 + 1 + 1
    positions = [s.position for s in report.steps]
    assert positions == sorted(positions) and positions[0] > 0
    assert [s.type for s in report.resets] == ["Created", "MemberAdded"]
    assert report.resets[1].joined == ("liv",)
    (override,) = report.overrides
    assert override.host == "ola" and override.suggested in ("kari", "per")
    away = [s for s in report.steps if s.available.get("ola") is False]
    assert len(away) == 6 and [s.host for s in away].count("ola") == 1
    last = report.steps[-1]
    assert sum(last.totals.values()) == 22
    # Since liv joined: 8 bookings among four, per left with his 2, then 3 among three.
    assert last.counts == {"kari": 3, "ola": 3, "liv": 3}
    fairness = report.fairness
    assert fairness.since == report.resets[1].at
    assert fairness.counts == {m: last.counts[m] for m in ("kari", "ola", "liv")}
    assert fairness.spread == max(fairness.counts.values()) - min(fairness.counts.values())
    assert fairness.bookings == 11
    assert fairness.overrides == 0


def test_unknown_rotation_is_refused(sqlite_app: RotationsApplication) -> None:
    with pytest.raises(UnknownRotation):
        build_report(sqlite_app, "no-such-rotation")


def test_page_is_self_contained_and_escapes_names(sqlite_app: RotationsApplication) -> None:
    page = render_html(build_report(sqlite_app, RID))

    assert "Sales &lt;EMEA&gt;" in page and "Sales <EMEA>" not in page.split("<script")[0]
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    addresses = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert addresses <= {"http://www.w3.org/2000/svg"}
    assert page.count('class="series"') == 4
    assert page.count('class="override"') == 1
    assert page.count('class="reset"') == 2
    assert page.count('class="unavailable"') == 1
    assert 'id="audit"' in page and page.count("<tr") == 1 + 3 + 1 + 27


# -- in a real browser ------------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    unavailable("Chromium (apt-get install -y chromium)")
    raise AssertionError  # unreachable: unavailable() fails or skips


def headless(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=os.environ.copy()
    )


def test_chart_is_drawn_by_a_headless_browser(
    sqlite_app: RotationsApplication, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(build_report(sqlite_app, RID)), encoding="utf-8")

    dumped = headless(page, tmp_path / "profile-dom", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    # The page's script ran (it marks the chart), and the chart's parts are in the DOM.
    assert re.search(r'<svg id="chart"[^>]*data-interactive="true"', dom), dom[:500]
    assert dom.count('class="series"') == 4
    assert dom.count('class="booking"') == 21
    assert dom.count('class="override"') == 1
    assert dom.count('class="reset"') == 2
    assert dom.count('class="unavailable"') == 1

    shot = tmp_path / "report.png"
    taken = headless(
        page, tmp_path / "profile-png", f"--screenshot={shot}", "--window-size=1100,1300"
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    if keep := os.environ.get("ROTATIONS_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, keep)  # for a person to look at


def test_cli_writes_the_report_and_errors_are_one_line(
    sqlite_app: RotationsApplication, tmp_path: Path
) -> None:
    env = {**os.environ, "ROTATIONS_STORE": f"sqlite:///{tmp_path}/store.sqlite"}
    out = tmp_path / "out.html"
    cli = [sys.executable, "-m", "service.cli", "report"]

    done = subprocess.run(
        [*cli, RID, "--out", str(out)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    missing = subprocess.run(
        [*cli, "nope", "--out", str(out)], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert "no rotation 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    unwritable = subprocess.run(
        [*cli, RID, "--out", str(tmp_path / "no" / "such" / "dir.html")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert unwritable.returncode == 1
    assert "cannot write" in unwritable.stderr and "Traceback" not in unwritable.stderr
