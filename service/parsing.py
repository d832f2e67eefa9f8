"""Bytes from Kafka to validated messages, with one clear error for anything else."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.message import StreamMessage
from pydantic import TypeAdapter, ValidationError

from service.contracts import describe_validation_error

T = TypeVar("T")


class InvalidMessage(Exception):
    """The message is not JSON or fails the contract's schema."""

    code = "invalid_message"

    def __init__(self, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = partial or {}


def decode_json(body: bytes, max_bytes: int) -> Any:
    if len(body) > max_bytes:
        raise InvalidMessage(f"message is {len(body)} bytes, over the limit of {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidMessage(
            f"message is not UTF-8: {error.reason} at byte {error.start}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidMessage(f"message is not JSON: {error.msg} at char {error.pos}") from None


def parse(adapter: TypeAdapter[T], body: bytes, max_bytes: int) -> T:
    """Decode and validate; InvalidMessage says which field failed."""
    data = decode_json(body, max_bytes)
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        raise InvalidMessage(describe_validation_error(error.errors()), _ids(data)) from None


def decoder(
    adapter: TypeAdapter[T], max_bytes: int
) -> Callable[[StreamMessage[Any]], Awaitable[T]]:
    """A faststream custom decoder: the handler gets the validated model, without FastDepends
    (`apply_types=False`: its per-message resolver cost more than answering a suggestion).

    An `InvalidMessage` it raises is raised inside the subscriber's middlewares (faststream
    decodes lazily, in the handler call), so the answering middleware turns it into a reply.
    """

    async def decode(msg: StreamMessage[Any]) -> T:
        return parse(adapter, msg.body, max_bytes)

    return decode


def _ids(data: Any) -> dict[str, Any]:
    """Identifiers worth echoing in an error reply, if the client sent sane ones."""
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k in ("command_id", "rotation_id")
        if isinstance(v := data.get(k), str) and 0 < len(v) <= 200
    }
