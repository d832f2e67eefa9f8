"""Directory users as last read, dropped as soon as the notification log says they changed.

Every booking and every suggestion asks whether each member can host. Reading ten user
aggregates from the store per request made the directory the service's hottest path, so
users are kept in memory; the read model, which reads every new notification anyway, tells
this cache which users changed (or that it cannot tell, when another instance moved on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from uuid import UUID

from events.directory import DirectoryUser, user_uuid

UserLoader = Callable[[UUID], DirectoryUser | None]


class DirectoryCache:
    """A bounded map of user id to the user (or None: not in the directory)."""

    def __init__(self, load: UserLoader, maxsize: int = 100_000) -> None:
        self._load = load
        self._maxsize = maxsize
        self._users: dict[UUID, DirectoryUser | None] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def get(self, user_id: str) -> DirectoryUser | None:
        key = user_uuid(user_id)
        with self._lock:
            if key in self._users:
                return self._users[key]
            generation = self._generation
        user = self._load(key)
        with self._lock:
            # A change noticed while loading may be newer than what was loaded: keep nothing.
            if generation == self._generation:
                if len(self._users) >= self._maxsize:
                    self._users.clear()
                self._users[key] = user
        return user

    def invalidate(self, keys: Iterable[UUID | str]) -> None:
        """These users changed (their aggregate ids, as the notification log has them)."""
        with self._lock:
            self._generation += 1
            for key in keys:
                self._users.pop(key if isinstance(key, UUID) else UUID(key), None)

    def clear(self) -> None:
        """Anything may have changed (e.g. another instance read the log past us)."""
        with self._lock:
            self._generation += 1
            self._users.clear()
