"""The meetings a simulation hosts otherwise than the record, kept on disk, not in memory.

A what-if over a long history may move most meetings to another host, and each moved
meeting's simulated facts must stay findable: a cancellation a year later names it. Held in
a dict they cost about 300 bytes each (262 MB more at 1,000,000 events than at 100,000,
`python -m bench --only simulate`), and the garbage collector's passes over them were a
fifth of the run. SQLite's private temporary database (`sqlite3.connect("")`: on disk,
deleted when closed; the standard library's) holds them instead, behind a dict of the
latest few thousand changes, which batches the writes and answers the lifecycle events
that follow a booking soon after it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

FLUSH = 4096  # changes held in memory before they are written at once


@dataclass(frozen=True, slots=True)
class Diverged:
    """A meeting's simulated facts where they differ from the recorded ones."""

    host_id: str | None  # None: the simulation could not book it
    assigned_version: int  # simulated numbering
    recorded_host: str
    booked_version: int  # recorded, to list meetings in booking order


class DivergenceLog:
    """meeting id → `Diverged`, for the meetings that differ; the others are absent."""

    def __init__(self, flush: int = FLUSH) -> None:
        self._flush_at = flush
        self._db = sqlite3.connect("", check_same_thread=False)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE diverged (
                meeting_id TEXT PRIMARY KEY, host_id TEXT, assigned_version INTEGER,
                recorded_host TEXT, booked_version INTEGER
            ) WITHOUT ROWID;
            """
        )
        self._recent: dict[str, Diverged | None] = {}  # None: no longer differs

    def get(self, meeting_id: str) -> Diverged | None:
        if meeting_id in self._recent:
            return self._recent[meeting_id]
        row = self._db.execute(
            "SELECT host_id, assigned_version, recorded_host, booked_version "
            "FROM diverged WHERE meeting_id = ?",
            (meeting_id,),
        ).fetchone()
        return None if row is None else Diverged(*row)

    def put(self, meeting_id: str, facts: Diverged) -> None:
        self._change(meeting_id, facts)

    def drop(self, meeting_id: str) -> None:
        self._change(meeting_id, None)

    def _change(self, meeting_id: str, facts: Diverged | None) -> None:
        self._recent[meeting_id] = facts
        if len(self._recent) >= self._flush_at:
            self._flush()

    def _flush(self) -> None:
        kept = [(m, d) for m, d in self._recent.items() if d is not None]
        with self._db:
            self._db.executemany(
                "DELETE FROM diverged WHERE meeting_id = ?",
                [(m,) for m, d in self._recent.items() if d is None],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO diverged VALUES (?, ?, ?, ?, ?)",
                [
                    (m, d.host_id, d.assigned_version, d.recorded_host, d.booked_version)
                    for m, d in kept
                ],
            )
        self._recent.clear()

    def moved(self) -> tuple[MeetingIds, MeetingIds]:
        """The meetings with another host at the end, and of them those no one could host,
        each in booking order; the log takes no more changes after."""
        self._flush()
        return (
            MeetingIds(self._db, "changed", "host_id IS NOT recorded_host"),
            MeetingIds(self._db, "unassigned", "host_id IS NULL"),
        )


class MeetingIds(Sequence[str]):
    """Meeting ids in booking order, read from the log's database as they are asked for."""

    def __init__(self, db: sqlite3.Connection, name: str, where: str) -> None:
        self._db, self._table = db, name
        with db:
            db.execute(f"CREATE TABLE {name} (n INTEGER PRIMARY KEY, meeting_id TEXT)")
            db.execute(
                f"INSERT INTO {name} (meeting_id) SELECT meeting_id FROM diverged "
                f"WHERE {where} ORDER BY booked_version, meeting_id"
            )
        self._len: int = db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            return tuple(self._range(start, stop)) if step == 1 else tuple(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        (found,) = self._range(index, index + 1)
        return found

    def _range(self, start: int, stop: int) -> list[str]:
        rows = self._db.execute(
            f"SELECT meeting_id FROM {self._table} WHERE n > ? AND n <= ? ORDER BY n",
            (start, stop),
        )
        return [meeting_id for (meeting_id,) in rows]

    def __iter__(self) -> Iterator[str]:
        rows = self._db.execute(f"SELECT meeting_id FROM {self._table} ORDER BY n")
        return (meeting_id for (meeting_id,) in rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MeetingIds | tuple | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"MeetingIds({len(self)} meetings)"
