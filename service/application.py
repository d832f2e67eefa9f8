"""The eventsourcing Application: one method per command, each saved atomically."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking

from events.claims import CommandReceipt, MeetingClaim, command_receipt_id, meeting_claim_id
from events.errors import (
    Conflict,
    DuplicateMeeting,
    RotationError,
    RotationExists,
    UnknownRotation,
)
from events.rotation import Rotation, rotation_uuid
from service import contracts as c
from projections.positions import positions_of

log = logging.getLogger("rotations.application")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RotationsApplication(Application[UUID]):
    """Commands in, events out; every save can carry the tracking of the message it handles."""

    name = "Rotations"
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        "COMPRESSOR_TOPIC": "",
    }
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Rotation: 200}

    def __init__(
        self, env: dict[str, str] | None = None, clock: Clock = utc_now, conflict_retries: int = 5
    ) -> None:
        super().__init__(env)
        self.recorder: ProcessRecorder
        self.clock = clock
        self.conflict_retries = conflict_retries

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder, so events and tracking records commit together."""
        return self.factory.process_recorder()

    # -- reads ---------------------------------------------------------------------------

    def get_rotation(self, rotation_id: str) -> Rotation:
        try:
            rotation = self.repository.get(rotation_uuid(rotation_id))
        except AggregateNotFoundError:
            raise UnknownRotation(f"no rotation {rotation_id!r}") from None
        assert isinstance(rotation, Rotation)
        return rotation

    def find_receipt(self, command_id: str) -> c.CommandReply | None:
        try:
            receipt = self.repository.get(command_receipt_id(command_id))
        except AggregateNotFoundError:
            return None
        assert isinstance(receipt, CommandReceipt)
        return c.CommandReply.model_validate(receipt.outcome)

    def is_tracked(self, tracking: Tracking) -> bool:
        """Was the message at this position already handled (its effects stored)?"""
        last = self.recorder.max_tracking_id(tracking.application_name)
        return last is not None and last >= tracking.notification_id

    # -- commands ------------------------------------------------------------------------

    def execute(self, command: c.CommandBase, tracking: Tracking | None = None) -> c.CommandReply:
        """Handle one command exactly once; a known command id gets its original reply."""
        previous = self.find_receipt(command.command_id)
        if previous is not None:
            return self.reply_for_receipt(previous)
        for _attempt in range(self.conflict_retries + 1):
            try:
                return self._decide_and_save(command, tracking)
            except IntegrityError:
                previous = self.find_receipt(command.command_id)
                if previous is not None:
                    return self.reply_for_receipt(previous)
                log.info("optimistic concurrency conflict on %s, retrying", command.rotation_id)
        return _rejected(command, Conflict(f"lost {self.conflict_retries + 1} races"))

    def _decide_and_save(
        self, command: c.CommandBase, tracking: Tracking | None
    ) -> c.CommandReply:
        try:
            rotation, extra, host_id = self._decide(command)
        except RotationError as error:
            reply = _rejected(command, error)
            self._save(tracking, CommandReceipt(command_id=command.command_id, outcome=_dump(reply)))
            return reply
        pending = list(rotation.pending_events)
        first_version = pending[0].originator_version if pending else rotation.version + 1
        outcome = c.CommandReply(
            status="accepted",
            command_id=command.command_id,
            rotation_id=command.rotation_id,
            version=rotation.version,
            events=[c.EventRef(type=type(e).__name__, position=0) for e in pending],
            host_id=host_id,
        )
        receipt = CommandReceipt(command_id=command.command_id, outcome=_dump(outcome))
        recordings = self._save(tracking, rotation, *extra, receipt)
        positions = {r.domain_event.originator_version: r.notification.id for r in recordings
                     if r.domain_event.originator_id == rotation.id}
        outcome.events = [
            c.EventRef(type=ref.type, position=positions[first_version + i])
            for i, ref in enumerate(outcome.events)
        ]
        return outcome

    def reply_for_receipt(self, reply: c.CommandReply) -> c.CommandReply:
        """Fill in the stored events' positions of a reply read back from a receipt."""
        if reply.status != "accepted" or not reply.events or reply.version is None:
            return reply
        first = reply.version - len(reply.events) + 1
        found = positions_of(
            self.recorder, rotation_uuid(reply.rotation_id or ""), first, reply.version
        )
        events = [c.EventRef(type=e.type, position=p) for e, p in zip(reply.events, found, strict=False)]
        return reply.model_copy(update={"events": events})

    def _decide(self, command: c.CommandBase) -> tuple[Rotation, list[Aggregate], str | None]:
        """Run the command against the domain; returns the rotation and other new aggregates."""
        now = self.clock()
        if isinstance(command, c.CreateRotation):
            if rotation_uuid(command.rotation_id) in self.repository:
                raise RotationExists(f"rotation {command.rotation_id!r} exists")
            members = list(dict.fromkeys(command.members))
            return Rotation(rotation_id=command.rotation_id, name=command.name, members=members,
                            at=now), [], None
        rotation = self.get_rotation(command.rotation_id)
        if isinstance(command, c.RenameRotation):
            rotation.rename(command.name)
        elif isinstance(command, c.AddMember):
            rotation.add_member(command.user_id, at=now)
        elif isinstance(command, c.RemoveMember):
            rotation.remove_member(command.user_id)
        elif isinstance(command, c.ToggleAvailability):
            rotation.toggle_availability(command.user_id, command.available)
        elif isinstance(command, c.DeleteRotation):
            rotation.delete()
        elif isinstance(command, c.BookMeeting):
            rotation._require_live()
            if meeting_claim_id(command.rotation_id, command.meeting_id) in self.repository:
                raise DuplicateMeeting(
                    f"meeting {command.meeting_id!r} is already booked in {command.rotation_id!r}"
                )
            host = rotation.book_meeting(
                meeting_id=command.meeting_id,
                host_id=command.host_id,
                record=command.record.model_dump(),
                starts_at=command.starts_at,
                at=now,
            )
            claim = MeetingClaim(
                rotation_id=command.rotation_id, meeting_id=command.meeting_id, host_id=host
            )
            return rotation, [claim], host
        else:  # pragma: no cover - the contract's union is exhaustive
            raise TypeError(f"unhandled command {type(command).__name__}")
        return rotation, [], None

    def _save(self, tracking: Tracking | None, *objs: Any) -> list[Any]:
        """Save events (and the tracking record, if any) in one transaction."""
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.collect_events(*objs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings


def _rejected(command: c.CommandBase, error: RotationError) -> c.CommandReply:
    return c.CommandReply(
        status="rejected",
        command_id=command.command_id,
        rotation_id=command.rotation_id,
        error=c.ErrorBody(code=error.code, message=str(error)),
    )


def _dump(reply: c.CommandReply) -> dict[str, Any]:
    return reply.model_dump(mode="json", exclude={"events": {"__all__": {"position"}}})
