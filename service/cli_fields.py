"""`--field NAME=VALUE` parsed by the command's own schema, and the catalogue of commands.

Everything here is read off the pydantic models of `service.contracts`, so a new command
(or field) is parsed, listed by `rotations commands` and shown in `send --help` by itself.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo

from service.contracts import Command, CommandBase

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
FILLED_BY_CLI = ("type", "command_id", "rotation_id", "actor")
"""Fields the CLI fills in itself (from the argument and options), not examples' business."""

SAMPLES: dict[str, str] = {
    "name": "Sales EMEA",
    "members": "kari,ola,per",
    "teams": "sales",
    "user_id": "ola",
    "team_id": "sales",
    "meeting_id": "m-1",
    "host_id": "kari",
    "available": "false",
}
"""Example values by field name; any other field gets one from its type."""


class FieldError(ValueError):
    """A `--field` or a command that does not fit its schema: one line for the user."""


@dataclass(frozen=True)
class FieldDoc:
    """One field of a command, as the catalogue shows it."""

    name: str
    kind: str  # e.g. "text", "list of text", "true|false", "contact|company|deal|ticket:id"
    required: bool


@dataclass(frozen=True)
class CommandDoc:
    """One command type: its fields (those a user passes with --field) and an example."""

    type: str
    fields: tuple[FieldDoc, ...]
    example: str


# -- the models ---------------------------------------------------------------------------


def command_models() -> dict[str, type[CommandBase]]:
    """Every command model by its `type`, in the order of the contract's union."""
    union, *_ = get_args(Command)
    models: dict[str, type[CommandBase]] = {}
    for model in get_args(union):
        (name,) = get_args(model.model_fields["type"].annotation)
        models[name] = model
    return models


def model_for(command_type: str) -> type[CommandBase]:
    models = command_models()
    if command_type not in models:
        raise FieldError(
            f"unknown command type {command_type!r}; one of: {', '.join(models)} "
            "(see `rotations commands`)"
        )
    return models[command_type]


def _bare(annotation: Any) -> Any:
    """The annotation without Optional and Annotated wrappers."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _literal_values(annotation: Any) -> tuple[str, ...] | None:
    bare = _bare(annotation)
    if get_origin(bare) is Literal:
        return tuple(str(v) for v in get_args(bare))
    return None


# -- parsing ------------------------------------------------------------------------------


def parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    allowed = "/".join(TRUE_WORDS + FALSE_WORDS)
    raise FieldError(f"field {name}: expected one of {allowed}, got {raw!r}")


def parse_list(name: str, raw: str) -> list[str]:
    """Comma-separated, whitespace stripped; an empty item is a typo, not a member ''."""
    if not raw.strip():
        return []
    items = [item.strip() for item in raw.split(",")]
    if "" in items:
        raise FieldError(f"field {name}: empty item in {raw!r} (comma-separated, no blanks)")
    return items


def parse_nested(name: str, model: type[BaseModel], raw: str) -> dict[str, str]:
    """A nested model as its fields joined by ':' (a record is `deal:42`)."""
    names = list(model.model_fields)
    parts = raw.split(":", len(names) - 1)
    if len(parts) != len(names) or not all(p.strip() for p in parts):
        raise FieldError(f"field {name}: expected {_nested_kind(model)}, got {raw!r}")
    return {key: part.strip() for key, part in zip(names, parts, strict=True)}


def parse_value(name: str, info: FieldInfo, raw: str) -> Any:
    """One `--field` value by its field's type; the model checks the rest."""
    bare = _bare(info.annotation)
    if bare is bool:
        return parse_bool(name, raw)
    if get_origin(bare) in (list, tuple, set):
        return parse_list(name, raw)
    if _is_model(bare):
        return parse_nested(name, bare, raw)
    return raw


def parse_fields(model: type[CommandBase], items: Iterable[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs as the model's fields (names may use - for _)."""
    fields: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise FieldError(f"--field takes NAME=VALUE, got {item!r}")
        info = model.model_fields.get(name)
        if info is None or name == "type":
            known = ", ".join(f.name for f in field_docs(model))
            raise FieldError(f"{_type_of(model)} has no field {name!r}; its fields: {known}")
        fields[name] = parse_value(name, info, raw)
    return fields


def build_command(command_type: str, base: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """The command as JSON, checked against its schema before anything is sent."""
    model = model_for(command_type)
    command = {"type": command_type, **base, **parse_fields(model, items)}
    check(model, command)
    return command


def check(model: type[CommandBase], command: dict[str, Any]) -> None:
    try:
        model.model_validate(command)
    except ValidationError as error:
        raise FieldError(describe(model, error)) from None


def describe(model: type[CommandBase], error: ValidationError) -> str:
    """The first failing field, its problem and what it allows."""
    first = error.errors()[0]
    location = [str(p) for p in first.get("loc", ())]
    name = location[0] if location else "command"
    if first.get("type") == "missing":
        return f"{_type_of(model)} needs field {name} ({_field_kind(model, name)})"
    where = ".".join(location) or "command"
    listed = first.get("type") == "literal_error" or name not in model.model_fields
    allowed = "" if listed else f" (allowed: {_field_kind(model, name)})"
    return f"field {where}: {first.get('msg', 'invalid')}{allowed}"


def json_command(text: str) -> dict[str, Any]:
    """A command read from stdin: one JSON object (the service checks its schema)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise FieldError(f"stdin is not JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(value, dict):
        raise FieldError(f"stdin holds a JSON {_json_kind(value)}; expected one command object")
    return value


def _json_kind(value: object) -> str:
    kinds: dict[type[Any], str] = {list: "array", str: "string", bool: "boolean"}
    if value is None:
        return "null"
    return kinds.get(type(value), "number")


# -- the catalogue ------------------------------------------------------------------------


def field_docs(model: type[CommandBase]) -> tuple[FieldDoc, ...]:
    """The fields a user passes with --field (the CLI fills type, ids and actor)."""
    own = [n for n in model.model_fields if n not in CommandBase.model_fields and n != "type"]
    common = [n for n in CommandBase.model_fields if n not in FILLED_BY_CLI]
    return tuple(
        FieldDoc(name, _field_kind(model, name), model.model_fields[name].is_required())
        for name in own + common
    )


def _field_kind(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get(name)
    if info is None:
        return "?"
    bare = _bare(info.annotation)
    literal = _literal_values(bare)
    if literal:
        return "|".join(literal)
    if bare is bool:
        return "true|false"
    if get_origin(bare) in (list, tuple, set):
        return "comma-separated list"
    if _is_model(bare):
        return _nested_kind(bare)
    if bare in (datetime, AwareDatetime):
        return "RFC 3339 time"
    return "text"


def _nested_kind(model: type[BaseModel]) -> str:
    """A nested model's parts joined by ':', a free text part by its name (`deal|...:id`)."""
    kinds = [_field_kind(model, name) for name in model.model_fields]
    return ":".join(k if k != "text" else n for k, n in zip(kinds, model.model_fields, strict=True))


def _sample(model: type[BaseModel], name: str) -> str:
    if name in SAMPLES:
        return SAMPLES[name]
    info = model.model_fields[name]
    bare = _bare(info.annotation)
    if _is_model(bare):
        return ":".join(_sample(bare, n) for n in bare.model_fields)
    literal = _literal_values(bare)
    if literal:
        return literal[-2] if len(literal) > 1 else literal[0]
    kind = _field_kind(model, name)
    return {"true|false": "true", "RFC 3339 time": "2026-11-24T17:00:00Z"}.get(kind, "42")


def example(model: type[CommandBase]) -> str:
    """A `rotations send` line with the command's required fields."""
    parts = [f"rotations send {_type_of(model)} --rotation-id sales-emea"]
    for doc in field_docs(model):
        if doc.required:
            value = _sample(model, doc.name)
            quoted = f'"{value}"' if " " in value else value
            parts.append(f"--field {doc.name}={quoted}")
    return " ".join(parts)


def catalogue() -> list[CommandDoc]:
    """Every command type with its fields and an example, read off the models."""
    return [
        CommandDoc(name, field_docs(model), example(model))
        for name, model in command_models().items()
    ]


def help_epilog() -> str:
    """`send --help`'s list of commands: one paragraph each (typer's rich help joins lines)."""
    common = ", ".join(n for n in CommandBase.model_fields if n not in FILLED_BY_CLI)
    lines = [f"Commands and their --field names (? optional; every command also takes {common}):"]
    for doc in catalogue():
        own = [f for f in doc.fields if f.name not in CommandBase.model_fields]
        fields = " ".join(f.name if f.required else f"{f.name}?" for f in own) or "(none)"
        lines.append(f"{doc.type}: {fields}")
    lines.append("`rotations commands` shows each field's values and an example.")
    return "\n\n".join(lines)


def _type_of(model: type[BaseModel]) -> str:
    (name,) = get_args(model.model_fields["type"].annotation)
    return str(name)
