"""Domain errors, each carrying the wire contract's error code."""

from __future__ import annotations

from typing import ClassVar


class RotationError(Exception):
    """A command the domain refuses; `code` is what clients see."""

    code: ClassVar[str] = "internal"


class UnknownRotation(RotationError):
    code = "unknown_rotation"


class RotationExists(RotationError):
    code = "rotation_exists"


class RotationDeleted(RotationError):
    code = "rotation_deleted"


class UnknownMember(RotationError):
    code = "unknown_member"


class AlreadyMember(RotationError):
    code = "already_member"


class IneligibleMember(RotationError):
    code = "ineligible_member"


class NoAvailableMember(RotationError):
    code = "no_available_member"


class DuplicateMeeting(RotationError):
    code = "duplicate_meeting"


class Forbidden(RotationError):
    code = "forbidden"


class Conflict(RotationError):
    code = "conflict"


class UnknownMeeting(RotationError):
    code = "unknown_meeting"


class MeetingCancelled(RotationError):
    code = "meeting_cancelled"


class HoldExists(RotationError):
    code = "hold_exists"


class UnknownHold(RotationError):
    code = "unknown_hold"


class HoldExpired(RotationError):
    code = "hold_expired"
