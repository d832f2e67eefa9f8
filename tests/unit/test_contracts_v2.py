"""Wire contract version 2: each new field's schema, and v1 messages unchanged in meaning.

An invalid field is an `invalid_message` whose text names the field, so every refusal here is
checked through `describe_validation_error`, the function that writes that text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from service import contracts as c

BASE = {"command_id": "c-1", "rotation_id": "r", "actor": "me"}
RECORD = {"type": "deal", "id": "d1"}


def command(type_: str, **fields: Any) -> Any:
    return c.COMMAND_ADAPTER.validate_python({"type": type_, **BASE, **fields})


def refusal(type_: str, **fields: Any) -> str:
    """The invalid_message text of a command that must fail its schema."""
    with pytest.raises(ValidationError) as caught:
        command(type_, **fields)
    return c.describe_validation_error(caught.value.errors())


def policy_refusal(**fields: Any) -> str:
    return refusal("SetPolicy", policy=fields)


# -- version 1 messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "CreateRotation", "name": "Sales", "members": ["a"], "teams": []},
        {"type": "RenameRotation", "name": "Sales 2"},
        {"type": "AddMember", "user_id": "a"},
        {"type": "RemoveMember", "user_id": "a"},
        {"type": "AddTeam", "team_id": "t"},
        {"type": "RemoveTeam", "team_id": "t"},
        {"type": "ToggleAvailability", "user_id": "a", "available": False},
        {"type": "BookMeeting", "meeting_id": "m", "record": RECORD},
        {"type": "BookMeeting", "meeting_id": "m", "host_id": "a", "record": RECORD},
        {"type": "DeleteRotation"},
    ],
)
def test_every_v1_command_is_still_valid(message: dict[str, Any]) -> None:
    parsed = c.COMMAND_ADAPTER.validate_python({**BASE, **message})

    assert parsed.type == message["type"]


def test_v1_commands_get_the_v1_behaviour_by_default() -> None:
    created = command("CreateRotation", name="Sales")
    added = command("AddMember", user_id="a")
    booked = command("BookMeeting", meeting_id="m", record=RECORD)

    assert created.policy is None
    assert (added.weight, added.priority, added.cap) == (None, None, None)
    assert booked.preferred_host_id is None


def test_the_default_policy_is_version_1() -> None:
    assert c.Policy().as_dict() == {
        "on_join": "reset",
        "on_return": "none",
        "window": "since_reset",
        "count_by": "booked_at",
        "time_zone": "UTC",
        "cap": None,
        "no_shows_count": True,
    }


def test_a_v1_suggestion_request_and_reply_still_parse() -> None:
    request = c.SuggestHost.model_validate({"rotation_id": "r", "exclude": ["a"]})
    reply = c.SuggestionReply.model_validate(
        {
            "rotation_id": "r",
            "host_id": "a",
            "reason": "fewest_meetings",
            "candidates": [
                {
                    "user_id": "a",
                    "meetings": 0,
                    "last_assigned_at": None,
                    "available": True,
                    "joined_at": "2026-01-01T00:00:00Z",
                }
            ],
            "position": 3,
        }
    )

    assert (request.starts_at, request.preferred_host_id) == (None, None)
    (candidate,) = reply.candidates
    assert (candidate.weight, candidate.priority, candidate.cap) == (100, 2, None)
    assert (candidate.capped, candidate.credits, candidate.held) == (False, 0, 0)
    assert reply.fairness is None


# -- policy --------------------------------------------------------------------------------


def test_a_policy_fills_the_fields_left_out_with_their_defaults() -> None:
    parsed = command("SetPolicy", policy={"window": "month", "cap": {"meetings": 5, "per": "week"}})

    assert parsed.policy.as_dict() == {
        **c.Policy().as_dict(),
        "window": "month",
        "cap": {"meetings": 5, "per": "week"},
    }


def test_create_rotation_takes_a_policy() -> None:
    parsed = command("CreateRotation", name="Sales", policy={"on_join": "level"})

    assert parsed.policy == c.Policy(on_join="level")


def test_set_policy_needs_a_policy() -> None:
    assert "SetPolicy.policy: Field required" in refusal("SetPolicy")


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("on_join", ["reset", "level", "none"], "always"),
        ("on_return", ["none", "level"], "reset"),
        ("window", ["since_reset", "day", "week", "month"], "year"),
        ("count_by", ["booked_at", "starts_at"], "ends_at"),
    ],
)
def test_policy_choices(field: str, good: list[str], bad: str) -> None:
    for value in good:
        assert c.Policy.model_validate({field: value}).as_dict()[field] == value

    assert f"SetPolicy.policy.{field}: Input should be" in policy_refusal(**{field: bad})


@pytest.mark.parametrize("zone", ["UTC", "Europe/Oslo", "America/Argentina/Buenos_Aires"])
def test_a_policy_time_zone_is_an_iana_name(zone: str) -> None:
    assert c.Policy(time_zone=zone).as_dict()["time_zone"] == zone


@pytest.mark.parametrize(
    "zone",
    [
        "",
        "localtime",
        "posixrules",
        "/etc/localtime",
        "../../etc/passwd",
        "Europe/../UTC",
        "Europe/Osloo",
        "Europe",
        "utc ",
        "zone.tab",
        "a" * 65,
        "UTC\x00",
    ],
)
def test_a_time_zone_that_is_no_iana_zone_is_refused(zone: str) -> None:
    assert "SetPolicy.policy.time_zone: Value error" in policy_refusal(time_zone=zone)


@pytest.mark.parametrize("value", [None, 5, ["UTC"]])
def test_a_time_zone_must_be_text(value: Any) -> None:
    assert "SetPolicy.policy.time_zone: Input should be a valid string" in policy_refusal(
        time_zone=value
    )


def test_no_shows_count_is_a_bool() -> None:
    assert c.Policy(no_shows_count=False).as_dict()["no_shows_count"] is False
    assert "SetPolicy.policy.no_shows_count" in policy_refusal(no_shows_count="sometimes")


def test_a_policy_has_no_other_fields() -> None:
    assert "SetPolicy.policy.windows: Extra inputs are not permitted" in policy_refusal(
        windows="day"
    )


# -- caps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("meetings", "per"), [(1, "day"), (5, "week"), (1_000_000, "month")])
def test_a_cap_is_a_count_per_period(meetings: int, per: str) -> None:
    policy = c.Policy.model_validate({"cap": {"meetings": meetings, "per": per}})

    assert policy.as_dict()["cap"] == {"meetings": meetings, "per": per}


@pytest.mark.parametrize(
    ("cap", "where"),
    [
        ({"meetings": 0, "per": "week"}, "cap.meetings"),
        ({"meetings": -1, "per": "week"}, "cap.meetings"),
        ({"meetings": 1_000_001, "per": "week"}, "cap.meetings"),
        ({"meetings": True, "per": "week"}, "cap.meetings"),
        ({"meetings": 2.0, "per": "week"}, "cap.meetings"),
        ({"meetings": "5", "per": "week"}, "cap.meetings"),
        ({"meetings": 5, "per": "year"}, "cap.per"),
        ({"meetings": 5}, "cap.per"),
        ({"per": "day"}, "cap.meetings"),
        ({"meetings": 5, "per": "day", "every": 2}, "cap.every"),
    ],
)
def test_a_bad_cap_names_its_field(cap: dict[str, Any], where: str) -> None:
    assert f"SetPolicy.policy.{where}:" in policy_refusal(cap=cap)
    assert f"AddMember.{where}:" in refusal("AddMember", user_id="a", cap=cap)


# -- member options ------------------------------------------------------------------------


def test_add_member_takes_weight_priority_and_cap() -> None:
    parsed = command(
        "AddMember", user_id="a", weight=200, priority=4, cap={"meetings": 3, "per": "day"}
    )

    assert (parsed.weight, parsed.priority) == (200, 4)
    assert parsed.cap == c.Cap(meetings=3, per="day")


@pytest.mark.parametrize("weight", [1, 100, 1000])
def test_a_weight_is_1_to_1000(weight: int) -> None:
    assert command("AddMember", user_id="a", weight=weight).weight == weight


@pytest.mark.parametrize("weight", [0, -5, 1001, True, 1.5, 100.0, "100"])
def test_a_bad_weight_is_refused(weight: Any) -> None:
    assert "AddMember.weight:" in refusal("AddMember", user_id="a", weight=weight)
    assert "SetMemberOptions.weight:" in refusal("SetMemberOptions", user_id="a", weight=weight)


@pytest.mark.parametrize("priority", [0, 2, 4])
def test_a_priority_is_0_to_4(priority: int) -> None:
    assert command("AddMember", user_id="a", priority=priority).priority == priority


@pytest.mark.parametrize("priority", [-1, 5, 7, False, 2.0, "2"])
def test_a_bad_priority_is_refused(priority: Any) -> None:
    assert "AddMember.priority:" in refusal("AddMember", user_id="a", priority=priority)


def test_set_member_options_gives_only_the_options_present() -> None:
    weight_only = command("SetMemberOptions", user_id="a", weight=300)
    cap_back = command("SetMemberOptions", user_id="a", cap=None)
    all_three = command(
        "SetMemberOptions", user_id="a", weight=1, priority=0, cap={"meetings": 2, "per": "month"}
    )

    assert weight_only.options() == {"weight": 300}
    assert cap_back.options() == {"cap": None}
    assert all_three.options() == {
        "weight": 1,
        "priority": 0,
        "cap": {"meetings": 2, "per": "month"},
    }


def test_set_member_options_needs_an_option() -> None:
    message = refusal("SetMemberOptions", user_id="a")

    assert "SetMemberOptions:" in message and "weight, priority or cap" in message


@pytest.mark.parametrize("field", ["weight", "priority"])
def test_only_a_cap_may_be_set_back_to_null(field: str) -> None:
    assert f"SetMemberOptions.{field}: Value error, may not be null" in refusal(
        "SetMemberOptions", user_id="a", **{field: None}
    )


def test_set_member_options_needs_a_user() -> None:
    assert "SetMemberOptions.user_id: Field required" in refusal("SetMemberOptions", weight=5)


# -- credits -------------------------------------------------------------------------------


@pytest.mark.parametrize("meetings", [1, -1, 1_000_000, -1_000_000])
def test_a_credit_is_a_non_zero_count_with_a_reason(meetings: int) -> None:
    parsed = command("CreditMember", user_id="a", meetings=meetings, reason="covered a shift")

    assert (parsed.meetings, parsed.reason) == (meetings, "covered a shift")


@pytest.mark.parametrize("meetings", [0, 1_000_001, -1_000_001, True, 1.0, "3", None])
def test_a_bad_credit_is_refused(meetings: Any) -> None:
    message = refusal("CreditMember", user_id="a", meetings=meetings, reason="x")

    assert "CreditMember.meetings:" in message


@pytest.mark.parametrize("reason", ["", "x" * 501, None])
def test_a_credit_needs_a_reason_of_1_to_500_characters(reason: Any) -> None:
    message = refusal("CreditMember", user_id="a", meetings=1, reason=reason)

    assert "CreditMember.reason:" in message
    assert command("CreditMember", user_id="a", meetings=1, reason="x" * 500).reason


def test_a_credit_without_a_reason_is_refused() -> None:
    assert "CreditMember.reason: Field required" in refusal("CreditMember", user_id="a", meetings=2)


# -- preferred host ------------------------------------------------------------------------


def test_booking_and_suggesting_take_a_preferred_host() -> None:
    booked = command("BookMeeting", meeting_id="m", record=RECORD, preferred_host_id="owner")
    request = c.SuggestHost.model_validate(
        {"rotation_id": "r", "preferred_host_id": "owner", "starts_at": "2026-03-02T09:00:00+01:00"}
    )

    assert booked.preferred_host_id == request.preferred_host_id == "owner"
    assert request.starts_at is not None and request.starts_at.utcoffset() is not None


@pytest.mark.parametrize("host", ["", "x" * 201, 5])
def test_a_bad_preferred_host_is_refused(host: Any) -> None:
    message = refusal("BookMeeting", meeting_id="m", record=RECORD, preferred_host_id=host)

    assert "BookMeeting.preferred_host_id:" in message


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"preferred_host_id": ""}, "preferred_host_id"),
        ({"starts_at": "2026-03-02T09:00:00"}, "starts_at"),
        ({"starts_at": "tomorrow"}, "starts_at"),
    ],
)
def test_a_bad_suggestion_request_names_its_field(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        c.SuggestHost.model_validate({"rotation_id": "r", **fields})

    assert c.describe_validation_error(caught.value.errors()).startswith(f"{where}:")


# -- meeting lifecycle ---------------------------------------------------------------------


def test_lifecycle_commands_parse() -> None:
    cancelled = command("CancelMeeting", meeting_id="m", reason="customer asked")
    bare_cancel = command("CancelMeeting", meeting_id="m")
    moved = command("RescheduleMeeting", meeting_id="m", starts_at="2026-03-02T09:00:00Z")
    reassigned = command("ReassignMeeting", meeting_id="m", host_id="b")
    auto = command("ReassignMeeting", meeting_id="m")
    no_show = command("MarkNoShow", meeting_id="m")

    assert (cancelled.reason, bare_cancel.reason) == ("customer asked", None)
    assert moved.starts_at.isoformat() == "2026-03-02T09:00:00+00:00"
    assert (reassigned.host_id, auto.host_id) == ("b", None)
    assert no_show.meeting_id == "m"


@pytest.mark.parametrize(
    ("type_", "fields", "where"),
    [
        ("CancelMeeting", {}, "meeting_id"),
        ("CancelMeeting", {"meeting_id": ""}, "meeting_id"),
        ("CancelMeeting", {"meeting_id": "m", "reason": "x" * 501}, "reason"),
        ("RescheduleMeeting", {"meeting_id": "m"}, "starts_at"),
        ("RescheduleMeeting", {"meeting_id": "m", "starts_at": "2026-03-02T09:00:00"}, "starts_at"),
        ("ReassignMeeting", {"meeting_id": "m", "host_id": ""}, "host_id"),
        ("ReassignMeeting", {"host_id": "b"}, "meeting_id"),
        ("MarkNoShow", {"meeting_id": "x" * 201}, "meeting_id"),
        ("MarkNoShow", {"meeting_id": "m", "reason": "late"}, "reason"),
    ],
)
def test_a_bad_lifecycle_command_names_its_field(
    type_: str, fields: dict[str, Any], where: str
) -> None:
    assert f"{type_}.{where}:" in refusal(type_, **fields)


def test_every_new_command_is_in_the_union() -> None:
    new: dict[str, dict[str, Any]] = {
        "SetPolicy": {"policy": {}},
        "SetMemberOptions": {"user_id": "a", "priority": 3},
        "CreditMember": {"user_id": "a", "meetings": 2, "reason": "r"},
        "CancelMeeting": {"meeting_id": "m"},
        "RescheduleMeeting": {"meeting_id": "m", "starts_at": "2026-03-02T09:00:00Z"},
        "ReassignMeeting": {"meeting_id": "m"},
        "MarkNoShow": {"meeting_id": "m"},
    }
    for type_, fields in new.items():
        assert type(command(type_, **fields)).__name__ == type_


def test_new_commands_keep_the_common_rules() -> None:
    message = refusal("MarkNoShow", meeting_id="m", command_id="directory:x")

    assert "MarkNoShow.command_id: Value error, may not start with 'directory:'" in message


# -- the reply -----------------------------------------------------------------------------


def test_a_candidate_and_the_fairness_of_a_reply() -> None:
    reply = c.SuggestionReply(
        rotation_id="r",
        host_id="a",
        reason="tie_priority",
        candidates=[
            c.Candidate(
                user_id="a",
                meetings=3,
                last_assigned_at=None,
                available=True,
                joined_at=datetime(2026, 1, 1, tzinfo=UTC),
                weight=200,
                priority=4,
                cap=c.Cap(meetings=5, per="week"),
                capped=False,
                credits=-1,
                held=1,
            )
        ],
        fairness=c.Fairness(meetings=2, spread=None, deviation=0.0),
    )
    wire = reply.model_dump(mode="json")

    assert wire["candidates"][0]["cap"] == {"meetings": 5, "per": "week"}
    assert wire["candidates"][0]["credits"] == -1
    assert wire["fairness"] == {"meetings": 2, "spread": None, "deviation": 0.0}
    assert c.SuggestionReply.model_validate(wire) == reply
