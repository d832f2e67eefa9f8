"""The log check itself (no broker): what counts as an error, and what an expectation covers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.integration.log_check import LogReader, is_severe, records, unexpected


def entry(level: str, message: str, **extra: str) -> str:
    return json.dumps({"level": level, "logger": "rotations.service", "message": message, **extra})


TEXT_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "a.py", line 1, in <module>',
    "ValueError: first",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "b.py", line 2, in <module>',
    "KeyError: 'second'",
]


def test_levels_and_tracebacks() -> None:
    lines = [
        entry("info", "fine"),
        entry("warning", "slow, but fine"),
        entry("error", "read model catch-up failed"),
        entry("critical", "gave up"),
        entry("warning", "retrying", exception="Traceback (most recent call last):\nOSError"),
        "error   rotations.service: a text record",
        "ERROR:asyncio:Task exception was never retrieved",
        "info    rotations.service: an error in the message is not a level",
    ]
    assert [is_severe(record) for record in records(lines)] == [
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
    ]


def test_a_text_traceback_is_one_record_with_its_chained_parts() -> None:
    found = list(records([entry("info", "before"), *TEXT_TRACEBACK, entry("info", "after")]))
    assert [record.line_number for record in found] == [1, 2, 11]
    assert found[1].text.endswith("KeyError: 'second'")
    # So an expectation can name the exception at the end, not just "Traceback".
    assert unexpected(found, [re.compile(r"KeyError: 'second'")]) == []
    assert unexpected(found, [re.compile(r"OSError")]) == [found[1]]


def test_the_reader_returns_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    reader = LogReader(log)
    assert reader.read_new() == (1, [])  # not started yet
    log.write_text("one\ntwo\npart")
    assert reader.read_new() == (1, ["one", "two"])
    with log.open("a") as file:
        file.write("ial\nthree\n")
    assert reader.read_new() == (3, ["partial", "three"])
    assert reader.read_new() == (5, [])
