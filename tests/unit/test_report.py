"""The audit report: folded from the events, self-contained, and drawn by a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from events.errors import UnknownRotation
from events.rotation import Rotation
from projections.report import (
    CANCELLED,
    CREDIT,
    REASSIGNED,
    RotationReport,
    build_report,
    render_html,
)
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER
from service.store import store_environment
from tests.environment import unavailable
from tests.unit.test_audit_v2 import change, facts

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


# -- rule v2 and the lifecycle ----------------------------------------------------------------

V2 = "sales-v2"


def v2_run(app: RotationsApplication, type_: str, **fields: Any) -> None:
    message = {"command_id": str(uuid4()), "rotation_id": V2, "actor": "tester", **fields}
    reply = app.execute(COMMAND_ADAPTER.validate_python({"type": type_, **message}))
    assert reply.status == "accepted", reply.error


def v2_book(app: RotationsApplication, meeting: str) -> None:
    v2_run(app, "BookMeeting", meeting_id=meeting, record={"type": "deal", "id": meeting})


def v2_history(app: RotationsApplication, clock: Clock) -> None:
    """Two weeks under a weekly window: levelling, credits, a cap, every lifecycle event.

    The version-2 commands drive the aggregate (as their handlers do) and are saved."""

    def do(action: Callable[[Rotation], Any]) -> None:
        clock.advance(hours=1)
        change(app, action, V2)

    v2_run(app, "CreateRotation", name="Sales v2", members=["kari", "ola"])  # Monday 09:00
    do(lambda r: r.set_policy({"window": "week", "on_join": "level"}, at=clock.now))
    for meeting in ("m0", "m1", "m2"):  # kari, ola, kari
        clock.advance(hours=1)
        v2_book(app, meeting)
    do(lambda r: r.add_member("liv", at=clock.now, options={"weight": 200}))  # levelled +2
    do(lambda r: r.credit_member("ola", 1, "covered a demo", actor="lead", at=clock.now))
    do(lambda r: r.cancel_meeting(facts(app, "m0", V2), "customer", "lead", clock.now))
    do(lambda r: r.reassign_meeting(facts(app, "m2", V2), "liv", "lead", clock.now))
    do(lambda r: r.reschedule_meeting(facts(app, "m1", V2), START, "lead", clock.now))
    do(lambda r: r.mark_no_show(facts(app, "m1", V2), "lead", clock.now))
    do(lambda r: r.set_member_options("kari", {"cap": {"meetings": 1, "per": "week"}}))
    clock.advance(hours=1)
    v2_book(app, "m3")  # kari (fewest): reaches her cap
    clock.advance(days=7)  # the next week: counts start again, kari's cap too
    for meeting in ("m4", "m5"):
        clock.advance(hours=1)
        v2_book(app, meeting)


@pytest.fixture
def v2_report(app: RotationsApplication, clock: Clock) -> RotationReport:
    app.clock = clock
    v2_history(app, clock)
    return build_report(app, V2, now=clock.now)


def by_type(report: RotationReport, type_: str) -> list[Any]:
    return [s for s in report.steps if s.type == type_]


def test_counts_follow_the_contract_through_the_lifecycle(v2_report: RotationReport) -> None:
    steps = v2_report.steps
    (cancelled,) = v2_report.of_kind(CANCELLED)
    (moved,) = v2_report.of_kind(REASSIGNED)
    before_cancel = steps[steps.index(cancelled) - 1]

    # m0 stops counting for kari from its cancellation on, not before.
    assert before_cancel.counts["kari"] == 2 and cancelled.counts["kari"] == 1
    assert (cancelled.host, cancelled.meeting_id) == ("kari", "m0")
    # m2 counts for liv from its reassignment on.
    assert (moved.previous_host, moved.host) == ("kari", "liv")
    assert (moved.counts["kari"], moved.counts["liv"]) == (0, 1)
    # The no-show still counts (no_shows_count defaults to true).
    (no_show,) = by_type(v2_report, "MeetingMarkedNoShow")
    assert no_show.counts["ola"] == 1
    levelled, manual = v2_report.of_kind(CREDIT)
    assert (levelled.credited, levelled.credit, levelled.levelling) == ("liv", 2, True)
    assert (manual.credited, manual.credit, manual.levelling) == ("ola", 1, False)
    assert levelled.credits["liv"] == 2 and manual.credits["ola"] == 1
    (m3,) = [s for s in steps if s.meeting_id == "m3"]
    assert m3.host == "kari" and m3.capped["kari"] is True
    # The next week: every count (and the credits, given last week) starts again.
    last = steps[-1]
    assert sum(last.counts.values()) == 2 and not any(last.credits.values())
    assert last.capped == {"kari": False, "ola": False, "liv": False}
    assert [s.at.isoformat() for s in v2_report.window_starts] == ["2026-03-09T00:00:00+00:00"]
    assert v2_report.window_starts[0].counts == {"kari": 0, "ola": 0, "liv": 0}
    # kari's weekly cap ends with the week, not at the next event.
    assert v2_report.window_starts[0].capped["kari"] is False
    assert v2_report.now["liv"].weight == 200
    assert v2_report.now["kari"].cap == {"meetings": 1, "per": "week"}
    assert v2_report.now["kari"].own_cap is True


def test_fairness_per_window(v2_report: RotationReport) -> None:
    first, second = v2_report.windows

    assert (first.window, first.start.isoformat(), first.end.isoformat()) == (
        "week",
        "2026-03-02T00:00:00+00:00",
        "2026-03-09T00:00:00+00:00",
    )
    assert (first.current, second.current) == (False, True)
    # Week one at its last event: kari m3; ola m1 + 1 credit; liv m2 + 2 levelling.
    assert first.loads == {"kari": 1, "ola": 2, "liv": 3}
    assert (first.fairness.meetings, first.fairness.spread) == (6, 2)
    # Fair shares of 6 by weights 100, 100, 200: 1.5, 1.5, 3.
    assert first.fairness.deviation == Fraction(1, 6)
    assert (first.bookings, first.cancellations, first.reassignments, first.credits) == (
        4,
        1,
        1,
        2,
    )
    assert second.bookings == 2 and second.fairness.meetings == 2
    # The same numbers as the rule's own fairness of the standings at the end.
    assert v2_report.rule == second.fairness
    last = v2_report.steps[-1]
    assert sum(last.counts.values()) == second.fairness.meetings
    assert v2_report.fairness.window is not None


def test_page_draws_credits_caps_cancellations_and_reassignments(
    v2_report: RotationReport,
) -> None:
    page = render_html(v2_report)

    assert page.count('class="credit level"') == 1 and page.count('class="credit"') == 1
    assert page.count('class="cancellation"') == 1
    assert page.count('class="reassignment"') == 1
    assert page.count('class="no-show"') == 1
    assert page.count('class="reschedule"') == 1
    assert page.count('class="capped"') == 1  # kari's lane from m3 to the next week's m4
    assert page.count('class="window"') == 1
    assert page.count('class="booking"') == 6
    for heading in ("weight", "priority", "cap", "capped", "credits", "deviation"):
        assert f"<th>{heading}</th>" in page, heading
    assert 'id="windows"' in page and page.count('class="row-current"') == 1
    assert "1/6 ≈ 0.167" in page
    assert "c levelled" not in page and "liv levelled on join by the service" in page
    assert "cap 1/week" in page  # kari's, in the legend
    assert "capped from 2026-03-02 21:00:00 to 2026-03-09 00:00:00" in page
    assert "options of kari: cap none (the policy's) → 1/week" in page
    data = json.loads(page.split('id="report-data">')[1].split("</script>")[0])
    assert [w["deviation"] for w in data["windows"]] == ["1/6", str(v2_report.rule.deviation)]
    assert data["policy"]["window"] == "week"


def test_a_since_reset_policy_has_no_window_rows(sqlite_app: RotationsApplication) -> None:
    report = build_report(sqlite_app, RID)

    assert report.windows == [] and report.window_starts == []
    last = report.steps[-1]
    # Everyone can host at the end: the rule's total is every count (no credits here).
    assert report.rule.meetings == sum(last.counts.values()) == 9
    assert report.fairness.window is None
    assert 'id="windows"' not in render_html(report)


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


def test_v2_marks_are_drawn_by_a_headless_browser(
    v2_report: RotationReport, tmp_path: Path
) -> None:
    page = tmp_path / "v2.html"
    page.write_text(render_html(v2_report), encoding="utf-8")

    dumped = headless(page, tmp_path / "profile-v2", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert re.search(r'<svg id="chart"[^>]*data-interactive="true"', dom), dom[:500]
    for kind in ("cancellation", "reassignment", "no-show", "reschedule", "capped", "window"):
        assert dom.count(f'class="{kind}"') == 1, kind
    assert dom.count('class="credit level"') == dom.count('class="credit"') == 1


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
