"""What-if simulation and preview (`projections.simulation`, `rotations simulate|preview`).

Hand-worked histories (a weight moves bookings, a cap changes who hosts, overrides and
cancellations stay as recorded, holds are re-decided, `--from`/`--to`), the versions of a
simulated rotation that numbers its events differently, paging, and the property: simulated
with its own recorded settings, any random history reproduces every recorded host exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from events.errors import RotationError, UnknownRotation
from events.rotation import Rotation, rotation_uuid
from projections import simulation as sim
from projections.simulation import VersionMap, WhatIf, preview, render_html, simulate
from service.application import RotationsApplication
from service.cli import cli
from service.store import store_environment
from tests.unit.commands import RECORD, book, head, ok, user
from tests.unit.test_determinism import (
    DIRECTORY_KINDS,
    ROTATIONS,
    History,
    clocked_app,
    histories,
)

R = "sim-r"


def hosts(app: RotationsApplication, rotation_id: str) -> dict[str, str]:
    """Each meeting's host as recorded at the end."""
    found: dict[str, str] = {}
    for event in app.events.get(rotation_uuid(rotation_id)):
        if isinstance(event, Rotation.MeetingBooked | Rotation.MeetingReassigned):
            found[event.meeting_id] = event.host_id
    return found


def counts(result: sim.Simulation) -> dict[str, tuple[int, int]]:
    return {m.user_id: (m.actual, m.simulated) for m in result.members}


def three(app: RotationsApplication, bookings: int) -> None:
    ok(app, "CreateRotation", R, name="Sales", members=["a", "b", "c"])
    for i in range(bookings):
        book(app, R, f"m{i}")


def test_a_heavier_weight_moves_bookings_to_that_member(app: RotationsApplication) -> None:
    three(app, 6)
    assert list(hosts(app, R).values()) == ["a", "b", "c", "a", "b", "c"]

    result = simulate(app, R, WhatIf(members={"a": {"weight": 200}}))

    # Shares (meetings + 1) / weight: a 1/200 → a; a 2/200 ties b, c at 1/100 and the
    # never-assigned go first → b, c; then a 2/200 < 2/100 twice → a, a; then a 4/200 ties
    # b and c at 2/100, b assigned longest ago → b.
    assert result.changed == ("m4", "m5")
    assert counts(result) == {"a": (2, 3), "b": (2, 2), "c": (2, 1)}
    assert result.bookings == 6
    assert (result.decisions, result.differing) == (6, 2)
    assert result.actual.deviation == 0
    assert result.simulated.spread == 2


def test_a_members_cap_changes_who_hosts(app: RotationsApplication) -> None:
    ok(app, "CreateRotation", R, name="Sales", members=["a", "b"])
    for i in range(4):
        book(app, R, f"m{i}")

    result = simulate(app, R, WhatIf(members={"a": {"cap": {"meetings": 1, "per": "day"}}}))

    assert result.changed == ("m2",)  # a is capped after m0: b takes m2 (and m3, as recorded)
    assert counts(result) == {"a": (2, 1), "b": (2, 3)}


def test_a_policy_cap_leaves_a_booking_no_one_could_take(app: RotationsApplication) -> None:
    ok(app, "CreateRotation", R, name="Sales", members=["a", "b"])
    for i in range(3):
        book(app, R, f"m{i}")
    ok(app, "CancelMeeting", R, meeting_id="m2")  # of a meeting the simulation never booked

    policy = {"cap": {"meetings": 1, "per": "day"}}
    result = simulate(app, R, WhatIf(policy=policy))

    assert result.changed == result.unassigned == ("m2",)
    assert counts(result) == {"a": (1, 1), "b": (1, 1)}


def test_overrides_and_cancellations_stay_as_recorded(app: RotationsApplication) -> None:
    three(app, 1)  # m0: a
    book(app, R, "m1", host_id="a")  # an override
    book(app, R, "m2")  # b
    ok(app, "CancelMeeting", R, meeting_id="m0")
    book(app, R, "m3")  # c
    book(app, R, "m4", host_id="b")
    # Named: an override (the suggestion among a and c was a). A named host that is the
    # suggestion is recorded as the rule's choice, and re-decided like one.
    ok(app, "ReassignMeeting", R, meeting_id="m4", host_id="c")

    result = simulate(app, R, WhatIf(members={"c": {"weight": 300}}))

    # c at weight 300 takes m0 (1/300), m2 (2/300 < 1/100) and m3; the cancellation takes
    # m0 from c, its simulated host; the overrides book and move to the hosts named.
    assert result.changed == ("m0", "m2")
    assert counts(result) == {"a": (1, 1), "b": (1, 0), "c": (2, 3)}
    assert (result.decisions, result.differing) == (3, 2)
    state = result.simulated_state
    assert state is not None
    assert state.members["c"]["meetings"] == 3


def test_an_automatic_reassignment_is_re_decided(app: RotationsApplication) -> None:
    three(app, 3)  # a, b, c
    ok(app, "ReassignMeeting", R, meeting_id="m0")  # to the suggestion among b and c: b

    result = simulate(app, R, WhatIf(members={"c": {"priority": 4}}))

    # With priority 4, c wins every tie: m0 → c, m1 → a (never assigned first), m2 → b;
    # reassigning m0 away from c: a and b tie at 1, a assigned longer ago → a.
    assert hosts(app, R) == {"m0": "b", "m1": "b", "m2": "c"}
    assert result.changed == ("m0", "m1", "m2")
    assert counts(result) == {"a": (0, 2), "b": (2, 1), "c": (1, 0)}


def test_a_hold_is_re_decided_and_its_booking_books_the_simulated_member(
    app: RotationsApplication,
) -> None:
    three(app, 0)
    ok(app, "HoldHost", R, hold_id="h1", seconds=600)  # a
    ok(app, "HoldHost", R, hold_id="h2", seconds=600)  # b
    ok(app, "BookMeeting", R, meeting_id="m0", record={"type": "deal", "id": "1"}, hold_id="h2")
    ok(app, "ReleaseHold", R, hold_id="h1")
    assert hosts(app, R) == {"m0": "b"}

    result = simulate(app, R, WhatIf(members={"c": {"priority": 4}}))

    # c first: h1 holds c, h2 then a (never assigned, before b), so m0 books a.
    assert result.changed == ("m0",)
    assert counts(result) == {"a": (0, 1), "b": (1, 0), "c": (0, 0)}
    assert (result.decisions, result.differing) == (3, 3)


def test_from_and_to_limit_what_is_re_decided(app: RotationsApplication) -> None:
    three(app, 3)
    start = datetime.now(UTC)
    for i in range(3, 6):
        book(app, R, f"m{i}")
    end = datetime.now(UTC)
    book(app, R, "m6")

    result = simulate(app, R, WhatIf(members={"a": {"weight": 300}}, start=start, end=end))

    # m0-m2 as recorded (a, b, c); from then a at 300: 2/300 < 2/100 three times → a, a, a.
    assert result.changed == ("m4", "m5")
    assert result.bookings == 6  # m6 is after --to
    assert counts(result) == {"a": (2, 4), "b": (2, 1), "c": (2, 1)}


def test_versions_that_drift_apart_are_mapped() -> None:
    versions = VersionMap()
    for recorded, simulated in [(1, 3), (2, 4), (3, 4), (4, 5), (5, 7)]:
        versions.note(recorded, simulated)
    assert [versions(v) for v in range(1, 7)] == [3, 4, 4, 5, 7, 8]
    assert len(versions) == 4  # breakpoints only where the offset changed (and the start)


def test_a_shifted_numbering_still_reproduces_every_host(app: RotationsApplication) -> None:
    """Options set on a creation's members add simulated events: every later version is
    mapped. A meeting booked just after a reset and cancelled counts only if its mapped
    booking version is after the simulated reset."""
    three(app, 2)
    ok(app, "AddMember", R, user_id="d")  # a reset
    book(app, R, "m2")
    ok(app, "CancelMeeting", R, meeting_id="m2")
    book(app, R, "m3")
    ok(app, "RemoveMember", R, user_id="a")
    ok(app, "AddMember", R, user_id="a")  # a new record: its old meetings stop counting
    ok(app, "ReassignMeeting", R, meeting_id="m3")
    ok(app, "MarkNoShow", R, meeting_id="m3")
    ok(app, "RescheduleMeeting", R, meeting_id="m3", starts_at="2030-01-01T10:00:00+00:00")
    book(app, R, "m4")

    unchanged = {"a": {"weight": 100}, "b": {"priority": 2}}  # the defaults: +2 versions
    result = simulate(app, R, WhatIf(members=unchanged))

    assert result.changed == ()
    assert result.differing == 0
    assert result.actual_state is not None and result.simulated_state is not None
    assert result.simulated_state.version == result.actual_state.version + 2
    assert _counted(result.simulated_state) == _counted(result.actual_state)


def _counted(rotation: Rotation) -> dict[str, tuple[Any, ...]]:
    """What each member's record counts (not the version of the event that made it)."""
    return {
        u: tuple(v for k, v in r.items() if k != "joined_version")
        for u, r in rotation.members.items()
    }


def test_pages_of_events_give_the_same_answer(
    app: RotationsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    three(app, 7)
    ok(app, "ToggleAvailability", R, user_id="b", available=False)
    book(app, R, "m7")
    what_if = WhatIf(members={"a": {"weight": 250}})
    whole = simulate(app, R, what_if)
    monkeypatch.setattr(sim, "PAGE", 2)

    paged = simulate(app, R, what_if)

    assert (paged.changed, paged.members, paged.bookings) == (
        whole.changed,
        whole.members,
        whole.bookings,
    )


def test_preview_lists_each_member_once_and_stores_nothing(app: RotationsApplication) -> None:
    ok(app, "CreateRotation", R, name="Sales", members=["kari", "ola", "per"])
    before = head(app)

    found = preview(app, R, 3, datetime.now(UTC))

    assert [b.host_id for b in found.next] == ["kari", "ola", "per"]
    assert head(app) == before
    assert app.get_rotation(R).total_meetings == 0


def test_preview_leaves_out_who_the_directory_says_cannot_host(
    store_env: dict[str, str],
) -> None:
    app = RotationsApplication(env=dict(store_env), directory="required")
    try:
        for name in ("kari", "ola", "per"):
            user(app, name)
        user(app, "tester", permissions=["manage_rotations"])
        ok(app, "CreateRotation", R, name="Sales", members=["kari", "ola", "per"])
        user(app, "ola", eligible=False)

        found = preview(app, R, 3, datetime.now(UTC))

        assert [b.host_id for b in found.next] == ["kari", "per", "kari"]
    finally:
        app.close()


def test_preview_stops_where_no_one_can_host(app: RotationsApplication) -> None:
    policy = {"cap": {"meetings": 1, "per": "day"}}
    ok(app, "CreateRotation", R, name="Sales", members=["kari", "ola"], policy=policy)

    found = preview(app, R, 3, datetime.now(UTC))

    assert [b.host_id for b in found.next] == ["kari", "ola"]
    assert found.to_json()["requested"] == 3


def test_the_chart_draws_both_lines_per_member(app: RotationsApplication) -> None:
    three(app, 6)

    page = render_html(simulate(app, R, WhatIf(members={"a": {"weight": 200}})))

    assert page.count('class="actual"') == page.count('class="simulated"') == 3
    assert "<svg" in page and "What-if simulation: sim-r" in page


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/sim.sqlite"
    app = RotationsApplication(env=store_environment(url))
    three(app, 6)
    app.close()
    yield url


def invoke(store: str, *args: str) -> tuple[int, str]:
    env = {"ROTATIONS_STORE": store, "ROTATIONS_DIRECTORY": "open", "COLUMNS": "200"}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_simulate_prints_json_a_table_and_a_chart(store: str, tmp_path: Path) -> None:
    file = tmp_path / "what-if.json"
    file.write_text(json.dumps({"members": {"a": {"weight": 200}}}))

    code, output = invoke(store, "simulate", R, "--policy", str(file), "--json")

    assert code == 0, output
    assert json.loads(output) == {
        "rotation_id": R,
        "bookings": 6,
        "members": [
            {"user_id": "a", "actual": 2, "simulated": 3},
            {"user_id": "b", "actual": 2, "simulated": 2},
            {"user_id": "c", "actual": 2, "simulated": 1},
        ],
        "fairness": {
            "actual": {"meetings": 6, "spread": 0, "deviation": 0.0},
            "simulated": {"meetings": 6, "spread": 2, "deviation": 0.166667},
        },
        "changed": ["m4", "m5"],
    }
    chart = tmp_path / "chart.html"
    code, output = invoke(store, "simulate", R, "--policy", str(file), "--html", str(chart))
    assert code == 0, output
    assert "2 meetings with another host: m4, m5" in output
    assert "<svg" in chart.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ('{"policy": {"window": "year"}}', [], "window"),
        ('{"members": {"a": {"weight": 0}}}', [], "weight"),
        ('{"members": {"a": {"colour": 1}}}', [], "colour"),
        ("{}", ["--from", "yesterday"], "--from"),
        ("{}", ["--to", "2024-01-01T00:00:00"], "--to"),
    ],
)
def test_a_bad_policy_file_or_range_exits_with_2(
    store: str, tmp_path: Path, content: str, extra: list[str], message: str
) -> None:
    file = tmp_path / "what-if.json"
    file.write_text(content)

    code, output = invoke(store, "simulate", R, "--policy", str(file), *extra)

    assert code == 2, output
    assert message in output


def test_simulate_of_an_unknown_rotation_exits_with_1(store: str, tmp_path: Path) -> None:
    file = tmp_path / "what-if.json"
    file.write_text("{}")
    code, output = invoke(store, "simulate", "nope", "--policy", str(file))
    assert code == 1
    assert "no rotation 'nope'" in output


def test_preview_prints_the_next_hosts(store: str) -> None:
    code, output = invoke(store, "preview", R, "--next", "3", "--json")
    assert code == 0, output
    assert [b["host_id"] for b in json.loads(output)["next"]] == ["a", "b", "c"]
    code, output = invoke(store, "preview", R, "--next", "2")
    assert code == 0, output
    assert "tie_least_recent" in output


# -- the property -------------------------------------------------------------------------


class WithHolds(History):
    """test_determinism's histories on two rotations, never deleted (so each lives long), with
    holds: a
    third of the bookings are held first; some of those holds are booked, some released,
    the rest left to expire (for a minute, or an hour)."""

    def run(self, op: tuple[Any, ...], n: int) -> None:
        if op[0] == "delete":
            op = ("rename", op[1], "Ops")  # rotations live on: longer histories each
        if op[0] not in DIRECTORY_KINDS:
            op = (op[0], ROTATIONS[ROTATIONS.index(op[1]) % 2], *op[2:])
        if op[0] == "book" and n % 3 == 0:
            hold = f"h{n}"
            self.command("HoldHost", op[1], hold_id=hold, seconds=60 if n % 2 else 3600)
            if n % 9 == 0:
                self.command("ReleaseHold", op[1], hold_id=hold)
            elif n % 6 == 0:
                meeting = f"held-{n}"
                if self.command(
                    "BookMeeting", op[1], meeting_id=meeting, record=RECORD, hold_id=hold
                ):
                    self.booked.setdefault(op[1], []).append(meeting)
        super().run(op, n)


@pytest.mark.timeout(600)  # passing: well under a minute
@pytest.mark.parametrize("directory", ["open", "required"])
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(history=histories)
def test_simulated_with_its_own_settings_any_history_is_reproduced_exactly(
    store_env: dict[str, str], directory: str, history: list[tuple[Any, ...]]
) -> None:
    with clocked_app(store_env, directory) as (app, clock):
        run = WithHolds(app, clock)
        middle = clock.now
        for n, (op, tick, _) in enumerate(history):
            clock.now += timedelta(seconds=tick)
            run.run(op, n)
            if n == len(history) // 2:
                middle = clock.now
        for rotation in ROTATIONS:
            rotation_id = run.id(rotation)
            try:
                recorded = app.get_rotation(rotation_id)
            except RotationError:
                continue  # never created in this history
            for what_if in _own_settings(app, rotation_id, recorded, middle):
                try:
                    result = simulate(app, rotation_id, what_if)
                except UnknownRotation:
                    assert what_if.end is not None  # created after --to
                    continue
                assert result.changed == (), (what_if, result.changed)
                assert result.differing == 0
                assert all(m.actual == m.simulated for m in result.members)
                assert result.actual == result.simulated
                simulated, actual = result.simulated_state, result.actual_state
                assert simulated is not None and actual is not None
                assert simulated.members == actual.members
                assert simulated.holds == actual.holds
                assert simulated.version == actual.version
                if what_if.end is None:
                    assert actual.version == recorded.version


def _own_settings(
    app: RotationsApplication, rotation_id: str, recorded: Rotation, middle: datetime
) -> list[WhatIf]:
    """No file settings at all, from the start, from the middle or up to it; and, when the
    policy never changed, the current policy."""
    changed = any(
        isinstance(e, Rotation.PolicySet) for e in app.events.get(rotation_uuid(rotation_id))
    )
    own = [WhatIf(), WhatIf(start=middle), WhatIf(end=middle)]
    if not changed:
        own.append(WhatIf(policy=dict(recorded.policy), members={}))
    return own
