"""Raw Kafka records made safe to hand to faststream, and read back header by header."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import ConsumerRecord

LEGAL_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _safe_header(value: bytes | None) -> bytes:
    if value is None:
        return b""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("utf-8", "replace").encode("utf-8")
    return value


def sanitise(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    """Garbage headers (non-UTF-8, null) become harmless text instead of crashing the parser."""
    headers = [(str(k), _safe_header(v)) for k, v in (record.headers or ())]
    return dataclasses.replace(record, headers=headers)


async def sanitising_parser(
    message: ConsumerRecord[Any, Any] | Sequence[ConsumerRecord[Any, Any]],
    original: Callable[[Any], Awaitable[Any]],
) -> Any:
    """faststream custom parser: sanitise, then let faststream's own parser do the rest."""
    if isinstance(message, tuple | list):  # a batch (faststream's test broker sends a list)
        return await original(tuple(sanitise(r) for r in message))
    return await original(sanitise(message))


async def whole_message(msg: Any) -> Any:
    """faststream custom decoder: hand handlers the message itself; validation is ours.

    Brokers run with `apply_types=False`: injecting the message as a FastDepends context
    field ran a synchronous resolver on a worker thread for every message, which cost more
    than answering a suggestion.
    """
    return msg


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", "replace") if value is not None else None
    return None


def headers_of(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    return {
        str(k): bytes(v).decode("utf-8", "replace") if v is not None else ""
        for k, v in (record.headers or ())
    }


def reply_topic(record: ConsumerRecord[Any, Any]) -> str | None:
    return header(record, "reply_to") or None
