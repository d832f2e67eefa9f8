"""Moves receipts and claims that older versions stored as events into the ledger's tables.

Once per store, recorded as a tracking record: stores written before receipts and claims
became rows (`service.ledger`) keep answering repeated command ids and meeting ids. The
legacy events stay in the log (events are never changed); only their rows are added. Stop
every older instance before starting this version: what they store later is not moved.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError, Tracking

from events.claims import CommandReceipt, MeetingClaim
from service.ledger import Claim, Receipt

log = logging.getLogger("rotations.ledger")

MIGRATION = "ledger:receipts-and-claims-as-rows"
LEGACY_TOPICS = [
    f"{cls.__module__}:{cls.__qualname__}"
    for cls in (CommandReceipt.Recorded, MeetingClaim.Claimed)  # type: ignore[attr-defined]
]


def migrate_legacy_ledger(app: Any, page: int = 1000) -> int:
    """Copy legacy receipt and claim events into rows (once); returns how many were moved."""
    recorder = app.recorder
    if recorder.max_tracking_id(MIGRATION) is not None:
        return 0
    receipts: list[Receipt] = []
    claims: list[Claim] = []
    start = 1
    while True:
        notifications = recorder.select_notifications(start, page, topics=LEGACY_TOPICS)
        for notification in notifications:
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, CommandReceipt.Recorded):  # type: ignore[attr-defined]
                receipts.append(Receipt(event.command_id, orjson.dumps(event.outcome)))
            else:
                claims.append(Claim(event.rotation_id, event.meeting_id, event.host_id))
        if len(notifications) < page:
            break
        start = notifications[-1].id + 1
    try:
        recorder.insert_events(
            [], tracking=Tracking(MIGRATION, 1), receipts=receipts, claims=claims
        )
    except IntegrityError:
        if recorder.max_tracking_id(MIGRATION) is None:
            raise
        return 0  # another instance moved them first
    if receipts or claims:
        log.info("moved legacy receipts and claims", extra={"receipts": len(receipts)})
    return len(receipts) + len(claims)
