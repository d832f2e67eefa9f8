"""Legacy: receipts and meeting-id claims as tiny aggregates, as earlier builds stored them.

Receipts and claims are rows beside the events now (`service.ledger`). These classes stay so
that stores written before still decode, and so that their events can be moved into the
ledger's tables once (`service.ledger_migration`). Nothing new is stored with them.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

CLAIM_NAMESPACE = uuid5(NAMESPACE_URL, "meeting-rotations/claim")


def meeting_claim_id(rotation_id: str, meeting_id: str) -> UUID:
    return uuid5(CLAIM_NAMESPACE, f"meeting\x00{rotation_id}\x00{meeting_id}")


def command_receipt_id(command_id: str) -> UUID:
    return uuid5(CLAIM_NAMESPACE, f"command\x00{command_id}")


class MeetingClaim(Aggregate):
    """Claims a meeting id within a rotation (meeting ids are unique per rotation)."""

    @staticmethod
    def create_id(rotation_id: str, meeting_id: str, **_: Any) -> UUID:
        return meeting_claim_id(rotation_id, meeting_id)

    @event("Claimed")
    def __init__(self, rotation_id: str, meeting_id: str, host_id: str) -> None:
        self.rotation_id = rotation_id
        self.meeting_id = meeting_id
        self.host_id = host_id


class CommandReceipt(Aggregate):
    """The outcome of a handled command, so a retried command id gets the same answer."""

    @staticmethod
    def create_id(command_id: str, **_: Any) -> UUID:
        return command_receipt_id(command_id)

    @event("Recorded")
    def __init__(self, command_id: str, outcome: dict[str, Any]) -> None:
        self.command_id = command_id
        self.outcome = outcome
