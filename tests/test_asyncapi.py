"""docs/asyncapi.yaml is what the code generates: CI fails when the two drift apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import yaml

from service import contracts as c
from service.asyncapi import build_asyncapi
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
REGENERATE = "run `rotations asyncapi --out docs/asyncapi.yaml` and commit the result"


def test_committed_document_matches_the_code() -> None:
    generated = build_asyncapi().to_yaml()
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert generated == committed, f"docs/asyncapi.yaml is out of date: {REGENERATE}"


def test_the_document_does_not_depend_on_environment_or_hash_seed(tmp_path: Path) -> None:
    """The committed file documents the defaults, and faststream's endpoint order varies."""
    env = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "KAFKA_BOOTSTRAP_SERVERS": "elsewhere:9092",
        "ROTATIONS_TOPIC_PREFIX": "other.",
    }
    out = tmp_path / "asyncapi.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "asyncapi", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == build_asyncapi().to_yaml()


def message_of(doc: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (ref,) = channel["messages"].values()
    message: dict[str, Any] = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
    return message


def test_every_topic_is_documented_with_its_payload() -> None:
    doc = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    channels = {name: channel for name, channel in doc["channels"].items()}
    by_address: dict[str, list[dict[str, Any]]] = {}
    for channel in channels.values():
        by_address.setdefault(channel["address"], []).append(channel)
    actions = {
        doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]: op["action"]
        for op in doc["operations"].values()
    }
    settings = Settings.model_construct()
    expected = {
        settings.commands_topic: ("receive", "Command"),
        settings.suggest_topic: ("receive", "SuggestHost"),
        settings.directory_topic: ("receive", "DirectoryFact"),
        settings.events_topic: ("send", "EventMessage"),
        settings.dead_letter_topic: ("send", "DeadLetter"),
    }
    for topic, (action, payload) in expected.items():
        (channel,) = by_address[topic]
        assert actions[topic] == action, topic
        message = message_of(doc, channel)
        assert message["payload"] == {"$ref": f"#/components/schemas/{payload}"}, topic
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
    replies = {message_of(doc, c)["payload"]["$ref"] for c in by_address["{reply_to}"]}
    assert replies == {
        "#/components/schemas/CommandReply",
        "#/components/schemas/SuggestionReply",
    }
    schemas = doc["components"]["schemas"]
    assert "EmptyPayload" not in schemas
    mapping = schemas["Command"]["discriminator"]["mapping"]
    assert set(mapping) == {model.__name__ for model in get_args(get_args(c.Command)[0])}
    for name in ("commands", "suggest-host"):
        message = message_of(doc, by_address[settings.topic(name)][0])
        assert set(message["headers"]["properties"]) == {"reply_to", "correlation_id"}


def test_every_reference_resolves() -> None:
    doc = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(doc):
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            assert part in target, f"{ref} does not resolve"
            target = target[part]


def test_version_2_commands_and_reply_fields_are_documented() -> None:
    """A new command, its nested policy and the rules pydantic cannot say by itself; the
    suggestion reply's fairness and the candidates' new fields."""
    doc = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    schemas = doc["components"]["schemas"]

    mapping = schemas["Command"]["discriminator"]["mapping"]
    assert mapping["SetPolicy"] == "#/components/schemas/SetPolicy"
    assert schemas["SetPolicy"]["properties"]["policy"] == {"$ref": "#/components/schemas/Policy"}
    assert set(schemas["Policy"]["properties"]) == set(c.Policy().as_dict())
    assert schemas["Cap"]["properties"]["meetings"]["minimum"] == 1
    options = schemas["SetMemberOptions"]
    assert options["anyOf"] == [{"required": [name]} for name in ("weight", "priority", "cap")]
    assert options["properties"]["weight"]["type"] == "integer"  # null is refused
    assert schemas["CreditMember"]["properties"]["meetings"]["not"] == {"const": 0}
    assert "preferred_host_id" in schemas["BookMeeting"]["properties"]

    reply = schemas["SuggestionReply"]["properties"]
    assert {"$ref": "#/components/schemas/Fairness"} in reply["fairness"]["anyOf"]
    assert set(schemas["Fairness"]["properties"]) == {"meetings", "spread", "deviation"}
    candidate = schemas["Candidate"]["properties"]
    assert {"weight", "priority", "cap", "capped", "credits", "held"} <= set(candidate)
    assert {"starts_at", "preferred_host_id"} <= set(schemas["SuggestHost"]["properties"])
