"""`--field NAME=VALUE` parsed by the command's own schema, and the catalogue of commands.

Everything here is read off the pydantic models of `service.contracts`, so a new command
(or field) is parsed, listed by `rotations commands` and shown in `send --help` by itself.
"""

from __future__ import annotations

import json
import shlex
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo

from service.contracts import Cap, Command, CommandBase

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
NULL_WORDS = ("none", "null")
"""An optional nested field given one of these is sent as null (a cap: the policy's again)."""
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
    "policy": '{"window":"month","cap":{"meetings":5,"per":"week"}}',
    "cap": "5/week",
    "weight": "200",
    "priority": "3",
    "meetings": "2",
    "reason": "covered for kari",
    "preferred_host_id": "per",
}
"""Example values by field name; any other field gets one from its type."""

EXAMPLE_EXTRAS: dict[str, tuple[str, ...]] = {"SetMemberOptions": ("weight", "cap")}
"""Optional fields an example shows anyway: a SetMemberOptions with none would be refused."""

SEPARATORS: dict[type[BaseModel], str] = {Cap: "/"}
"""The short form of a nested model joins its fields with ':' (`deal:42`) unless named here."""


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


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
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


def parse_int(name: str, raw: str) -> int:
    """A whole number in decimal: the schema's ints are strict, so "5" must become 5 here."""
    try:
        return int(raw.strip())
    except ValueError:
        raise FieldError(f"field {name}: expected a whole number, got {raw!r}") from None


def json_object(text: str, source: str, wanted: str) -> dict[str, Any]:
    """`text` as a JSON object, or one line saying what `source` held instead."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise FieldError(f"{source} is not JSON: {error.msg} at {where}") from None
    if not isinstance(value, dict):
        raise FieldError(f"{source} holds a JSON {_json_kind(value)}; expected {wanted}")
    return value


def parse_nested(
    name: str, model: type[BaseModel], raw: str, nullable: bool = False
) -> dict[str, Any]:
    """A nested model as a JSON object, or its short form: its fields joined by a separator
    (a record is `deal:42`, a cap `5/week`), each part read by its own field's type."""
    if raw.lstrip()[:1] in ("{", "["):
        return json_object(raw, f"field {name}", "an object")
    expected = f"field {name}: expected {_nested_kind(model, nullable)}, got {raw!r}"
    if not _has_short_form(model):
        raise FieldError(expected)
    names = list(model.model_fields)
    parts = raw.split(SEPARATORS.get(model, ":"), len(names) - 1)
    if len(parts) != len(names) or not all(p.strip() for p in parts):
        raise FieldError(expected)
    return {
        key: parse_value(f"{name}.{key}", model.model_fields[key], part.strip())
        for key, part in zip(names, parts, strict=True)
    }


def parse_value(name: str, info: FieldInfo, raw: str) -> Any:
    """One `--field` value by its field's type; the model checks the rest."""
    bare = _bare(info.annotation)
    if bare is bool:
        return parse_bool(name, raw)
    if bare is int:
        return parse_int(name, raw)
    if get_origin(bare) in (list, tuple, set):
        return parse_list(name, raw)
    if _is_model(bare):
        nullable = _nullable(info.annotation)
        if nullable and raw.strip().lower() in NULL_WORDS:
            return None
        return parse_nested(name, bare, raw, nullable)
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
    message = first.get("msg", "invalid")
    if not location:  # a rule across fields (SetMemberOptions needs one option)
        return f"{_type_of(model)}: {message}"
    where = ".".join(location)
    kind = _kind_at(model, location)
    if first.get("type") == "missing":
        return f"{_type_of(model)} needs field {where} ({kind or 'see `rotations commands`'})"
    listed = first.get("type") == "literal_error" or kind is None
    allowed = "" if listed else f" (allowed: {kind})"
    return f"field {where}: {message}{allowed}"


def _kind_at(model: type[BaseModel], location: Sequence[str]) -> str | None:
    """The kind of the field at a path like `policy.cap.meetings` (None: no such field)."""
    *outer, last = location
    for part in outer:
        info = model.model_fields.get(part)
        inner = _bare(info.annotation) if info is not None else None
        if not _is_model(inner):
            return None
        model = inner
    return _field_kind(model, last) if last in model.model_fields else None


def json_command(text: str) -> dict[str, Any]:
    """A command read from stdin: one JSON object (the service checks its schema)."""
    return json_object(text, "stdin", "one command object")


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
    if bare is int:
        return _int_kind(info)
    if get_origin(bare) in (list, tuple, set):
        return "comma-separated list"
    if _is_model(bare):
        return _nested_kind(bare, _nullable(info.annotation))
    if bare in (datetime, AwareDatetime):
        return "RFC 3339 time"
    return "text"


def _int_kind(info: FieldInfo) -> str:
    """`whole number 1..1000`, the bounds read off the field's constraints."""
    low, high = _bound(info, "ge"), _bound(info, "le")
    if low is None or high is None:
        return "whole number"
    return f"whole number {low}..{high}"


def _bound(info: FieldInfo, name: str) -> int | None:
    """A `ge`/`le` constraint, whether on the field or inside its Optional[Annotated[...]]."""
    pending: list[Any] = [*info.metadata, info.annotation]
    while pending:
        item = pending.pop()
        if isinstance(item, FieldInfo):
            pending.extend(item.metadata)
        elif get_origin(item) is typing.Annotated:
            pending.extend(get_args(item)[1:])
        elif get_origin(item) in (Union, types.UnionType):
            pending.extend(get_args(item))
        elif isinstance(value := getattr(item, name, None), int):
            return value
    return None


def _nested_kind(model: type[BaseModel], nullable: bool = False) -> str:
    """A nested model's short form, its parts by their values or names (`deal|...:id`,
    `meetings/day|week|month`), or JSON; a model with defaults has only its JSON object."""
    null = " or none" if nullable else ""
    if not _has_short_form(model):
        return f"JSON object (keys {', '.join(model.model_fields)}){null}"
    parts = [_literal_values(info.annotation) for info in model.model_fields.values()]
    named = ["|".join(p) if p else n for p, n in zip(parts, model.model_fields, strict=True)]
    short = SEPARATORS.get(model, ":").join(named)
    return f"{short}, JSON{null}" if nullable else f"{short} or JSON"


def _has_short_form(model: type[BaseModel]) -> bool:
    """Only a model of required fields can be written as its parts, in order."""
    return all(info.is_required() for info in model.model_fields.values())


def _nullable(annotation: Any) -> bool:
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation)


def _sample(model: type[BaseModel], name: str) -> str:
    if name in SAMPLES:
        return SAMPLES[name]
    info = model.model_fields[name]
    bare = _bare(info.annotation)
    if _is_model(bare):
        separator = SEPARATORS.get(bare, ":")
        return separator.join(_sample(bare, n) for n in bare.model_fields)
    literal = _literal_values(bare)
    if literal:
        return literal[-2] if len(literal) > 1 else literal[0]
    kind = _field_kind(model, name)
    return {"true|false": "true", "RFC 3339 time": "2026-11-24T17:00:00Z"}.get(kind, "42")


def example(model: type[CommandBase]) -> str:
    """A `rotations send` line with the command's required fields (and its extras), quoted
    for a POSIX shell."""
    shown = EXAMPLE_EXTRAS.get(_type_of(model), ())
    parts = [f"rotations send {_type_of(model)} --rotation-id sales-emea"]
    for doc in field_docs(model):
        if doc.required or doc.name in shown:
            parts.append(f"--field {doc.name}={shlex.quote(_sample(model, doc.name))}")
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
