"""Property: however a history goes, every way of answering from the events agrees.

Random histories (creates with and without a policy, adds with and without member options,
removes, availability toggles, bookings with and without overrides, a start or a preferred
host, renames, deletes; contract v2's SetPolicy with random windows, caps, count_by, zones and
on_join/on_return, SetMemberOptions, CreditMember; the meeting lifecycle: cancellations,
reschedules, reassignments to a named member or to the suggestion, no-shows, mostly of
meetings the rotation booked; holds of one second to an hour, bookings of recent holds (by
their member or by another) and releases, so holds expire between operations; and directory
facts: users' eligibility, deactivations, teams
joining and leaving rotations) run through RotationsApplication, and then:
(a) every live suggestion (RotationProjector after catch_up, decided at the clock's instant,
    for a random query: exclusions, a meeting start, a preferred host) equals suggest_as_of
    at that instant for the same query, and what the aggregate itself would suggest;
(b) a read model rebuilt from position 0 equals the live one, row by row;
(c) every stored decision record (bookings' and reassignments') re-derives exactly.
Both directory modes run: "open" (everyone may host) and "required" (eligibility decides).

Time: the application takes an injected clock for its business times (`at`), but the
library stamps each event's `timestamp` (which point-in-time answers compare with `as_of`)
from the wall clock. The test drives both from one manual clock, by patching the library's
timestamp source, so "the instant of a live answer" means the same on both sides. The clock
only moves between operations, mostly by 0-2 s (operations share instants and ranking ties
happen), sometimes by a quarter hour, hours or days (days, weeks and months of the policy's
zone go by, and slots fall past the 40-day horizon).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from unittest import mock
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.errors import RotationError
from projections.audit import explain_bookings
from projections.point_in_time import suggest_as_of
from projections.replay import compare, drop_view, rebuild
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.contracts import COMMAND_ADAPTER, DIRECTORY_ADAPTER
from tests.unit.commands import RECORD

USERS = [f"u{i}" for i in range(6)]
TEAMS = ["t0", "t1"]
ROTATIONS = [f"r{i}" for i in range(4)]
# Weighted: bookings and toggles are common, deletions rare (a deleted rotation is done: one
# in a hundred operations, so that most rotations live long enough to have meetings to change).
KINDS = ["book"] * 10 + ["toggle"] * 3 + ["add"] * 2 + ["remove"] * 2 + ["create"] * 5
KINDS += ["rename", "user", "user", "deactivate", "team", "add_team", "remove_team"]
KINDS += ["policy"] * 2 + ["options", "credit"]
KINDS += ["cancel"] * 2 + ["reschedule"] * 2 + ["reassign"] * 3 + ["no_show"] * 2
KINDS += ["hold"] * 3 + ["book_hold"] * 2 + ["release"]
KINDS = KINDS * 2 + ["delete"]
LIFECYCLE = {"cancel": "CancelMeeting", "reschedule": "RescheduleMeeting"}
LIFECYCLE |= {"reassign": "ReassignMeeting", "no_show": "MarkNoShow"}
DIRECTORY_KINDS = {"user", "deactivate", "team"}
# (seat, calendar_connected, calendar_sync): mostly eligible.
USER_STATES = [(True, True, True)] * 3 + [(False, True, True), (True, False, True)]
USER_STATES += [(True, True, False)]

users = st.sampled_from(USERS)
maybe_users = st.none() | st.none() | users
ZONES = ["UTC", "Asia/Tokyo", "America/Sao_Paulo", "Asia/Kathmandu"]  # +9, -3, +5:45
PERIODS = ["day", "week", "month"]
caps = st.none() | st.fixed_dictionaries(
    {"meetings": st.integers(1, 4), "per": st.sampled_from(PERIODS)}
)
policies = st.fixed_dictionaries(
    {},
    optional={
        "on_join": st.sampled_from(["reset", "level", "none"]),
        "on_return": st.sampled_from(["none", "level"]),
        "window": st.sampled_from(["since_reset", *PERIODS]),
        "count_by": st.sampled_from(["booked_at", "starts_at"]),
        "time_zone": st.sampled_from(ZONES),
        "cap": caps,
        "no_shows_count": st.booleans(),
    },
)
member_options = st.fixed_dictionaries(
    {},
    optional={
        "weight": st.sampled_from([1, 50, 100, 100, 200, 300]),
        "priority": st.integers(0, 4),
        "cap": caps,
    },
)
# A meeting's start, in minutes from the clock's instant: mostly within days of it, now and
# then further back or ahead than the 40-day horizon.
starts = st.integers(-3 * 24 * 60, 10 * 24 * 60) | st.sampled_from([-50 * 24 * 60, 45 * 24 * 60])
maybe_starts = st.none() | starts
# Which booked meeting of the rotation a lifecycle command is about (-1: one it never booked).
meeting_picks = st.integers(-1, 1000)
BOOKING_FIELDS = {
    "host_id": maybe_users,
    "starts_at": maybe_starts,
    "preferred_host_id": maybe_users,
}
LIFECYCLE_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "cancel": {"reason": st.none() | st.just("customer")},
    "reschedule": {"starts_at": starts},
    "reassign": {"host_id": maybe_users},
    "no_show": {},
}
HOLD_FIELDS = {"starts_at": maybe_starts, "preferred_host_id": maybe_users}
# Hold lengths, in seconds: some expire within the clock's small moves, some never do here.
HOLD_SECONDS = [1, 2, 120, 3600]
# The clock's move before an operation, in seconds.
TICKS = [0, 0, 0, 1, 2, 15 * 60, 9 * 3600, 3 * 86400]


class ManualClock:
    """Time stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@st.composite
def operations(draw: Any) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(KINDS))
    rotation = draw(st.sampled_from(ROTATIONS))
    team = st.sampled_from(TEAMS)
    if kind == "create":
        policy = draw(st.none() | policies)
        return (kind, rotation, draw(st.lists(users, max_size=4, unique=True)), policy)
    if kind == "book":
        return (kind, rotation, draw(st.fixed_dictionaries(BOOKING_FIELDS)))
    if kind == "add":
        return (kind, rotation, draw(users), draw(st.just({}) | member_options))
    if kind == "policy":
        return (kind, rotation, draw(policies))
    if kind == "options":
        return (kind, rotation, draw(users), draw(member_options.filter(bool)))
    if kind == "credit":
        return (kind, rotation, draw(users), draw(st.sampled_from([-2, -1, 1, 2, 3])))
    if kind in LIFECYCLE:
        fields = st.fixed_dictionaries(LIFECYCLE_FIELDS[kind])
        return (kind, rotation, draw(meeting_picks), draw(fields))
    if kind == "hold":
        seconds = draw(st.sampled_from(HOLD_SECONDS))
        return (kind, rotation, seconds, draw(st.fixed_dictionaries(HOLD_FIELDS)))
    if kind == "book_hold":
        return (kind, rotation, draw(meeting_picks), draw(maybe_users))
    if kind == "release":
        return (kind, rotation, draw(meeting_picks))
    if kind == "toggle":
        return (kind, rotation, draw(users), draw(st.booleans()))
    if kind == "rename":
        return (kind, rotation, draw(st.sampled_from(["Sales", "Support", "Ops"])))
    if kind == "delete":
        return (kind, rotation)
    if kind == "user":
        return (kind, draw(users), draw(st.sampled_from(USER_STATES)))
    if kind == "deactivate":
        return (kind, draw(users))
    if kind == "team":
        return (kind, draw(team), draw(st.lists(users, max_size=3, unique=True)))
    if kind in ("add_team", "remove_team"):
        return (kind, rotation, draw(team))
    return (kind, rotation, draw(users))


# What an observation asks after an operation: (exclude, starts_at in minutes, preferred host).
queries = st.tuples(
    st.lists(users, max_size=2, unique=True), maybe_starts, st.none() | users
) | st.just(((), None, None))
histories = st.lists(
    st.tuples(operations(), st.sampled_from(TICKS), queries), min_size=150, max_size=230
)
Query = tuple[tuple[str, ...], datetime | None, str | None]


class History:
    """Runs operations with per-example ids (the store is shared by all examples)."""

    def __init__(self, app: RotationsApplication, clock: ManualClock) -> None:
        self.app = app
        self.clock = clock
        self.booked: dict[str, list[str]] = {}  # accepted bookings' meeting ids, per rotation
        self.held: dict[str, list[str]] = {}  # accepted holds' ids, per rotation
        self.prefix = uuid4().hex[:8]
        self.actor = self.id("actor")
        self.fact(
            "UserUpdated",
            user_id=self.actor,
            seat=True,
            calendar_connected=True,
            calendar_sync=True,
            permissions=["manage_rotations", "schedule_for_others"],
        )
        for user in USERS:
            self.user(user, (True, True, True))

    def id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def command(self, type_: str, rotation: str, **fields: Any) -> bool:
        """Whether it was accepted."""
        message = {
            "type": type_,
            "command_id": uuid4().hex,
            "rotation_id": self.id(rotation),
            "actor": self.actor,
            **fields,
        }
        reply = self.app.execute(COMMAND_ADAPTER.validate_python(message))
        return reply.status == "accepted"

    def start(self, minutes: int | None) -> datetime | None:
        return None if minutes is None else self.clock.now + timedelta(minutes=minutes)

    def query(self, exclude: list[str], starts_in: int | None, preferred: str | None) -> Query:
        """An observation's question, in this example's ids and at the clock's instant."""
        user = None if preferred is None else self.id(preferred)
        return (tuple(self.id(u) for u in exclude), self.start(starts_in), user)

    def meeting(self, rotation: str, pick: int) -> str:
        booked = self.booked.get(rotation, [])
        return booked[pick % len(booked)] if booked and pick >= 0 else "never-booked"

    def hold(self, rotation: str, pick: int) -> str:
        """One of the rotation's holds, mostly a recent one (-1: one it never took)."""
        held = self.held.get(rotation, [])[-4:]
        return held[pick % len(held)] if held and pick >= 0 else "never-held"

    def optional(self, **fields: Any) -> dict[str, Any]:
        """The fields that have a value, users in this example's ids, starts as timestamps."""
        present = {k: v for k, v in fields.items() if v is not None}
        for name in ("host_id", "preferred_host_id"):
            if name in present:
                present[name] = self.id(present[name])
        if "starts_at" in present:
            starts_at = self.clock.now + timedelta(minutes=present["starts_at"])
            present["starts_at"] = starts_at.isoformat()
        return present

    def fact(self, type_: str, **fields: Any) -> None:
        message = {"type": type_, "message_id": uuid4().hex, **fields}
        self.app.record_directory(DIRECTORY_ADAPTER.validate_python(message))

    def user(self, user: str, state: tuple[bool, bool, bool]) -> None:
        seat, calendar, sync = state
        self.fact(
            "UserUpdated",
            user_id=self.id(user),
            seat=seat,
            calendar_connected=calendar,
            calendar_sync=sync,
            permissions=[],
        )

    def run(self, op: tuple[Any, ...], n: int) -> None:
        """One operation (refusals are fine: they are part of a history)."""
        kind = op[0]
        if kind == "create":
            members = [self.id(u) for u in op[2]]
            self.command(
                "CreateRotation", op[1], name="New", members=members, **self.optional(policy=op[3])
            )
        elif kind == "add":
            self.command("AddMember", op[1], user_id=self.id(op[2]), **op[3])
        elif kind == "remove":
            self.command("RemoveMember", op[1], user_id=self.id(op[2]))
        elif kind == "toggle":
            self.command("ToggleAvailability", op[1], user_id=self.id(op[2]), available=op[3])
        elif kind == "book":
            fields = self.optional(**op[2])
            if self.command("BookMeeting", op[1], meeting_id=f"m{n}", record=RECORD, **fields):
                self.booked.setdefault(op[1], []).append(f"m{n}")
        elif kind == "policy":
            self.command("SetPolicy", op[1], policy=op[2])
        elif kind == "options":
            self.command("SetMemberOptions", op[1], user_id=self.id(op[2]), **op[3])
        elif kind == "credit":
            user_id = self.id(op[2])
            self.command("CreditMember", op[1], user_id=user_id, meetings=op[3], reason="test")
        elif kind in LIFECYCLE:
            meeting_id = self.meeting(op[1], op[2])
            self.command(LIFECYCLE[kind], op[1], meeting_id=meeting_id, **self.optional(**op[3]))
        elif kind == "hold":
            fields = self.optional(**op[3])
            if self.command("HoldHost", op[1], hold_id=f"h{n}", seconds=op[2], **fields):
                self.held.setdefault(op[1], []).append(f"h{n}")
        elif kind == "book_hold":
            fields = self.optional(host_id=op[3])
            hold_id = self.hold(op[1], op[2])
            meeting = {"meeting_id": f"m{n}", "record": RECORD, "hold_id": hold_id}
            if self.command("BookMeeting", op[1], **meeting, **fields):
                self.booked.setdefault(op[1], []).append(f"m{n}")
        elif kind == "release":
            self.command("ReleaseHold", op[1], hold_id=self.hold(op[1], op[2]))
        elif kind == "rename":
            self.command("RenameRotation", op[1], name=op[2])
        elif kind == "delete":
            self.command("DeleteRotation", op[1])
        elif kind in ("add_team", "remove_team"):
            type_ = "AddTeam" if kind == "add_team" else "RemoveTeam"
            self.command(type_, op[1], team_id=self.id(op[2]))
        elif kind == "user":
            self.user(op[1], op[2])
        elif kind == "deactivate":
            self.fact("UserDeactivated", user_id=self.id(op[1]))
        else:
            self.fact("TeamUpdated", team_id=self.id(op[1]), members=[self.id(u) for u in op[2]])


def answer(ask: Callable[[], Any]) -> tuple[Any, ...]:
    """A suggestion and the rotation version it reflects, or the refusal's code."""
    try:
        found = ask()
    except RotationError as error:
        return ("refused", error.code)
    return (found.suggestion, found.rotation.version)


@contextmanager
def clocked_app(
    store_env: dict[str, str], directory: str
) -> Iterator[tuple[RotationsApplication, ManualClock]]:
    clock = ManualClock()
    app = RotationsApplication(env=dict(store_env), clock=clock, directory=directory)
    try:
        with mock.patch("eventsourcing.domain.datetime_now_with_tzinfo", clock):
            yield app, clock
    finally:
        app.close()


@pytest.mark.timeout(600)  # passing: < 30 s; a failure may shrink for minutes
@pytest.mark.parametrize("directory", ["open", "required"])
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one store per test; ids are per example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,  # histories are long by design (200 operations at least)
    ],
)
@given(history=histories)
def test_live_point_in_time_rebuilt_and_explained_answers_agree(
    store_env: dict[str, str], directory: str, history: list[tuple[Any, ...]]
) -> None:
    with clocked_app(store_env, directory) as (app, clock):
        run = History(app, clock)
        projector = RotationProjector(app, open_view(app))
        projector.catch_up()
        # The last answer at each (rotation, instant), with its question: what the events up
        # to that instant say.
        live: dict[tuple[str, datetime], tuple[Query, tuple[Any, ...]]] = {}

        def observe(rotation_id: str, query: Query) -> None:
            exclude, starts_at, preferred = query
            here = answer(
                lambda: projector.suggest(
                    rotation_id,
                    exclude,
                    app.ineligible_users,
                    at=clock.now,
                    starts_at=starts_at,
                    preferred_host_id=preferred,
                )
            )
            live[(rotation_id, clock.now)] = (query, here)
            if here[0] != "refused":
                rotation = app.get_rotation(rotation_id)
                ineligible = app.ineligible_users(list(rotation.members))
                expected = rotation.suggest(clock.now, exclude, ineligible, starts_at, preferred)
                assert here[0] == expected

        for n, (op, tick, question) in enumerate(history):
            clock.now += timedelta(seconds=tick)
            run.run(op, n)
            projector.catch_up()
            # A directory fact can change any rotation's answer; a command only its own.
            touched = ROTATIONS if op[0] in DIRECTORY_KINDS else [op[1]]
            for rotation in touched:
                observe(run.id(rotation), run.query(*question))

        # (a) every live answer is what the events alone say about that instant
        for (rotation_id, instant), (query, expected) in live.items():
            then = answer(partial(suggest_as_of, app, rotation_id, instant, *query))
            assert then == expected, (rotation_id, instant, query)

        # (b) a rebuild from position 0 equals the live read model
        rebuilt = rebuild(app)
        try:
            comparison = compare(app, rebuilt.table_name)
            assert comparison.identical, comparison.differences[:5]
            assert comparison.rebuilt_position == projector.position
        finally:
            drop_view(app, rebuilt.table_name)

        # (c) every stored decision record re-derives exactly
        for rotation in ROTATIONS:
            try:
                explanations = explain_bookings(app, run.id(rotation))
            except RotationError:
                continue  # never created in this history
            mismatched = [x for x in explanations if x.matches is not True]
            assert not mismatched, mismatched[0].differences
