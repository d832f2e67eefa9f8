"""`rotations policy` reads a rotation's policy and its members' options from the read model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from projections.catalog import rotation_policy
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.store import store_environment
from tests.unit.commands import book, ok
from tests.unit.test_cli_reading import invoke

POLICY = {"on_join": "none", "time_zone": "Europe/Oslo", "cap": {"meetings": 5, "per": "week"}}


def policy_history(app: RotationsApplication) -> None:
    """A policy with a cap; one member with options of its own, one credited; the last
    commands stored past the read model's position."""
    ok(app, "CreateRotation", "emea", name="EMEA", members=["kari", "ola"], policy=POLICY)
    ok(app, "AddMember", "emea", user_id="per", weight=200, priority=4)
    book(app, "emea", "m1", host_id="kari")
    RotationProjector(app, open_view(app)).catch_up()
    ok(app, "SetMemberOptions", "emea", user_id="ola", cap={"meetings": 1, "per": "day"})
    book(app, "emea", "m2", host_id="ola")
    ok(app, "CreditMember", "emea", user_id="per", meetings=3, reason="took calls by phone")
    ok(app, "CreateRotation", "plain", name="Plain", members=["liv"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/policy.sqlite"
    app = RotationsApplication(env=store_environment(url))
    policy_history(app)
    app.close()
    yield url


def test_the_policy_and_every_members_options(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()
    policy_history(app)

    view = rotation_policy(app, "emea", datetime.now(UTC))

    assert view.policy == {
        "on_join": "none",
        "on_return": "none",
        "window": "since_reset",
        "count_by": "booked_at",
        "time_zone": "Europe/Oslo",
        "cap": {"meetings": 5, "per": "week"},
        "no_shows_count": True,
    }
    assert view.window is None and "time_zone" not in view.defaults()
    members = {m.user_id: m for m in view.members}
    assert list(members) == ["kari", "ola", "per"]
    kari, ola, per = members["kari"], members["ola"], members["per"]
    assert (kari.weight, kari.priority, kari.cap, kari.cap_from) == (
        100,
        2,
        {"meetings": 5, "per": "week"},
        "policy",
    )
    assert (ola.cap, ola.cap_from, ola.meetings, ola.capped) == (
        {"meetings": 1, "per": "day"},
        "member",
        1,
        True,  # its one meeting today reaches its own cap
    )
    assert (per.weight, per.priority, per.credits, per.meetings) == (200, 4, 3, 0)


def test_a_window_is_the_one_containing_the_moment(
    open_app: Callable[[], RotationsApplication],
) -> None:
    app = open_app()
    policy = {"window": "week", "time_zone": "Europe/Oslo"}
    ok(app, "CreateRotation", "weekly", name="Weekly", members=["kari"], policy=policy)
    at = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday

    view = rotation_policy(app, "weekly", at)

    assert view.window is not None
    oslo = ZoneInfo("Europe/Oslo")
    start, end = view.window["start"].astimezone(oslo), view.window["end"].astimezone(oslo)
    assert (start.date().isoformat(), start.hour) == ("2026-03-02", 0)  # Monday, midnight
    assert (end - start).days == 7


def test_policy_json(store: str) -> None:
    code, output = invoke(store, "policy", "emea", "--json")

    assert code == 0, output
    shown = json.loads(output)
    assert shown["rotation_id"] == "emea" and shown["policy"]["cap"] == {
        "meetings": 5,
        "per": "week",
    }
    members = {m["user_id"]: m for m in shown["members"]}
    assert members["per"]["credits"] == 3 and members["per"]["weight"] == 200
    assert members["ola"]["cap_from"] == "member" and members["ola"]["capped"] is True
    assert shown["window"] is None and shown["at"]


def test_policy_prints_the_fields_and_the_members(store: str) -> None:
    code, output = invoke(store, "policy", "emea")

    assert code == 0, output
    for expected in ("emea: EMEA", "Europe/Oslo", "5/week", "1/day", "member", "since the last"):
        assert expected in output
    rows = [line for line in output.splitlines() if line.startswith("│ per ")]
    assert rows and "200" in rows[0] and "│ 3 " in rows[0]


def test_a_rotation_that_never_set_a_policy_shows_the_defaults(store: str) -> None:
    code, output = invoke(store, "policy", "plain")

    assert code == 0, output
    assert output.count("default") >= 7 and "since_reset" in output


def test_policy_of_an_unknown_rotation_fails(store: str) -> None:
    code, output = invoke(store, "policy", "nope")

    assert code == 1 and "no rotation 'nope'" in output
