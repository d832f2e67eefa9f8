"""Reads a service's store directly, to check what it really holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

from eventsourcing.utils import get_topic

from events.rotation import Rotation
from projections.rotation_view import RotationProjector, open_view
from service.application import RotationsApplication
from service.store import store_environment


def open_store(store_url: str) -> RotationsApplication:
    return RotationsApplication(env=store_environment(store_url))


def booked_meetings(app: RotationsApplication) -> Counter[tuple[str, str]]:
    """How many MeetingBooked events each (rotation, meeting) has in the store."""
    counts: Counter[tuple[str, str]] = Counter()
    topic = get_topic(Rotation.MeetingBooked)
    start = 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=1000, topics=[topic])
        if not page:
            return counts
        for notification in page:
            event: Any = app.mapper.to_domain_event(notification)
            counts[(str(event.originator_id), event.meeting_id)] += 1
        start = page[-1].id + 1


def live_view_equals_rebuild(app: RotationsApplication, rotation_ids: list[str]) -> list[str]:
    """Rotations whose live read-model row differs from a fresh rebuild from position 0."""
    live = RotationProjector(app, open_view(app))
    table = "check_view"
    rebuilt = RotationProjector(app, open_view(app, table_name=table), tracking_name=table)
    rebuilt.catch_up()
    live.catch_up()
    return [
        rotation_id
        for rotation_id in rotation_ids
        if live.suggest(rotation_id).suggestion != rebuilt.suggest(rotation_id).suggestion
    ]
