"""`rotations send` and `rotations commands`: fields parsed by the command's own schema.

A field that does not fit is one line and exit 2, before any broker is contacted (the
broker configured here does not exist: reaching for it would exit with 1).
"""

from __future__ import annotations

import re
from pathlib import Path

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
    assert "BookMeeting needs field record (contact|company|deal|ticket:id)" in output


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
    for doc in catalogue():
        words = re.findall(r'--field (\w+)=("[^"]*"|\S+)', doc.example)
        fields = [f"{name}={value.strip(chr(34))}" for name, value in words]
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
