"""Contract version 2 through the real broker, on SQLite and on PostgreSQL: every row of the
tables "Distribution policy", "Member options", "The rule, version 2" and "Suggestion reply,
version 2", checked black-box (commands, suggestions, `rotations.events`, dead letters) against
numbers worked out by hand in each test.

The service books on its own clock, so windows and caps are driven by `count_by: starts_at`
and meetings that start next year (past any pruning of old periods), in zones east and west of
UTC chosen so that counting in UTC would give other answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.client import RotationsClient
from tests.integration.helpers import command, dead_letters_where, read_topic, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

YEAR = datetime.now(UTC).year + 1
TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9, no daylight saving
SAO_PAULO = ZoneInfo("America/Sao_Paulo")  # UTC-3, no daylight saving


def at(zone: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


async def ok(client: RotationsClient, kind: str, rotation: str, **fields: Any) -> dict[str, Any]:
    reply = await send(client, kind, rotation, **fields)
    assert reply["status"] == "accepted", reply
    return reply


async def create(
    client: RotationsClient,
    rotation: str,
    members: list[str],
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "Sales", "members": members}
    if policy is not None:
        fields["policy"] = policy
    return await ok(client, "CreateRotation", rotation, **fields)


async def book(
    client: RotationsClient,
    rotation: str,
    host: str | None = None,
    starts_at: datetime | None = None,
    preferred: str | None = None,
) -> dict[str, Any]:
    """Book a meeting (auto-assigned unless `host`); the reply must be accepted."""
    fields: dict[str, Any] = {"meeting_id": uuid.uuid4().hex, "record": {"type": "deal", "id": "1"}}
    if host is not None:
        fields["host_id"] = host
    if starts_at is not None:
        fields["starts_at"] = starts_at.isoformat()
    if preferred is not None:
        fields["preferred_host_id"] = preferred
    reply = await send(client, "BookMeeting", rotation, **fields)
    assert reply["status"] == "accepted", reply
    return reply


async def hosts(client: RotationsClient, rotation: str, n: int, **fields: Any) -> list[str]:
    """Who `n` auto-assigned bookings went to, in order."""
    return [(await book(client, rotation, **fields))["host_id"] for _ in range(n)]


def by_user(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["user_id"]: c for c in answer["candidates"]}


def field(answer: dict[str, Any], name: str) -> dict[str, Any]:
    return {c["user_id"]: c[name] for c in answer["candidates"]}


def deviation(loads: dict[str, int], weights: dict[str, int]) -> Fraction:
    """The contract's deviation, worked out exactly (used only to state hand-worked cases)."""
    total = sum(loads.values())
    if total == 0:
        return Fraction(0)
    weight_sum = sum(weights.values())
    return sum(
        (abs(loads[u] - Fraction(total * weights[u], weight_sum)) for u in loads), Fraction(0)
    ) / abs(total)


async def published(client: RotationsClient, rotation: str, position: int) -> list[dict[str, Any]]:
    """The rotation's events on `rotations.events` once the one at `position` is there."""
    settings = client.settings
    for _ in range(200):  # published after they are stored: nothing to await but the topic
        records = await read_topic(settings.kafka_bootstrap_servers, settings.events_topic)
        mine = [json.loads(r.value) for r in records if r.key == rotation.encode()]
        if any(body["position"] >= position for body in mine):
            return sorted(mine, key=lambda body: int(body["position"]))
        await asyncio.sleep(0.05)
    raise AssertionError(f"event at position {position} of {rotation} never published")


async def booked_event(
    client: RotationsClient, rotation: str, reply: dict[str, Any]
) -> dict[str, Any]:
    """The MeetingBooked event a booking reply names, as published."""
    (ref,) = [e for e in reply["events"] if e["type"] == "MeetingBooked"]
    events = await published(client, rotation, ref["position"])
    (body,) = [e for e in events if e["position"] == ref["position"]]
    return body


# -- Distribution policy -------------------------------------------------------------------


async def test_create_with_a_policy_and_set_policy_replaces_it_whole(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"pol-{uid}"
    first = at(TOKYO, date(YEAR, 5, 20), 10)
    policy = {
        "on_join": "none",
        "window": "month",
        "count_by": "starts_at",
        "time_zone": "Asia/Tokyo",
        "cap": {"meetings": 1, "per": "month"},
        "no_shows_count": False,
    }
    await create(client, rotation, ["a", "b"], policy)
    assert (await book(client, rotation, starts_at=first))["host_id"] == "a"

    now = await client.suggest(rotation)  # this month: a's meeting starts next year
    assert field(now, "meetings") == {"a": 0, "b": 0}
    month_cap = {"meetings": 1, "per": "month"}
    assert field(now, "cap") == {"a": month_cap, "b": month_cap}
    assert field(now, "capped") == {"a": False, "b": False}
    then = await client.suggest(rotation, starts_at=first + timedelta(days=3))
    assert field(then, "meetings") == {"a": 1, "b": 0}
    assert field(then, "capped") == {"a": True, "b": False}
    assert then["host_id"] == "b"

    # Replaced whole: only on_join given, every other field back to its default (since_reset
    # counts the meeting whatever its start; no cap). The change itself resets nothing.
    await ok(client, "SetPolicy", rotation, policy={"on_join": "none"})
    replaced = await client.suggest(rotation, starts_at=first)
    assert field(replaced, "meetings") == {"a": 1, "b": 0}
    assert field(replaced, "cap") == {"a": None, "b": None}
    assert field(replaced, "capped") == {"a": False, "b": False}
    assert (replaced["host_id"], replaced["reason"]) == ("b", "fewest_meetings")

    await ok(client, "AddMember", rotation, user_id="c")  # on_join none: no reset
    assert field(await client.suggest(rotation), "meetings") == {"a": 1, "b": 0, "c": 0}

    await ok(client, "SetPolicy", rotation, policy={})  # all defaults: on_join reset again
    await ok(client, "AddMember", rotation, user_id="d")
    reset = await client.suggest(rotation)
    assert field(reset, "meetings") == dict.fromkeys("abcd", 0)
    # All at 0; b, c and d never assigned (all oldest), so b, the first of them to join.
    assert (reset["host_id"], reset["reason"]) == ("b", "tie_join_order")


async def test_on_join_reset_is_the_default_and_can_be_named(
    client: RotationsClient, uid: str
) -> None:
    for name, policy in (("default", None), ("named", {"on_join": "reset"})):
        rotation = f"join-reset-{name}-{uid}"
        await create(client, rotation, ["a", "b"], policy)
        assert await hosts(client, rotation, 3) == ["a", "b", "a"]
        added = await ok(client, "AddMember", rotation, user_id="c")
        assert [e["type"] for e in added["events"]] == ["MemberAdded"]
        answer = await client.suggest(rotation)
        assert field(answer, "meetings") == {"a": 0, "b": 0, "c": 0}
        assert field(answer, "credits") == {"a": 0, "b": 0, "c": 0}
        assert (answer["host_id"], answer["reason"]) == ("c", "tie_least_recent")


async def test_on_join_none_lets_the_newcomer_catch_up(client: RotationsClient, uid: str) -> None:
    rotation = f"join-none-{uid}"
    await create(client, rotation, ["a", "b"], {"on_join": "none"})
    assert await hosts(client, rotation, 4) == ["a", "b", "a", "b"]
    added = await ok(client, "AddMember", rotation, user_id="c")
    assert [e["type"] for e in added["events"]] == ["MemberAdded"]
    answer = await client.suggest(rotation)
    assert field(answer, "meetings") == {"a": 2, "b": 2, "c": 0}
    assert field(answer, "credits") == {"a": 0, "b": 0, "c": 0}
    # c: shares 1/100 then 2/100 against a's and b's 3/100.
    assert await hosts(client, rotation, 3) == ["c", "c", "a"]


async def test_on_join_level_credits_the_newcomer(client: RotationsClient, uid: str) -> None:
    rotation = f"join-level-{uid}"
    await create(client, rotation, ["a", "b"], {"on_join": "level"})
    assert await hosts(client, rotation, 5) == ["a", "b", "a", "b", "a"]  # a 3, b 2

    # s = min(3/100, 2/100); credit floor(2/100 * 200) - 0 = 4.
    added = await ok(client, "AddMember", rotation, user_id="c", weight=200)
    assert [e["type"] for e in added["events"]] == ["MemberAdded", "MemberCredited"]
    answer = await client.suggest(rotation)
    assert field(answer, "meetings") == {"a": 3, "b": 2, "c": 0}  # nobody reset
    assert field(answer, "credits") == {"a": 0, "b": 0, "c": 4}
    # Shares: a 4/100, b 3/100, c (0 + 4 + 1)/200 = 2.5/100.
    assert (answer["host_id"], answer["reason"]) == ("c", "fewest_meetings")
    assert await hosts(client, rotation, 1) == ["c"]  # c: 1 meeting + 4 credits, 5/200

    # b unavailable does not count: s = min(a 3/100, c 5/200) = 5/200, so d (weight 180)
    # gets floor(5/200 * 180) = floor(4.5) = 4 (with b's 2/100 it would be floor(3.6) = 3).
    await ok(client, "ToggleAvailability", rotation, user_id="b", available=False)
    await ok(client, "AddMember", rotation, user_id="d", weight=180)
    answer = await client.suggest(rotation)
    assert field(answer, "credits") == {"a": 0, "b": 0, "c": 4, "d": 4}
    assert field(answer, "meetings") == {"a": 3, "b": 2, "c": 1, "d": 0}

    # Credits already given stay when the policy changes (defaults again: on_join reset).
    await ok(client, "SetPolicy", rotation, policy={})
    assert field(await client.suggest(rotation), "credits") == {"a": 0, "b": 0, "c": 4, "d": 4}


async def test_on_join_level_without_anyone_to_level_against(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"join-level-alone-{uid}"
    await create(client, rotation, ["a"], {"on_join": "level"})
    await hosts(client, rotation, 2)
    await ok(client, "ToggleAvailability", rotation, user_id="a", available=False)
    added = await ok(client, "AddMember", rotation, user_id="b")
    assert [e["type"] for e in added["events"]] == ["MemberAdded"]  # no one to level with
    answer = await client.suggest(rotation)
    assert field(answer, "credits") == {"a": 0, "b": 0}
    assert field(answer, "meetings") == {"a": 2, "b": 0}


async def test_on_join_level_a_team_levels_each_against_those_before(
    client: RotationsClient, uid: str
) -> None:
    rotation, team = f"join-level-team-{uid}", f"team-{uid}"
    x, y = f"x-{uid}", f"y-{uid}"
    fact = {"type": "TeamUpdated", "message_id": uuid.uuid4().hex, "team_id": team}
    await client.directory({**fact, "name": "Newcomers", "members": [x, y]})
    await create(client, rotation, ["a", "b"], {"on_join": "level"})
    for host in ("a", "a", "b", "b", "b", "b"):
        await book(client, rotation, host=host)
    # Each against a (2/100) and b (4/100), not against the other newcomer (0): credit 2.
    added = await ok(client, "AddTeam", rotation, team_id=team)
    assert [e["type"] for e in added["events"]].count("MemberCredited") == 2
    answer = await client.suggest(rotation)
    assert field(answer, "credits") == {"a": 0, "b": 0, x: 2, y: 2}
    assert field(answer, "meetings") == {"a": 2, "b": 4, x: 0, y: 0}


@pytest.mark.parametrize("policy", [None, {"on_return": "none"}], ids=["default", "named"])
async def test_on_return_none_lets_the_returner_catch_up(
    client: RotationsClient, uid: str, policy: dict[str, Any] | None
) -> None:
    rotation = f"return-none-{uid}"
    await create(client, rotation, ["a", "b", "c"], policy)
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=False)
    assert await hosts(client, rotation, 5) == ["a", "b", "a", "b", "a"]
    returned = await ok(client, "ToggleAvailability", rotation, user_id="c", available=True)
    assert [e["type"] for e in returned["events"]] == ["AvailabilityToggled"]
    answer = await client.suggest(rotation)
    assert field(answer, "credits") == {"a": 0, "b": 0, "c": 0}
    assert field(answer, "meetings") == {"a": 3, "b": 2, "c": 0}
    assert await hosts(client, rotation, 2) == ["c", "c"]


async def test_on_return_level_credits_up_to_the_least_loaded(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"return-level-{uid}"
    await create(client, rotation, ["a", "b", "c"], {"on_return": "level"})
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=False)
    assert await hosts(client, rotation, 5) == ["a", "b", "a", "b", "a"]  # a 3, b 2

    returned = await ok(client, "ToggleAvailability", rotation, user_id="c", available=True)
    assert [e["type"] for e in returned["events"]] == ["AvailabilityToggled", "MemberCredited"]
    answer = await client.suggest(rotation)
    assert field(answer, "credits") == {"a": 0, "b": 0, "c": 2}  # floor(2/100 * 100) - 0
    assert field(answer, "meetings") == {"a": 3, "b": 2, "c": 0}
    # Shares a 4/100, b 3/100, c 3/100: c was never assigned.
    assert (answer["host_id"], answer["reason"]) == ("c", "tie_least_recent")

    # Back again while level with the least loaded (2/100): nothing more.
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=False)
    again = await ok(client, "ToggleAvailability", rotation, user_id="c", available=True)
    assert [e["type"] for e in again["events"]] == ["AvailabilityToggled"]
    assert field(await client.suggest(rotation), "credits") == {"a": 0, "b": 0, "c": 2}


def _period(window: str, zone: ZoneInfo) -> tuple[datetime, datetime, datetime]:
    """Early in a period (day, ISO week, month) of `zone`, late in it, early in the next,
    each 30 minutes from a boundary: east of UTC the next period begins on the same UTC day
    as the late moment; west of it the period's first hour lies in the UTC period before.
    Counting in UTC would give other answers either way."""
    if window == "day":
        first, after = date(YEAR, 6, 10), date(YEAR, 6, 11)
    elif window == "week":
        first = date(YEAR, 6, 1) + timedelta(days=-date(YEAR, 6, 1).weekday() % 7)  # Monday
        after = first + timedelta(days=7)
    else:
        first, after = date(YEAR, 3, 1), date(YEAR, 4, 1)
    return (
        at(zone, first, 0, 30),
        at(zone, after, 0, 0) - timedelta(minutes=30),
        at(zone, after, 0, 30),
    )


PERIODS_OF_ZONES = [
    pytest.param(period, zone, id=f"{period}-{zone}")
    for period in ("day", "week", "month")
    for zone in (TOKYO, SAO_PAULO)
]


@pytest.mark.parametrize(("window", "zone"), PERIODS_OF_ZONES)
async def test_windows_are_calendar_periods_of_the_time_zone(
    client: RotationsClient, uid: str, window: str, zone: ZoneInfo
) -> None:
    early, late, next_early = _period(window, zone)
    rotation = f"win-{uid}"
    policy = {"window": window, "count_by": "starts_at", "time_zone": str(zone)}
    await create(client, rotation, ["a", "b"], policy)
    assert (await book(client, rotation, starts_at=late))["host_id"] == "a"  # join order

    same = await client.suggest(rotation, starts_at=early)
    assert field(same, "meetings") == {"a": 1, "b": 0}
    assert (same["host_id"], same["reason"]) == ("b", "fewest_meetings")
    next_period = await client.suggest(rotation, starts_at=next_early)
    assert field(next_period, "meetings") == {"a": 0, "b": 0}
    assert (next_period["host_id"], next_period["reason"]) == ("b", "tie_least_recent")
    # The booking's own window too: a meeting starting in the next period goes to b, and one
    # starting in a's period to b as well (a has 1 there); a third in the next period: a.
    assert (await book(client, rotation, starts_at=next_early))["host_id"] == "b"
    assert (await book(client, rotation, starts_at=early))["host_id"] == "b"
    assert (await book(client, rotation, starts_at=next_early))["host_id"] == "a"


@pytest.mark.parametrize(("per", "zone"), PERIODS_OF_ZONES)
async def test_cap_periods_are_calendar_periods_of_the_time_zone(
    client: RotationsClient, uid: str, per: str, zone: ZoneInfo
) -> None:
    """A member cap of 1 meeting per day, week or month, the periods of the policy's zone."""
    cap, (early, late, next_early) = {"meetings": 1, "per": per}, _period(per, zone)
    rotation = f"cap-period-{uid}"
    await create(client, rotation, ["a", "b"], {"count_by": "starts_at", "time_zone": str(zone)})
    await ok(client, "AddMember", rotation, user_id="c", cap=cap)
    await book(client, rotation, host="c", starts_at=late)

    in_period = await client.suggest(rotation, starts_at=early)
    assert field(in_period, "capped") == {"a": False, "b": False, "c": True}
    assert field(in_period, "cap") == {"a": None, "b": None, "c": cap}
    after = await client.suggest(rotation, starts_at=next_early)
    assert field(after, "capped") == {"a": False, "b": False, "c": False}
    assert field(after, "meetings") == {"a": 0, "b": 0, "c": 1}  # since the last reset


async def test_count_by_booked_at_or_starts_at(client: RotationsClient, uid: str) -> None:
    rotation = f"count-by-{uid}"
    later = datetime(YEAR, 6, 15, 10, tzinfo=UTC)
    await create(client, rotation, ["a", "b"], {"window": "month"})  # count_by booked_at
    assert (await book(client, rotation, starts_at=later))["host_id"] == "a"
    assert (await book(client, rotation))["host_id"] == "b"  # a has 1 this month (booked)
    await ok(client, "CreditMember", rotation, user_id="a", meetings=1, reason="took a call")

    for starts_at in (None, later):  # the reference time is the moment of the decision
        answer = await client.suggest(rotation, starts_at=starts_at)
        assert field(answer, "meetings") == {"a": 1, "b": 1}
        assert field(answer, "credits") == {"a": 1, "b": 0}

    # By start, as if always: a's meeting starts next year; b's has none, so its booking time.
    await ok(client, "SetPolicy", rotation, policy={"window": "month", "count_by": "starts_at"})
    now = await client.suggest(rotation)
    assert field(now, "meetings") == {"a": 0, "b": 1}
    assert field(now, "credits") == {"a": 1, "b": 0}  # given now: counts in this window
    then = await client.suggest(rotation, starts_at=later + timedelta(days=5))
    assert field(then, "meetings") == {"a": 1, "b": 0}
    assert field(then, "credits") == {"a": 0, "b": 0}  # not in that window
    assert then["host_id"] == "b"


async def test_no_shows_count_unless_the_policy_says_not(client: RotationsClient, uid: str) -> None:
    rotation = f"no-show-{uid}"
    await create(client, rotation, ["a", "b"], {"no_shows_count": False})
    meeting = {"meeting_id": f"m-{uid}", "record": {"type": "deal", "id": "1"}}
    assert (await ok(client, "BookMeeting", rotation, **meeting))["host_id"] == "a"
    assert field(await client.suggest(rotation), "meetings") == {"a": 1, "b": 0}
    await ok(client, "MarkNoShow", rotation, meeting_id=meeting["meeting_id"])
    answer = await client.suggest(rotation)
    assert field(answer, "meetings") == {"a": 0, "b": 0}
    assert (answer["host_id"], answer["reason"]) == ("b", "tie_least_recent")

    await ok(client, "SetPolicy", rotation, policy={})  # no_shows_count true: it counts again
    assert field(await client.suggest(rotation), "meetings") == {"a": 1, "b": 0}
    await ok(client, "SetPolicy", rotation, policy={"window": "month", "no_shows_count": False})
    assert field(await client.suggest(rotation), "meetings") == {"a": 0, "b": 0}


# -- Member options ------------------------------------------------------------------------


async def test_weight_200_gets_twice_the_meetings_of_100(client: RotationsClient, uid: str) -> None:
    rotation = f"weight-{uid}"
    await create(client, rotation, ["heavy", "light"])
    await ok(client, "SetMemberOptions", rotation, user_id="heavy", weight=200)
    # Shares (meetings + 1) / weight, ties to the least recently assigned, worked by hand.
    h, lt = "heavy", "light"
    assert await hosts(client, rotation, 9) == [h, lt, h, h, lt, h, h, lt, h]
    answer = await client.suggest(rotation)
    assert field(answer, "meetings") == {h: 6, lt: 3}
    assert field(answer, "weight") == {h: 200, lt: 100}
    assert (answer["host_id"], answer["reason"]) == (h, "fewest_meetings")  # 7/200 < 8/200
    assert answer["fairness"] == {"meetings": 9, "spread": 3, "deviation": 0}


async def test_priority_breaks_equal_shares(client: RotationsClient, uid: str) -> None:
    rotation = f"priority-{uid}"
    await create(client, rotation, ["p2"])
    await ok(client, "AddMember", rotation, user_id="p4", priority=4)
    answer = await client.suggest(rotation)
    assert field(answer, "priority") == {"p2": 2, "p4": 4}
    assert (answer["host_id"], answer["reason"]) == ("p4", "tie_priority")
    assert await hosts(client, rotation, 2) == ["p4", "p2"]
    # Equal again (2/100 each): priority before least recent.
    again = await client.suggest(rotation)
    assert (again["host_id"], again["reason"]) == ("p4", "tie_priority")

    await ok(client, "AddMember", rotation, user_id="p0", priority=0)  # resets everyone
    fresh = await client.suggest(rotation)
    assert [c["user_id"] for c in fresh["candidates"]] == ["p4", "p2", "p0"]
    assert fresh["reason"] == "tie_priority"


async def test_member_options_change_only_what_is_given(client: RotationsClient, uid: str) -> None:
    rotation = f"options-{uid}"
    week_cap = {"meetings": 3, "per": "week"}
    await create(client, rotation, ["a"], {"cap": {"meetings": 5, "per": "day"}})
    await ok(client, "AddMember", rotation, user_id="b", weight=300, priority=1, cap=week_cap)
    answer = by_user(await client.suggest(rotation))
    assert answer["a"] | {"joined_at": None} == {
        "user_id": "a",
        "meetings": 0,
        "last_assigned_at": None,
        "available": True,
        "joined_at": None,
        "eligible": True,
        "why": None,
        "weight": 100,
        "priority": 2,
        "cap": {"meetings": 5, "per": "day"},
        "capped": False,
        "credits": 0,
        "held": 0,
    }
    assert (answer["b"]["weight"], answer["b"]["priority"], answer["b"]["cap"]) == (
        300,
        1,
        week_cap,
    )

    await ok(client, "SetMemberOptions", rotation, user_id="b", priority=3)
    b = by_user(await client.suggest(rotation))["b"]
    assert (b["weight"], b["priority"], b["cap"]) == (300, 3, week_cap)
    await ok(client, "SetMemberOptions", rotation, user_id="b", cap=None)  # the policy's again
    b = by_user(await client.suggest(rotation))["b"]
    assert (b["weight"], b["priority"], b["cap"]) == (300, 3, {"meetings": 5, "per": "day"})

    unknown = await send(client, "SetMemberOptions", rotation, user_id="nobody", weight=5)
    assert unknown["error"]["code"] == "unknown_member"


async def test_caps_of_the_policy_and_of_a_member(client: RotationsClient, uid: str) -> None:
    rotation = f"cap-{uid}"
    day, next_day, day_after = (date(YEAR, 7, d) for d in (14, 15, 16))
    day_cap, member_cap = {"meetings": 2, "per": "day"}, {"meetings": 5, "per": "day"}
    policy = {"cap": day_cap, "count_by": "starts_at", "time_zone": "Asia/Tokyo"}
    await create(client, rotation, ["a", "b"], policy)
    await ok(client, "SetMemberOptions", rotation, user_id="b", cap=member_cap)
    for hour in (10, 11):
        await book(client, rotation, host="a", starts_at=at(TOKYO, day, hour))
    for hour in (10, 11, 12):
        await book(client, rotation, host="b", starts_at=at(TOKYO, next_day, hour))

    # a has 2 on the day: capped, though its share (3/100) is below b's (4/100).
    capped = await client.suggest(rotation, starts_at=at(TOKYO, day, 23, 30))
    assert field(capped, "meetings") == {"a": 2, "b": 3}
    assert field(capped, "cap") == {"a": day_cap, "b": member_cap}
    assert field(capped, "capped") == {"a": True, "b": False}
    assert (capped["host_id"], capped["reason"]) == ("b", "fewest_meetings")
    assert capped["candidates"][0]["user_id"] == "b"
    assert (await book(client, rotation, starts_at=at(TOKYO, day, 13)))["host_id"] == "b"
    free = await client.suggest(rotation, starts_at=at(TOKYO, day_after, 0, 30))
    assert field(free, "capped") == {"a": False, "b": False}
    assert free["host_id"] == "a"

    # Booking a capped member by name: accepted, an override.
    named = await book(client, rotation, host="a", starts_at=at(TOKYO, day, 14))
    event = await booked_event(client, rotation, named)
    assert (event["host_id"], event["override"], event["reason"]) == ("a", True, "override")
    assert event["suggested_host_id"] == "b"

    # cap null: b back to the policy's 2 a day; it has 1 on the day, 3 on the next.
    await ok(client, "SetMemberOptions", rotation, user_id="b", cap=None)
    on_day = await client.suggest(rotation, starts_at=at(TOKYO, day, 15))
    assert field(on_day, "cap") == {"a": day_cap, "b": day_cap}
    assert field(on_day, "capped") == {"a": True, "b": False}
    on_next = await client.suggest(rotation, starts_at=at(TOKYO, next_day, 15))
    assert field(on_next, "capped") == {"a": False, "b": True}
    assert on_next["host_id"] == "a"

    # A reset does not lift a cap, and credits never count towards one.
    await ok(client, "AddMember", rotation, user_id="c")
    await ok(client, "CreditMember", rotation, user_id="c", meetings=5, reason="catching up")
    after_reset = await client.suggest(rotation, starts_at=at(TOKYO, day, 15))
    assert field(after_reset, "meetings") == {"a": 0, "b": 0, "c": 0}
    assert field(after_reset, "capped") == {"a": True, "b": False, "c": False}
    assert (after_reset["host_id"], after_reset["reason"]) == ("b", "fewest_meetings")

    # Everyone capped on the day: nobody to suggest, and auto-assign is refused.
    await book(client, rotation, host="b", starts_at=at(TOKYO, day, 16))
    await ok(client, "SetMemberOptions", rotation, user_id="c", cap={"meetings": 1, "per": "week"})
    assert (await book(client, rotation, starts_at=at(TOKYO, day, 17)))["host_id"] == "c"
    none_left = await client.suggest(rotation, starts_at=at(TOKYO, day, 18))
    assert field(none_left, "capped") == {"a": True, "b": True, "c": True}
    assert (none_left["host_id"], none_left["reason"]) == (None, "no_available_member")
    refused = await send(
        client,
        "BookMeeting",
        rotation,
        meeting_id=f"m-{uid}",
        record={"type": "deal", "id": "1"},
        starts_at=at(TOKYO, day, 19).isoformat(),
    )
    assert refused["error"]["code"] == "no_available_member"


async def test_credits_count_like_meetings_until_the_next_reset(
    client: RotationsClient, uid: str
) -> None:
    rotation = f"credit-{uid}"
    await create(client, rotation, ["a", "b", "c"])
    credited = await ok(client, "CreditMember", rotation, user_id="a", meetings=2, reason="phone")
    assert [e["type"] for e in credited["events"]] == ["MemberCredited"]
    answer = await client.suggest(rotation)
    assert field(answer, "credits") == {"a": 2, "b": 0, "c": 0}
    assert field(answer, "meetings") == {"a": 0, "b": 0, "c": 0}
    assert (answer["host_id"], answer["reason"]) == ("b", "tie_join_order")
    assert await hosts(client, rotation, 2) == ["b", "c"]  # a: 3/100, b and c: 1/100
    tied = await client.suggest(rotation)  # a 3/100, b and c 2/100: b assigned before c
    assert (tied["host_id"], tied["reason"]) == ("b", "tie_least_recent")

    await ok(client, "CreditMember", rotation, user_id="a", meetings=-2, reason="taken back")
    back = await client.suggest(rotation)
    assert field(back, "credits") == {"a": 0, "b": 0, "c": 0}
    assert (back["host_id"], back["reason"]) == ("a", "fewest_meetings")

    await ok(client, "CreditMember", rotation, user_id="a", meetings=3, reason="again")
    await ok(client, "AddMember", rotation, user_id="d")  # a reset: credits go with it
    assert field(await client.suggest(rotation), "credits") == dict.fromkeys("abcd", 0)

    unknown = await send(client, "CreditMember", rotation, user_id="x", meetings=1, reason="r")
    assert unknown["error"]["code"] == "unknown_member"


# -- The rule, version 2: preferred host -----------------------------------------------------


async def test_preferred_host_is_chosen_when_it_can_host(client: RotationsClient, uid: str) -> None:
    rotation = f"preferred-{uid}"
    await create(client, rotation, ["a", "b", "c"])
    preferred = await book(client, rotation, preferred="c")
    assert preferred["host_id"] == "c"
    answer = await client.suggest(rotation, preferred_host_id="c")  # c has the most now
    assert (answer["host_id"], answer["reason"]) == ("c", "preferred_host")

    # It cannot host: the rule decides (unavailable, excluded, capped, not a member).
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=False)
    off = await client.suggest(rotation, preferred_host_id="c")
    assert (off["host_id"], off["reason"]) == ("a", "tie_join_order")
    fallback = await book(client, rotation, preferred="c")
    assert fallback["host_id"] == "a"
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=True)
    excluded = await client.suggest(rotation, exclude=["c"], preferred_host_id="c")
    assert (excluded["host_id"], excluded["reason"]) == ("b", "fewest_meetings")
    await ok(client, "SetMemberOptions", rotation, user_id="c", cap={"meetings": 1, "per": "day"})
    capped = await client.suggest(rotation, preferred_host_id="c")
    assert (capped["host_id"], capped["reason"]) == ("b", "fewest_meetings")
    stranger = await client.suggest(rotation, preferred_host_id=f"nobody-{uid}")
    assert (stranger["host_id"], stranger["reason"]) == ("b", "fewest_meetings")
    by_stranger = await book(client, rotation, preferred=f"nobody-{uid}")
    assert by_stranger["host_id"] == "b"

    chosen = await booked_event(client, rotation, preferred)
    assert (chosen["host_id"], chosen["reason"], chosen["override"]) == (
        "c",
        "preferred_host",
        False,
    )
    assert chosen["preferred_host_id"] == "c"
    ruled = await booked_event(client, rotation, fallback)
    assert (ruled["host_id"], ruled["reason"], ruled["override"]) == ("a", "tie_join_order", False)


# -- Suggestion reply, version 2: fairness ----------------------------------------------------


async def test_fairness_worked_by_hand(client: RotationsClient, uid: str) -> None:
    rotation = f"fair-{uid}"
    await create(client, rotation, ["a", "b", "c"])
    empty = await client.suggest(rotation)
    assert empty["fairness"] == {"meetings": 0, "spread": 0, "deviation": 0}

    await ok(client, "SetMemberOptions", rotation, user_id="b", weight=300)
    for host in ("a", "b", "b", "b", "c", "c", "c"):
        await book(client, rotation, host=host)
    await ok(client, "CreditMember", rotation, user_id="a", meetings=1, reason="walk-in")
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=False)

    # Over a (1 + 1 credit, weight 100) and b (3, weight 300); c is unavailable.
    # total 5, spread 1, fair shares 5/4 and 15/4: (3/4 + 3/4) / 5 = 3/10.
    answer = await client.suggest(rotation)
    assert deviation({"a": 2, "b": 3}, {"a": 100, "b": 300}) == Fraction(3, 10)
    assert answer["fairness"] == {"meetings": 5, "spread": 1, "deviation": pytest.approx(0.3)}
    assert field(answer, "meetings") == {"a": 1, "b": 3, "c": 3}
    assert field(answer, "credits") == {"a": 1, "b": 0, "c": 0}
    assert field(answer, "held") == {"a": 0, "b": 0, "c": 0}
    assert field(answer, "available") == {"a": True, "b": True, "c": False}
    # Shares: a (1 + 1 + 1)/100 = 9/300, b (3 + 1)/300 = 4/300: b.
    assert (answer["host_id"], answer["reason"]) == ("b", "fewest_meetings")

    # Three counted, unequal weights: a 2 (w 100), b 3 (w 300), c 3 (w 100) after c returns.
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=True)
    three = await client.suggest(rotation)
    expected = deviation({"a": 2, "b": 3, "c": 3}, {"a": 100, "b": 300, "c": 100})
    # By hand: fair shares 8/5, 24/5, 8/5; |2 - 1.6| + |3 - 4.8| + |3 - 1.6| = 3.6; / 8.
    assert expected == Fraction(9, 20)
    assert three["fairness"] == {"meetings": 8, "spread": 1, "deviation": pytest.approx(0.45)}

    # One member left to count: no spread; its fair share is everything.
    await ok(client, "ToggleAvailability", rotation, user_id="b", available=False)
    await ok(client, "ToggleAvailability", rotation, user_id="c", available=False)
    alone = await client.suggest(rotation)
    assert alone["fairness"] == {"meetings": 2, "spread": None, "deviation": 0}


# -- Schema errors -------------------------------------------------------------------------


async def dead_letters_of(client: RotationsClient, body: bytes) -> list[dict[str, Any]]:
    """The dead letters holding `body`."""
    return await dead_letters_where(client, lambda letter: letter["original_bytes"] == body)


@pytest.mark.parametrize(
    ("kind", "fields", "names"),
    [
        (
            "CreateRotation",
            {"name": "S", "policy": {"time_zone": "Mars/Olympus_Mons"}},
            "time_zone",
        ),
        ("SetPolicy", {"policy": {"time_zone": "Europe/Atlantis"}}, "time_zone"),
        ("SetPolicy", {"policy": {"cap": {"meetings": 0, "per": "day"}}}, "cap"),
        ("SetPolicy", {"policy": {"window": "year"}}, "window"),
        ("AddMember", {"user_id": "b", "weight": 0}, "weight"),
        ("SetMemberOptions", {"user_id": "a", "weight": 1001}, "weight"),
        ("AddMember", {"user_id": "b", "cap": {"meetings": 0, "per": "week"}}, "cap"),
        ("SetMemberOptions", {"user_id": "a", "priority": 7}, "priority"),
        ("CreditMember", {"user_id": "a", "meetings": 0, "reason": "none"}, "meetings"),
    ],
)
async def test_schema_errors_name_the_field_and_are_dead_lettered(
    client: RotationsClient, uid: str, kind: str, fields: dict[str, Any], names: str
) -> None:
    rotation = f"schema-{uid}"
    await create(client, rotation, ["a"])
    before = await client.suggest(rotation)
    if kind == "CreateRotation":
        rotation = f"schema-new-{uid}"
    body = json.dumps(command(kind, rotation, **fields)).encode()
    reply = json.loads(await client.request_raw(client.settings.commands_topic, body, rotation))
    assert reply["status"] == "rejected"
    assert reply["error"]["code"] == "invalid_message"
    assert names in reply["error"]["message"]

    mine = await dead_letters_of(client, body)
    assert mine[-1]["source_topic"] == client.settings.commands_topic
    assert mine[-1]["error"]["code"] == "invalid_message"
    assert names in mine[-1]["error"]["message"]

    if kind == "CreateRotation":
        assert (await client.suggest(rotation))["error"]["code"] == "unknown_rotation"
    else:  # nothing changed
        after = await client.suggest(f"schema-{uid}")
        assert after["candidates"] == before["candidates"]


# -- rotations.events ------------------------------------------------------------------------


async def test_policy_options_and_credits_are_published(client: RotationsClient, uid: str) -> None:
    rotation = f"published-{uid}"
    await create(client, rotation, ["a", "b"], {"on_join": "level", "time_zone": "Asia/Tokyo"})
    assert await hosts(client, rotation, 3) == ["a", "b", "a"]
    await ok(client, "SetPolicy", rotation, policy={"on_join": "level", "window": "week"})
    await ok(client, "SetMemberOptions", rotation, user_id="b", priority=4, cap=None)
    await ok(client, "CreditMember", rotation, user_id="b", meetings=1, reason="phone call")
    # Levelled against a (2/100) and b (1 + 1 credit)/100: floor(2/100 * 300) = 6.
    last = await ok(client, "AddMember", rotation, user_id="c", weight=300)
    assert [e["type"] for e in last["events"]] == ["MemberAdded", "MemberCredited"]

    events = await published(client, rotation, last["events"][-1]["position"])
    created = next(e for e in events if e["type"] == "Created")
    assert created["policy"]["on_join"] == "level"
    assert created["policy"]["time_zone"] == "Asia/Tokyo"
    (policy_set,) = [e for e in events if e["type"] == "PolicySet"]
    assert policy_set["policy"] == {  # whole: the fields left out at their defaults
        "on_join": "level",
        "on_return": "none",
        "window": "week",
        "count_by": "booked_at",
        "time_zone": "UTC",
        "cap": None,
        "no_shows_count": True,
    }
    (options,) = [e for e in events if e["type"] == "MemberOptionsSet"]
    assert (options["user_id"], options["options"]) == ("b", {"priority": 4, "cap": None})
    manual, levelling = [e for e in events if e["type"] == "MemberCredited"]
    assert (manual["user_id"], manual["meetings"], manual["reason"]) == ("b", 1, "phone call")
    assert manual["actor"] == "tests"
    assert (levelling["user_id"], levelling["meetings"]) == ("c", 6)
    assert levelling["actor"] != "tests"  # given by the service
    assert levelling["kind"] != manual["kind"]
    (added,) = [e for e in events if e["type"] == "MemberAdded"]
    assert (added["user_id"], added["options"]["weight"]) == ("c", 300)
    assert [e["position"] for e in last["events"]] == [added["position"], levelling["position"]]
