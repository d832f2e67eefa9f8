"""Which directory mode was in force when: the service records it when it starts with one.

A decision is re-derived with the mode it was made under (`explain`, `as_of`). Before the
first recorded mode (stores from earlier builds, applications that only read), the reader's
own configured mode stands in.
"""

from __future__ import annotations

from datetime import datetime

from events.directory import DIRECTORY_MODE_ID, REQUIRED, DirectoryMode
from events.fold import fold
from projections.ports import AuditSource, history


class ModeHistory:
    """The recorded modes of one store, read once."""

    def __init__(self, source: AuditSource) -> None:
        self.default = source.directory_required
        events, positions = history(source, DIRECTORY_MODE_ID)
        self._changes: list[tuple[int, datetime, bool]] = []
        mode: DirectoryMode | None = None
        for event, position in zip(events, positions, strict=True):
            mode = fold([event], mode)
            assert mode is not None
            self._changes.append((position, event.timestamp, mode.mode == REQUIRED))

    def required_before(self, position: int) -> bool:
        """The mode a decision stored at `position` was made under."""
        found = self.default
        for at, _, required in self._changes:
            if at >= position:
                break
            found = required
        return found

    def required_at(self, instant: datetime) -> bool:
        """The mode in force at `instant`."""
        found = self.default
        for _, timestamp, required in self._changes:
            if timestamp > instant:
                break
            found = required
        return found


def mode_name(required: bool) -> str:
    return REQUIRED if required else "open"
