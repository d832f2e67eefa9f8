"""Wire contract v1 as pydantic models: what arrives on and leaves the Kafka topics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


DIRECTORY_RECEIPT_PREFIX = "directory:"


class WireModel(BaseModel):
    """Strict about what clients send: unknown fields are schema errors, not silent typos."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandBase(WireModel):
    command_id: Identifier
    rotation_id: Identifier
    actor: Identifier
    issued_at: AwareDatetime | None = None

    @field_validator("command_id")
    @classmethod
    def _not_a_directory_key(cls, command_id: str) -> str:
        """Directory messages keep their receipts as `directory:<message id>`."""
        if command_id.startswith(DIRECTORY_RECEIPT_PREFIX):
            raise ValueError(f"may not start with {DIRECTORY_RECEIPT_PREFIX!r}")
        return command_id


class CreateRotation(CommandBase):
    type: Literal["CreateRotation"]
    name: Name
    members: list[Identifier] = Field(default_factory=list, max_length=10_000)
    teams: list[Identifier] = Field(default_factory=list, max_length=1_000)


class RenameRotation(CommandBase):
    type: Literal["RenameRotation"]
    name: Name


class AddMember(CommandBase):
    type: Literal["AddMember"]
    user_id: Identifier


class RemoveMember(CommandBase):
    type: Literal["RemoveMember"]
    user_id: Identifier


class AddTeam(CommandBase):
    type: Literal["AddTeam"]
    team_id: Identifier


class RemoveTeam(CommandBase):
    type: Literal["RemoveTeam"]
    team_id: Identifier


class ToggleAvailability(CommandBase):
    type: Literal["ToggleAvailability"]
    user_id: Identifier
    available: bool


class MeetingRecord(WireModel):
    type: Literal["contact", "company", "deal", "ticket"]
    id: Identifier


class BookMeeting(CommandBase):
    type: Literal["BookMeeting"]
    meeting_id: Identifier
    host_id: Identifier | None = None
    record: MeetingRecord
    starts_at: AwareDatetime | None = None


class DeleteRotation(CommandBase):
    type: Literal["DeleteRotation"]


Command = Annotated[
    CreateRotation
    | RenameRotation
    | AddMember
    | RemoveMember
    | AddTeam
    | RemoveTeam
    | ToggleAvailability
    | BookMeeting
    | DeleteRotation,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


Permission = Literal["manage_rotations", "schedule_for_others"]


class DirectoryMessage(WireModel):
    message_id: Identifier


class UserUpdated(DirectoryMessage):
    type: Literal["UserUpdated"]
    user_id: Identifier
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    seat: bool
    calendar_connected: bool
    calendar_sync: bool
    permissions: list[Permission] = Field(default_factory=list, max_length=10)


class UserDeactivated(DirectoryMessage):
    type: Literal["UserDeactivated"]
    user_id: Identifier


class TeamUpdated(DirectoryMessage):
    type: Literal["TeamUpdated"]
    team_id: Identifier
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    members: list[Identifier] = Field(default_factory=list, max_length=10_000)


DirectoryFact = Annotated[UserUpdated | UserDeactivated | TeamUpdated, Field(discriminator="type")]
DIRECTORY_ADAPTER: TypeAdapter[DirectoryFact] = TypeAdapter(DirectoryFact)


class ErrorBody(BaseModel):
    code: str
    message: str


class EventRef(BaseModel):
    type: str
    position: int = 0


class CommandReply(BaseModel):
    status: Literal["accepted", "rejected"]
    command_id: str | None = None
    rotation_id: str | None = None
    version: int | None = None
    events: list[EventRef] = Field(default_factory=list)
    host_id: str | None = None
    error: ErrorBody | None = None


class SuggestHost(WireModel):
    rotation_id: Identifier
    exclude: list[Identifier] = Field(default_factory=list, max_length=10_000)
    as_of: AwareDatetime | None = None


class Candidate(BaseModel):
    user_id: str
    meetings: int
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    eligible: bool = True
    why: str | None = None


class SuggestionReply(BaseModel):
    rotation_id: str | None = None
    host_id: str | None = None
    reason: str | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    position: int | None = None
    error: ErrorBody | None = None


class DeadLetter(BaseModel):
    """What lands on the dead-letter topic: enough to replay or diagnose the message."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    error: ErrorBody
    original: str = Field(description="the original bytes, base64-encoded")
    original_size: int = Field(description="size of the original message in bytes")
    original_truncated: bool = Field(
        False, description="true when only the first bytes are kept (the letter must fit Kafka)"
    )
    headers: dict[str, str] = Field(default_factory=dict)


def describe_validation_error(errors: list[Any]) -> str:
    """One line naming the failing fields, for `invalid_message` replies."""
    parts = []
    for error in errors[:5]:
        location = ".".join(str(p) for p in error.get("loc", ())) or "message"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)
