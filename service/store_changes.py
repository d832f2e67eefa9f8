"""What other writers stored: the application's caches learn it from the notification log.

The application keeps copies of rotations (the library's aggregate cache) and of directory
users in memory, so deciding a command reads no aggregate from the store. Another writer
(a second instance, its directory consumer) can change one of them. Before deciding, the
application reads the notification log past the last position it knows and drops the
cached copies it names. Its own transactions are not read back: they are known when saved,
and the position skips over them whenever they directly follow it.

Why not the library's cache fast-forwarding: that costs a query per aggregate per command
(each booking also reads ten directory users), measured as a tenth of the commands rate on
PostgreSQL; this costs one indexed query per batch when nobody else wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

Forget = Callable[[Iterable[UUID] | None], None]


class StoreChanges:
    """Follows the notification log for the application's caches (one owner: the app)."""

    def __init__(self, recorder: ApplicationRecorder, forget: Forget, page: int = 1000) -> None:
        self.recorder = recorder
        self.forget = forget  # None: anything may have changed
        # Moves on whenever something is forgotten: a cache fill that began before may have
        # put back a copy older than what the log said (`RotationsApplication.load`).
        self.generation = 0
        self.page = page
        self.lock = threading.Lock()
        self.position = recorder.max_notification_id() or 0  # the caches start empty

    def saved(self, positions: Sequence[int]) -> None:
        """Positions this application just stored: skipped when they follow the position."""
        if not positions:
            return
        with self.lock:
            first, last = min(positions), max(positions)
            if first == self.position + 1 and last - first + 1 == len(positions):
                self.position = last

    def follow(self, most: int = 20_000) -> None:
        """Drop what others stored since the known position (all, if that is very much)."""
        with self.lock:
            head = self.recorder.max_notification_id() or 0
            if head <= self.position:
                return
            if head - self.position > most:
                self.generation += 1
                self.forget(None)
                self.position = head
                return
            while self.position < head:
                notifications = self.recorder.select_notifications(
                    start=self.position + 1, limit=self.page, stop=head
                )
                if not notifications:
                    break
                self.generation += 1
                self.forget({_uuid(n.originator_id) for n in notifications})
                self.position = notifications[-1].id
            self.position = max(self.position, head)


def _uuid(originator_id: UUID | str) -> UUID:
    return originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
