"""`rotations send` and `rotations commands`: fields parsed by the command's own schema.

A field that does not fit is one line and exit 2, before any broker is contacted (the
broker configured here does not exist: reaching for it would exit with 1).
"""

from __future__ import annotations

import shlex
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli import cli
from service.cli_fields import FieldError, build_command, catalogue, command_models, json_command
from service.contracts import CommandBase

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "COLUMNS": "200"}
BASE = {"command_id": "c-1", "rotation_id": "r", "actor": "me"}
README = Path(__file__).resolve().parents[2] / "README.md"


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--timeout", "1"], input=stdin, env=NO_BROKER)
    return result.exit_code, result.output


def send(command_type: str, *fields: str) -> tuple[int, str]:
    options = [arg for item in fields for arg in ("--field", item)]
    return invoke("send", command_type, "--rotation-id", "r", *options)


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("value", ["maybe", "ture", "on", ""])
def test_a_bool_that_is_not_true_or_false_is_refused(value: str) -> None:
    code, output = send("ToggleAvailability", "user_id=ola", f"available={value}")

    assert code == 2
    line = one_error_line(output)
    assert "field available" in line and "true/yes/1/false/no/0" in line


@pytest.mark.parametrize(("raw", "parsed"), [("yes", True), ("0", False), ("FALSE", False)])
def test_a_bool_takes_true_false_yes_no_1_0(raw: str, parsed: bool) -> None:
    fields = ["user_id=ola", f"available={raw}"]
    assert build_command("ToggleAvailability", BASE, fields)["available"] is parsed


def test_list_items_are_stripped() -> None:
    command = build_command("CreateRotation", BASE, ["name=Sales", "members=kari, ola ,per"])

    assert command["members"] == ["kari", "ola", "per"]


@pytest.mark.parametrize("members", ["kari,,ola", "kari,", " , "])
def test_an_empty_list_item_is_refused(members: str) -> None:
    code, output = send("CreateRotation", "name=Sales", f"members={members}")

    assert code == 2
    assert "field members: empty item" in one_error_line(output)


def test_a_record_is_type_colon_id_of_the_allowed_types() -> None:
    command = build_command("BookMeeting", BASE, ["meeting_id=m", "record=deal:42"])
    assert command["record"] == {"type": "deal", "id": "42"}

    code, output = send("BookMeeting", "meeting_id=m", "record=order:42")
    assert code == 2
    line = one_error_line(output)
    assert "field record.type" in line and "'contact', 'company', 'deal' or 'ticket'" in line

    code, output = send("BookMeeting", "meeting_id=m", "record=deal")
    assert code == 2
    assert "expected contact|company|deal|ticket:id" in one_error_line(output)


def test_a_missing_required_field_names_it() -> None:
    code, output = send("BookMeeting", "meeting_id=m")

    assert code == 2
    assert "BookMeeting needs field record (contact|company|deal|ticket:id or JSON)" in output


def test_an_unknown_field_lists_the_commands_fields() -> None:
    code, output = send("CreateRotation", "nmae=Sales")

    assert code == 2
    assert "CreateRotation has no field 'nmae'; its fields: name, members, teams" in output


def test_an_unknown_type_lists_the_types() -> None:
    code, output = send("CreateRotaton", "name=Sales")

    assert code == 2
    assert "unknown command type 'CreateRotaton'" in one_error_line(output)
    assert "CreateRotation" in output


def test_a_bad_time_is_refused_before_sending() -> None:
    code, output = send("BookMeeting", "meeting_id=m", "record=deal:1", "starts_at=tomorrow")

    assert code == 2
    assert "field starts_at" in one_error_line(output)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{not json", "stdin is not JSON"),
        ("", "stdin is not JSON"),
        ('[{"type": "AddMember"}]', "stdin holds a JSON array; expected one command object"),
        ('"AddMember"', "stdin holds a JSON string"),
    ],
)
def test_send_stdin_that_is_not_one_json_object_is_one_line(stdin: str, message: str) -> None:
    code, output = invoke("send", "-", stdin=stdin)

    assert code == 2
    assert message in one_error_line(output)


def test_stdin_object_is_passed_as_is() -> None:
    assert json_command('{"type": "Whatever"}') == {"type": "Whatever"}
    with pytest.raises(FieldError):
        json_command("null")


def test_a_good_command_gets_as_far_as_the_broker() -> None:
    code, output = send("CreateRotation", "name=Sales", "members=kari, ola")

    assert code == 1  # parsed, then no broker at 127.0.0.1:1
    assert "cannot talk to the broker" in output or "no reply" in output


def test_commands_lists_every_type_with_fields_and_an_example() -> None:
    result = CliRunner().invoke(cli, ["commands"], env=NO_BROKER)
    code, output = result.exit_code, result.output

    assert code == 0, output
    for doc in catalogue():
        assert doc.type in output
        assert doc.example.split(" --field")[0] in output
        for field in doc.fields:
            assert field.name in output
    assert "record*: contact|company|deal|ticket:id" in output
    assert "available*: true|false" in output


def test_send_help_lists_every_type_with_its_fields() -> None:
    result = CliRunner().invoke(cli, ["send", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for name in command_models():
        assert name in result.output
    assert "BookMeeting: meeting_id host_id? record starts_at?" in result.output


def test_every_example_parses() -> None:
    """As a shell would split it: a policy's JSON is quoted, so is a reason with spaces."""
    for doc in catalogue():
        words = shlex.split(doc.example)
        fields = [value for option, value in pairwise(words) if option == "--field"]
        build_command(doc.type, BASE, fields)


def test_the_readme_has_every_command_and_field() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| command |") :]
    lines = table[: table.index("\n\n")].splitlines()[2:]
    rows = {line.split("|")[1].strip(" `"): line for line in lines}
    for doc in catalogue():
        assert doc.type in rows, f"README's command table lacks {doc.type}"
        for field in doc.fields:
            where = rows[doc.type] if field.name not in CommandBase.model_fields else text
            assert field.name in where, f"README: {doc.type} lacks {field.name}"


# -- version 2: numbers, policies, caps and the new commands --------------------------------


def test_a_whole_number_is_sent_as_a_number() -> None:
    command = build_command("AddMember", BASE, ["user_id=ola", "weight=200", "priority= 0"])

    assert (command["weight"], command["priority"]) == (200, 0)


@pytest.mark.parametrize("weight", ["heavy", "1.5", "true", ""])
def test_a_weight_that_is_no_whole_number_is_refused(weight: str) -> None:
    code, output = send("AddMember", "user_id=ola", f"weight={weight}")

    assert code == 2
    assert f"field weight: expected a whole number, got {weight!r}" in one_error_line(output)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            ["weight=0"],
            "field weight: Input should be greater than or equal to 1 (allowed: "
            "whole number 1..1000)",
        ),
        (
            ["priority=7"],
            "field priority: Input should be less than or equal to 4 (allowed: whole number 0..4)",
        ),
    ],
)
def test_a_number_out_of_range_says_the_range(fields: list[str], message: str) -> None:
    code, output = send("AddMember", "user_id=ola", *fields)

    assert code == 2
    assert message in one_error_line(output)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("5/week", {"meetings": 5, "per": "week"}),
        (" 1 / day ", {"meetings": 1, "per": "day"}),
        ('{"meetings": 3, "per": "month"}', {"meetings": 3, "per": "month"}),
        ("none", None),
        ("NULL", None),
    ],
)
def test_a_cap_is_short_json_or_none(raw: str, parsed: Any) -> None:
    command = build_command("SetMemberOptions", BASE, ["user_id=ola", f"cap={raw}"])

    assert command["cap"] == parsed


def test_cap_none_sets_the_cap_back_to_the_policys() -> None:
    from service.contracts import COMMAND_ADAPTER, SetMemberOptions

    command = COMMAND_ADAPTER.validate_python(
        build_command("SetMemberOptions", BASE, ["user_id=ola", "cap=none"])
    )

    assert isinstance(command, SetMemberOptions) and command.options() == {"cap": None}


@pytest.mark.parametrize(
    ("cap", "message"),
    [
        ("five/week", "field cap.meetings: expected a whole number, got 'five'"),
        ("5", "field cap: expected meetings/day|week|month, JSON or none, got '5'"),
        ("5/", "field cap: expected meetings/day|week|month, JSON or none"),
        ("5/year", "field cap.per: Input should be 'day', 'week' or 'month'"),
        (
            "0/week",
            "field cap.meetings: Input should be greater than or equal to 1 (allowed: "
            "whole number 1..1000000)",
        ),
        ('{"meetings": 5', "field cap is not JSON"),
        ('{"per": "week"}', "AddMember needs field cap.meetings (whole number 1..1000000)"),
        ('{"meetings": 5, "per": "week", "x": 1}', "field cap.x: Extra inputs are not permitted"),
    ],
)
def test_a_bad_cap_is_one_line_naming_the_part(cap: str, message: str) -> None:
    code, output = send("AddMember", "user_id=ola", f"cap={cap}")

    assert code == 2
    assert message in one_error_line(output)


def test_a_policy_is_json() -> None:
    policy = '{"window":"month","cap":{"meetings":5,"per":"week"}}'
    command = build_command("SetPolicy", BASE, [f"policy={policy}"])
    created = build_command("CreateRotation", BASE, ["name=Sales", "policy=none"])

    assert command["policy"] == {"window": "month", "cap": {"meetings": 5, "per": "week"}}
    assert created["policy"] is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("month", "field policy: expected JSON object (keys on_join, on_return, window"),
        ("none", "field policy: expected JSON object"),  # SetPolicy needs one
        ("[1]", "field policy holds a JSON array; expected an object"),
        ("{window: month}", "field policy is not JSON: Expecting property name"),
        ('{"window": "year"}', "field policy.window: Input should be 'since_reset', 'day'"),
        ('{"time_zone": "Mars/Olympus"}', "field policy.time_zone: Value error, unknown time zone"),
        (
            '{"cap": {"meetings": 0, "per": "day"}}',
            "field policy.cap.meetings: Input should be greater than or equal to 1 (allowed: "
            "whole number 1..1000000)",
        ),
        ('{"cap": {"meetings": 5.0, "per": "day"}}', "field policy.cap.meetings: Input should"),
        ('{"windows": "day"}', "field policy.windows: Extra inputs are not permitted"),
    ],
)
def test_a_bad_policy_is_one_line_naming_the_part(policy: str, message: str) -> None:
    code, output = send("SetPolicy", f"policy={policy}")

    assert code == 2
    assert message in one_error_line(output)


def test_set_member_options_without_an_option_is_refused() -> None:
    code, output = send("SetMemberOptions", "user_id=ola")

    assert code == 2
    assert "SetMemberOptions: Value error, needs at least one of weight, priority or cap" in (
        one_error_line(output)
    )


def test_a_credit_takes_a_signed_count_and_a_reason() -> None:
    command = build_command(
        "CreditMember", BASE, ["user_id=ola", "meetings=-2", "reason=took two back"]
    )
    assert (command["meetings"], command["reason"]) == (-2, "took two back")

    code, output = send("CreditMember", "user_id=ola", "meetings=0", "reason=x")
    assert code == 2
    assert "field meetings: Value error, must not be 0" in one_error_line(output)


def test_preferred_host_and_lifecycle_fields() -> None:
    booked = build_command(
        "BookMeeting", BASE, ["meeting_id=m", "record=deal:1", "preferred_host_id=per"]
    )
    moved = build_command(
        "RescheduleMeeting", BASE, ["meeting_id=m", "starts_at=2026-03-02T09:00:00+01:00"]
    )
    cancelled = build_command("CancelMeeting", BASE, ["meeting_id=m", "reason=moved to March"])
    reassigned = build_command("ReassignMeeting", BASE, ["meeting_id=m", "host-id=kari"])

    assert booked["preferred_host_id"] == "per"
    assert moved["starts_at"] == "2026-03-02T09:00:00+01:00"
    assert cancelled["reason"] == "moved to March"
    assert reassigned["host_id"] == "kari"


@pytest.mark.parametrize(
    ("command_type", "fields", "message"),
    [
        (
            "RescheduleMeeting",
            ["meeting_id=m"],
            "RescheduleMeeting needs field starts_at (RFC 3339 time)",
        ),
        ("RescheduleMeeting", ["meeting_id=m", "starts_at=2026-03-02T09:00:00"], "field starts_at"),
        ("MarkNoShow", [], "MarkNoShow needs field meeting_id (text)"),
        ("MarkNoShow", ["meeting_id=m", "reason=x"], "MarkNoShow has no field 'reason'"),
    ],
)
def test_a_bad_lifecycle_command_is_one_line(
    command_type: str, fields: list[str], message: str
) -> None:
    code, output = send(command_type, *fields)

    assert code == 2
    assert message in one_error_line(output)


def test_commands_shows_the_v2_kinds() -> None:
    result = CliRunner().invoke(cli, ["commands"], env={**NO_BROKER, "COLUMNS": "250"})

    assert result.exit_code == 0, result.output
    assert "cap: meetings/day|week|month, JSON or none" in result.output
    assert "weight: whole number 1..1000" in result.output
    assert "policy*: JSON object (keys on_join, on_return, window, count_by, time_zone, cap, " in (
        result.output
    )
    assert '--field policy=\'{"window":"month"' in result.output
