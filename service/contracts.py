"""Wire contract (version 2) as pydantic models: what arrives on and leaves the Kafka topics.

Every version 1 message is still valid and means what it meant: each field version 2 adds is
optional, and its default is version 1's behaviour.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_serializer,
    model_validator,
)

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]
# No control characters: a hold's key in the claims index starts with one (service/ledger.py).
MeetingId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
HoldSeconds = Annotated[int, Strict(), Field(ge=1, le=3600)]
DEFAULT_HOLD_SECONDS = 120

DEFAULT_WEIGHT = 100
DEFAULT_PRIORITY = 2
MAX_CAP = 1_000_000
MAX_CREDIT = 1_000_000

# Strict: a bool (True == 1) or a float (1.5, or even 2.0) is a schema error, never a number.
Weight = Annotated[int, Strict(), Field(ge=1, le=1000)]
Priority = Annotated[int, Strict(), Field(ge=0, le=4)]
CapMeetings = Annotated[int, Strict(), Field(ge=1, le=MAX_CAP)]
CreditMeetings = Annotated[int, Strict(), Field(ge=-MAX_CREDIT, le=MAX_CREDIT)]
CapPeriod = Literal["day", "week", "month"]

ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
NOT_ZONES = frozenset({"localtime", "posixrules"})
"""Files of the system's zone folder that load but name the machine's setting, not a zone."""


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


class Cap(WireModel):
    """At most `meetings` per calendar `per` (of the policy's time zone)."""

    meetings: CapMeetings
    per: CapPeriod


def time_zone_name(name: str) -> str:
    """An IANA zone name that loads; a path, the machine's `localtime` or a typo is refused."""
    if len(name) > 64 or not ZONE_NAME.fullmatch(name) or name in NOT_ZONES:
        raise ValueError(f"not an IANA time zone name: {name!r}")
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


TimeZone = Annotated[
    str,
    AfterValidator(time_zone_name),
    Field(description="an IANA time zone name", examples=["Europe/Oslo"]),
]


class Policy(WireModel):
    """A rotation's distribution policy; every default is version 1's behaviour."""

    on_join: Literal["reset", "level", "none"] = "reset"
    on_return: Literal["none", "level"] = "none"
    window: Literal["since_reset", "day", "week", "month"] = "since_reset"
    count_by: Literal["booked_at", "starts_at"] = "booked_at"
    time_zone: TimeZone = "UTC"
    cap: Cap | None = None
    no_shows_count: bool = True

    def as_dict(self) -> dict[str, Any]:
        """All seven keys, defaults filled: the plain form the domain stores in its events."""
        return self.model_dump(mode="json")


class CreateRotation(CommandBase):
    type: Literal["CreateRotation"]
    name: Name
    members: list[Identifier] = Field(default_factory=list, max_length=10_000)
    teams: list[Identifier] = Field(default_factory=list, max_length=1_000)
    policy: Policy | None = None


class SetPolicy(CommandBase):
    """Replaces the policy whole: a field left out takes its default, not its old value."""

    type: Literal["SetPolicy"]
    policy: Policy


class RenameRotation(CommandBase):
    type: Literal["RenameRotation"]
    name: Name


MEMBER_OPTIONS = ("weight", "priority", "cap")


class MemberCommand(CommandBase):
    """A member and its options, the same in AddMember and SetMemberOptions."""

    user_id: Identifier
    weight: Weight | None = None
    priority: Priority | None = None
    cap: Cap | None = None


class AddMember(MemberCommand):
    """An option left out (or null) takes its default: weight 100, priority 2, the policy's
    cap."""

    type: Literal["AddMember"]


def _options_schema(schema: dict[str, Any]) -> None:
    """What the validators below check, said in the JSON schema too (for the AsyncAPI file)."""
    properties = schema["properties"]
    for name in ("weight", "priority"):
        (number,) = [s for s in properties[name].pop("anyOf") if s.get("type") != "null"]
        properties[name].update(number)
        del properties[name]["default"]  # left out, it is unchanged: null is refused
    schema["anyOf"] = [{"required": [name]} for name in MEMBER_OPTIONS]


class SetMemberOptions(MemberCommand):
    """Only the options present change: `cap: null` present means "the policy's cap again"."""

    model_config = ConfigDict(json_schema_extra=_options_schema)

    type: Literal["SetMemberOptions"]

    @field_validator("weight", "priority")
    @classmethod
    def _not_null(cls, value: int | None) -> int:
        """Only a cap has a null to return to; a weight or priority null would be a guess."""
        if value is None:
            raise ValueError("may not be null (leave it out to keep it)")
        return value

    @model_validator(mode="after")
    def _something_to_set(self) -> SetMemberOptions:
        if not self.model_fields_set.intersection(MEMBER_OPTIONS):
            raise ValueError("needs at least one of weight, priority or cap")
        return self

    def options(self) -> dict[str, Any]:
        """The options present, as plain values (cap as a dict, or None for the policy's)."""
        present = self.model_dump(mode="json", include=set(MEMBER_OPTIONS))
        return {name: present[name] for name in MEMBER_OPTIONS if name in self.model_fields_set}


class CreditMember(CommandBase):
    """A manual credit (negative takes back): counts like meetings for fairness, not caps."""

    type: Literal["CreditMember"]
    user_id: Identifier
    meetings: CreditMeetings = Field(json_schema_extra={"not": {"const": 0}})
    reason: Reason

    @field_validator("meetings")
    @classmethod
    def _not_zero(cls, meetings: int) -> int:
        if meetings == 0:
            raise ValueError("must not be 0")
        return meetings


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
    meeting_id: MeetingId
    host_id: Identifier | None = None
    record: MeetingRecord
    starts_at: AwareDatetime | None = None
    preferred_host_id: Identifier | None = None
    hold_id: MeetingId | None = None


class HoldHost(CommandBase):
    """Decide as an auto-assigned booking would and hold that member for `seconds`."""

    type: Literal["HoldHost"]
    hold_id: MeetingId
    seconds: HoldSeconds = DEFAULT_HOLD_SECONDS
    exclude: list[Identifier] = Field(default_factory=list, max_length=10_000)
    starts_at: AwareDatetime | None = None
    preferred_host_id: Identifier | None = None


class ReleaseHold(CommandBase):
    type: Literal["ReleaseHold"]
    hold_id: MeetingId


class DeleteRotation(CommandBase):
    type: Literal["DeleteRotation"]


class CancelMeeting(CommandBase):
    type: Literal["CancelMeeting"]
    meeting_id: MeetingId
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class RescheduleMeeting(CommandBase):
    type: Literal["RescheduleMeeting"]
    meeting_id: MeetingId
    starts_at: AwareDatetime


class ReassignMeeting(CommandBase):
    """No `host_id`: the current suggestion among the others (the current host excluded)."""

    type: Literal["ReassignMeeting"]
    meeting_id: MeetingId
    host_id: Identifier | None = None


class MarkNoShow(CommandBase):
    type: Literal["MarkNoShow"]
    meeting_id: MeetingId


Command = Annotated[
    CreateRotation
    | RenameRotation
    | AddMember
    | RemoveMember
    | AddTeam
    | RemoveTeam
    | ToggleAvailability
    | BookMeeting
    | DeleteRotation
    | SetPolicy
    | SetMemberOptions
    | CreditMember
    | CancelMeeting
    | RescheduleMeeting
    | ReassignMeeting
    | MarkNoShow
    | HoldHost
    | ReleaseHold,
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
    hold_id: str | None = None  # HoldHost: the hold taken, and when it expires
    expires_at: datetime | None = None
    error: ErrorBody | None = None

    @model_serializer(mode="wrap")
    def _hold_fields_only_for_holds(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Replies to every other command keep the shape they had before holds."""
        data = handler(self)
        if isinstance(data, dict) and data.get("hold_id") is None:
            data.pop("hold_id", None)
            data.pop("expires_at", None)
        return data


class SuggestHost(WireModel):
    rotation_id: Identifier
    exclude: list[Identifier] = Field(default_factory=list, max_length=10_000)
    as_of: AwareDatetime | None = None
    starts_at: AwareDatetime | None = None
    preferred_host_id: Identifier | None = None


class Candidate(BaseModel):
    user_id: str
    meetings: int
    last_assigned_at: datetime | None
    available: bool
    joined_at: datetime
    eligible: bool = True
    why: str | None = None
    weight: int = DEFAULT_WEIGHT
    priority: int = DEFAULT_PRIORITY
    cap: Cap | None = None
    capped: bool = False
    credits: int = 0
    held: int = 0


class Fairness(BaseModel):
    """How evenly the available, eligible members share meetings + credits (a figure for
    people: no decision reads it)."""

    # `deviation` is the contract's one float: worked out exactly (a Fraction) by the domain
    # and converted only here, at the edge.
    meetings: int = Field(description="meetings + credits of the available, eligible members")
    spread: int | None = Field(
        description="max - min of their meetings + credits; null with fewer than two"
    )
    deviation: float = Field(
        description="sum of |meetings + credits - total * weight / sum of weights|, divided "
        "by the total (0 when the total is 0)"
    )


class SuggestionReply(BaseModel):
    rotation_id: str | None = None
    host_id: str | None = None
    reason: str | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    position: int | None = None
    fairness: Fairness | None = None
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
