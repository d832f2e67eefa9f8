"""Finds the errors a service logged, so a test that passed on retry still shows the bug.

The service logs JSON lines (service/logs.py) when its stderr is not a terminal, which is how
ServiceProcess runs it; anything else on its stdout/stderr (an uncaught traceback, a library
that prints) is text. A record is a problem when its level is ERROR or above, or when it holds a
Python traceback, in whichever form it comes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MARKER = "expected_log_errors"
MAX_RECORDS = 20  # per log in one failure: enough to see the bug, not a whole log

SEVERE_LEVELS = frozenset({"error", "critical", "fatal", "exception"})
TRACEBACK = "Traceback (most recent call last)"
# A text line from PlainFormatter ("error   logger: message") or logging's default format
# ("ERROR:logger:message"): the service's own fallbacks and any child that logs before setup.
_TEXT_LEVEL = re.compile(r"^(?:error|critical|fatal)\s+\S+:|^(?:ERROR|CRITICAL|FATAL)[:\s]")
# Lines that carry a text traceback on from one block to the next ("During handling ...").
_CHAINED = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)


@dataclass(frozen=True)
class Record:
    """One logged record: a JSON line, a text line, or a whole text traceback."""

    line_number: int
    text: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.text}"


def records(lines: list[str], first_line_number: int = 1) -> Iterator[Record]:
    """Group lines into records; a text traceback (with its chained parts) is one record, so an
    expected pattern can name the exception at its end."""
    index = 0
    while index < len(lines):
        line = lines[index]
        if TRACEBACK not in line or line.lstrip().startswith("{"):
            yield Record(first_line_number + index, line)
            index += 1
            continue
        start = index
        index += 1
        while index < len(lines):
            current = lines[index]
            frame_or_chain = current.startswith((" ", "\t", *_CHAINED)) or TRACEBACK in current
            if frame_or_chain or not current.strip():
                index += 1
            else:  # the exception line ends the block, unless a chained part follows
                index += 1
                following = [x for x in lines[index : index + 2] if x.strip()]
                if not (following and following[0].startswith(_CHAINED)):
                    break
        yield Record(first_line_number + start, "\n".join(lines[start:index]))


def is_severe(record: Record) -> bool:
    """At level ERROR or above, or holding a traceback (a warning with one counts too: an
    exception nobody expected is what this check is for)."""
    if TRACEBACK in record.text:
        return True
    text = record.text.strip()
    if text.startswith("{"):
        try:
            entry = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(entry, dict):
                level = entry.get("level", entry.get("levelname", ""))
                return str(level).lower() in SEVERE_LEVELS
    return bool(_TEXT_LEVEL.match(text))


def unexpected(found: Iterable[Record], expected: list[re.Pattern[str]]) -> list[Record]:
    """The severe records that no expected pattern matches (searched over the whole record)."""
    return [
        record
        for record in found
        if is_severe(record) and not any(pattern.search(record.text) for pattern in expected)
    ]


class LogReader:
    """Reads a growing log file from where it last stopped, whole lines only (the service may
    be writing the next line as this reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.line_number = 1

    def read_new(self) -> tuple[int, list[str]]:
        """The first new line's number and the new complete lines since the last read."""
        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:  # never started: nothing logged
            return self.line_number, []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        lines = complete.decode(errors="replace").splitlines()
        first = self.line_number
        self.line_number += len(lines)
        return first, lines


def report(found: dict[str, list[Record]], when: str) -> str:
    """The failure message: each log's offending records, and what to do about them."""
    parts = [f"a service logged errors or tracebacks {when} that nobody expected:"]
    for log, bad in found.items():
        parts.append(f"--- {log}")
        parts.extend(str(record) for record in bad[:MAX_RECORDS])
        if len(bad) > MAX_RECORDS:
            parts.append(f"... and {len(bad) - MAX_RECORDS} more")
    parts.append(
        "If the test provokes these on purpose, declare them with "
        f'@pytest.mark.{MARKER}("regex", ...); otherwise they are a bug to fix.'
    )
    return "\n".join(parts)
