"""The eventsourcing Application: the store, its caches, and the unit of work commands are
decided and saved in (each by its handler, `service.handlers`), exactly once."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

import orjson
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    LRUCache,
    ProcessingEvent,
    Repository,
)
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    ProcessRecorder,
    Tracking,
    Transcoder,
)
from eventsourcing.utils import get_topic

from events.directory import (
    DIRECTORY_MODE_ID,
    OPEN,
    REQUIRED,
    DirectoryMode,
    DirectoryUser,
    Team,
    ineligibility,
    team_uuid,
)
from events.errors import (
    Conflict,
    RotationError,
    UnknownRotation,
)
from events.rotation import Rotation, rotation_uuid
from projections.ports import SavedListener
from projections.positions import positions_of
from service import contracts as c
from service.directory_cache import DirectoryCache
from service.directory_handlers import DIRECTORY_HANDLERS
from service.handlers import handle
from service.ledger import Claim, Ledger, LedgerSeal, MeetingMark, Receipt, ledger_recorder_class
from service.postgres_binary import send_events_in_binary
from service.store_changes import StoreChanges
from service.transcoder import OrjsonTranscoder
from service.unit_of_work import RetryAlone, UnitOfWork

if TYPE_CHECKING:
    from service.tracing import EventCarriers

log = logging.getLogger("rotations.application")

Clock = Callable[[], datetime]


DIRECTORY_ATTEMPTS = 12  # about 3 s of backing off at most
LEGACY_SCAN_PAGE = 500  # events read at once looking for a meeting booked before the index


def utc_now() -> datetime:
    return datetime.now(UTC)


class RotationsApplication(Application[UUID]):
    """Commands in, events out; every save can carry the tracking of the message it handles."""

    name = "Rotations"
    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "10000",
        # Kept fresh from the notification log instead (`service.store_changes`): a read
        # per rotation per batch to fast-forward was a database round trip each.
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "COMPRESSOR_TOPIC": "",
    }
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Rotation: 200}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock = utc_now,
        conflict_retries: int = 5,
        directory: str = "open",
    ) -> None:
        super().__init__(env)
        self.recorder: ProcessRecorder
        self.clock = clock
        self.conflict_retries = conflict_retries
        # "required": the directory decides eligibility and permissions; "open": all allowed.
        self.directory_required = directory == "required"
        self.directory_cache = DirectoryCache(self._load_user)
        # Reads straight from the store (no cache), for everything but the command thread.
        self.store_reader = Repository[UUID](self.events, snapshot_store=self.snapshots)
        # What others stored drops this application's cached copies (it owns both caches).
        self.changes = StoreChanges(self.recorder, self._forget)
        # Receipts and claims under the events' cipher, when the store is encrypted.
        self.seal = LedgerSeal(self.mapper.cipher)
        # Told of every transaction this application stored, with the aggregates that made
        # it (the read model applies them without reading the events back).
        self.saved_listeners: list[SavedListener] = []
        # Tracing on: which command's trace each new event carries (`service.tracing`).
        self.event_carriers: EventCarriers | None = None

    def on_saved(self, listener: SavedListener) -> None:
        """`listener` is told of every transaction this application stores, in order of
        storing per thread (a follower checks positions; see `RotationProjector`)."""
        self.saved_listeners.append(listener)

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder, so events and tracking records commit together."""
        factory = self.factory
        factory.env[factory.PROCESS_RECORDER_TOPIC] = get_topic(ledger_recorder_class(factory))
        recorder = factory.process_recorder()
        send_events_in_binary(recorder)
        return recorder

    @property
    def ledger(self) -> Ledger:
        """Receipts and claims, stored as rows with the events (`service.ledger`)."""
        return self.recorder  # type: ignore[return-value]

    # -- reads ---------------------------------------------------------------------------

    def record_directory_mode(self) -> bool:
        """Record the directory mode this application decides under, when it is not the
        recorded one; returns whether it was stored. Only a deciding service calls this:
        audits re-derive each decision with the mode then in force."""
        mode = REQUIRED if self.directory_required else OPEN
        try:
            recorded: Aggregate = self.repository.get(DIRECTORY_MODE_ID)
        except AggregateNotFoundError:
            self._save(None, DirectoryMode(mode=mode))
            return True
        assert isinstance(recorded, DirectoryMode)
        if recorded.mode == mode:
            return False
        recorded.change(mode)
        self._save(None, recorded)
        return True

    def get_rotation(self, rotation_id: str) -> Rotation:
        """The rotation as stored now (read from the store, for any thread)."""
        try:
            rotation: Aggregate = self.store_reader.get(rotation_uuid(rotation_id))
        except AggregateNotFoundError:
            raise UnknownRotation(f"no rotation {rotation_id!r}") from None
        assert isinstance(rotation, Rotation)
        return rotation

    def find_user(self, user_id: str) -> DirectoryUser | None:
        """The user as last seen (read only: change users through `record_directory`)."""
        return self.directory_cache.get(user_id)

    def _load_user(self, key: UUID) -> DirectoryUser | None:
        try:
            user: Aggregate = self.store_reader.get(key)
        except AggregateNotFoundError:
            return None
        assert isinstance(user, DirectoryUser)
        return user

    def refresh_caches(self) -> None:
        """Drop cached copies of what other writers stored since (one query if nothing)."""
        self.changes.follow()

    def _forget(self, originator_ids: Iterable[UUID] | None) -> None:
        """Drop cached aggregates and users that changed in the store (None: everything)."""
        cache = self.repository.cache
        if originator_ids is None:
            self.directory_cache.clear()
            if isinstance(cache, LRUCache):
                # A new cache: the library's `LRUCache.clear` keeps its entries and its full
                # flag (then every put of a new key fails once it was full).
                self.repository.cache = LRUCache(maxsize=cache.maxsize)
            return
        keys = list(originator_ids)
        self.directory_cache.invalidate(keys)
        if cache is not None:
            for key in keys:
                with contextlib.suppress(KeyError):
                    cache.get(key, evict=True)

    def ineligible_users(self, user_ids: Sequence[str]) -> dict[str, str]:
        """Why each of these users cannot host now (absent when they can)."""
        if not self.directory_required:
            return {}
        found: dict[str, str] = {}
        for user_id in user_ids:
            why = ineligibility(self.find_user(user_id))
            if why is not None:
                found[user_id] = why
        return found

    def find_receipt(self, command_id: str) -> c.CommandReply | None:
        outcome = self._receipt_outcome(command_id)
        return None if outcome is None else c.CommandReply.model_validate(outcome)

    def _receipt_outcome(self, command_id: str) -> dict[str, Any] | None:
        outcome = self.ledger.select_receipt(command_id)
        return None if outcome is None else dict(orjson.loads(self.seal.outcome(outcome)))

    def is_tracked(self, tracking: Tracking) -> bool:
        """Was the message at this position already handled (its effects stored)?"""
        last = self.recorder.max_tracking_id(tracking.application_name)
        return last is not None and last >= tracking.notification_id

    # -- what deciding reads (the unit of work's `WriteStore`) ---------------------------

    def load(self, key: UUID) -> Aggregate | None:
        """A private copy of the cached aggregate: may be stale, then the save conflicts.

        A copy read while the log told of changes (another thread following it) may be
        older than they are: it is dropped from the cache and read again."""
        for _attempt in range(3):
            generation = self.changes.generation
            found = self._cached(key)
            if generation == self.changes.generation:
                break
            self._forget([key])
        return found

    def _cached(self, key: UUID) -> Aggregate | None:
        try:
            aggregate: Aggregate = self.repository.get(key)
        except AggregateNotFoundError:
            return None
        return aggregate

    def exists(self, key: UUID) -> bool:
        return key in self.repository

    def find_team(self, team_id: str) -> Team | None:
        try:
            team: Team = self.store_reader.get(team_uuid(team_id))
        except AggregateNotFoundError:
            return None
        return team

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool:
        return self.ledger.has_claim(*self.seal.claim_key(rotation_id, meeting_id))

    def find_meeting_event(self, rotation_id: str, meeting_id: str) -> Rotation.Event | None:
        """The meeting's latest stored event (it carries the meeting's facts), or None for a
        meeting the rotation never booked. Read from the store, for any thread.

        The ledger's meeting index gives the event's version, and that one event is read:
        two primary-key reads, however long the rotation's history. Only a meeting booked
        before the index (its claim has no version) is looked for in the history instead,
        newest event first, until one names the meeting; its next event marks it.
        """
        key = self.seal.claim_key(rotation_id, meeting_id)
        originator_id = rotation_uuid(rotation_id)
        version = self.ledger.meeting_version(*key)
        if version is not None:
            for found in self.events.get(originator_id, gt=version - 1, lte=version):
                assert isinstance(found, Rotation.Event)
                return found
            raise LookupError(f"meeting {meeting_id!r} of {rotation_id!r}: no event {version}")
        if not self.ledger.has_claim(*key):
            return None
        log.info(
            "meeting %r of %r was booked before the meeting index: reading the history",
            meeting_id,
            rotation_id,
        )
        return self._meeting_event_in_history(originator_id, meeting_id)

    def _meeting_event_in_history(
        self, originator_id: UUID, meeting_id: str
    ) -> Rotation.Event | None:
        """The newest event naming the meeting, reading back a page of events at a time."""
        below: int | None = None
        while True:
            page = list(
                self.events.get(originator_id, lte=below, desc=True, limit=LEGACY_SCAN_PAGE)
            )
            for found in page:
                if getattr(found, "meeting_id", None) == meeting_id:
                    assert isinstance(found, Rotation.Event)
                    return found
            if len(page) < LEGACY_SCAN_PAGE:
                return None
            below = page[-1].originator_version - 1

    # -- commands ------------------------------------------------------------------------

    def execute(self, command: c.CommandBase, tracking: Tracking | None = None) -> c.CommandReply:
        """Handle one command exactly once; a known command id gets its original reply."""
        self.changes.follow()
        for _attempt in range(self.conflict_retries + 1):
            previous = self._receipt_outcome(command.command_id)
            if previous is not None:
                if previous.get("actor", command.actor) != command.actor:
                    # An idempotency key is its issuer's: another actor neither reads the
                    # reply it keeps nor is answered as if it had sent the command.
                    used = Conflict(f"command id {command.command_id!r} is another actor's")
                    return _rejected(command, used)
                return self.reply_for_receipt(c.CommandReply.model_validate(previous))
            try:
                return self._decide_and_save([(command, tracking)], check_store=True)[0]
            except IntegrityError:
                if tracking is not None and self.is_tracked(tracking):
                    # A handled position always has a receipt, so this is an offset reused
                    # by a recreated topic: handle the command, keep the later position.
                    log.warning("position %s already tracked; offsets were reused", tracking)
                    tracking = None
                    continue
                log.info("optimistic concurrency conflict on %s, retrying", command.rotation_id)
        return _rejected(command, Conflict(f"lost {self.conflict_retries + 1} races"))

    def execute_batch(
        self, items: Sequence[tuple[c.CommandBase, Tracking | None]]
    ) -> list[c.CommandReply]:
        """Handle a fetched batch in one transaction, with the last tracking record of each
        source (partition) in it.

        Decisions are optimistic: duplicates (command ids, meeting ids, existing rotations) and
        races surface as an integrity error on save, and then each command runs on its own.
        """
        if len(items) > 1:
            self.changes.follow()
            try:
                return self._decide_and_save(items, check_store=False)
            except (IntegrityError, RetryAlone):
                log.info("batch of %d fell back to one-by-one handling", len(items))
        return [self.execute(command, tracking) for command, tracking in items]

    def _decide_and_save(
        self, items: Sequence[tuple[c.CommandBase, Tracking | None]], check_store: bool
    ) -> list[c.CommandReply]:
        work = UnitOfWork(self, check_store)
        decisions = [self._decide(command, work) for command, _ in items]
        # The last position of each source (e.g. each partition of a fetched batch).
        last = list({t.application_name: t for _, t in items if t is not None}.values())
        tracking, more_tracking = (last[0], last[1:]) if last else (None, [])
        try:
            recordings = self._save(
                tracking,
                *work.aggregates.values(),
                receipts=[self.seal.receipt(r) for r in work.receipts],
                claims=[self.seal.claim(c) for c in work.claims.values()],
                marks=[self.seal.mark(m) for m in work.marks.values()],
                more_tracking=more_tracking,
            )
        except IntegrityError:
            # A lost race: what this batch read may be stale, so read it afresh next time.
            self._forget(list(work.aggregates))
            raise
        positions = {
            (r.domain_event.originator_id, r.domain_event.originator_version): r.notification.id
            for r in recordings
        }
        return [decision.reply_with(positions) for decision in decisions]

    def _decide(self, command: c.CommandBase, work: UnitOfWork) -> _Decision:
        """Decide one command in a scope of its own: kept if accepted, dropped if not."""
        scope = work.begin(command.command_id, self.clock())
        try:
            host_id = handle(scope, command, self.directory_required)
        except RotationError as error:
            reply = _rejected(command, error)
            work.receipts.append(Receipt(command.command_id, _dump(reply, command.actor)))
            return _Decision(reply, None, [])
        work.keep(scope)
        new_events = scope.new_events()
        rotation = scope.subject
        if self.event_carriers is not None:
            self.event_carriers.decided(
                command.command_id,
                rotation.id if rotation is not None else None,
                [e.originator_version for e in new_events],
            )
        reply = c.CommandReply(
            status="accepted",
            command_id=command.command_id,
            rotation_id=command.rotation_id,
            version=rotation.version if rotation is not None else None,
            events=[c.EventRef(type=type(e).__name__) for e in new_events],
            host_id=host_id,
            **_hold_fields(new_events),
        )
        work.receipts.append(Receipt(command.command_id, _dump(reply, command.actor)))
        return _Decision(
            reply,
            rotation.id if rotation is not None else None,
            [e.originator_version for e in new_events],
        )

    def reply_for_receipt(self, reply: c.CommandReply) -> c.CommandReply:
        """Fill in the stored events' positions of a reply read back from a receipt."""
        if reply.status != "accepted" or not reply.events or reply.version is None:
            return reply
        first = reply.version - len(reply.events) + 1
        found = positions_of(
            self.recorder, rotation_uuid(reply.rotation_id or ""), first, reply.version
        )
        events = [
            c.EventRef(type=e.type, position=p) for e, p in zip(reply.events, found, strict=False)
        ]
        return reply.model_copy(update={"events": events})

    # -- directory -----------------------------------------------------------------------

    def record_directory(
        self,
        fact: c.UserUpdated | c.UserDeactivated | c.TeamUpdated,
        tracking: Tracking | None = None,
    ) -> c.CommandReply:
        """Store a directory fact once (by message id); team changes reach their rotations."""
        receipt_key = f"{c.DIRECTORY_RECEIPT_PREFIX}{fact.message_id}"
        # A team change writes rotations that the command consumer is booking into at the
        # same time: under load it can lose several races in a row, so it backs off (with
        # jitter) between tries instead of retrying at once (it runs on a worker thread).
        attempts = max(self.conflict_retries + 1, DIRECTORY_ATTEMPTS)
        for attempt in range(attempts):
            previous = self._receipt_outcome(receipt_key)
            if previous is not None:
                return self._directory_reply_from(previous)
            try:
                return self._record_directory(fact, receipt_key, tracking)
            except IntegrityError:
                if tracking is not None and self.is_tracked(tracking):
                    tracking = None
                log.info("conflict recording %s, retrying", fact.message_id)
                time.sleep(random.uniform(0, min(0.005 * 2**attempt, 0.5)))
        return c.CommandReply(
            status="rejected",
            command_id=fact.message_id,
            error=c.ErrorBody(code="conflict", message="lost every retry"),
        )

    def _record_directory(
        self,
        fact: c.UserUpdated | c.UserDeactivated | c.TeamUpdated,
        receipt_key: str,
        tracking: Tracking | None,
    ) -> c.CommandReply:
        # Read from the store, not the command thread's cache: the directory consumer is
        # another thread, and a fact reaches rotations other instances decide for.
        work = UnitOfWork(StoreReads(self), check_store=True)
        scope = work.begin(receipt_key, self.clock())
        DIRECTORY_HANDLERS[type(fact)](scope, fact)
        work.keep(scope)
        pending = scope.pending()
        reply = c.CommandReply(
            status="accepted",
            command_id=fact.message_id,
            events=[c.EventRef(type=type(e).__name__) for _, e in pending],
        )
        # Which stored events the reply names, so a repeated message gets their positions.
        refs = [[str(key), e.originator_version] for key, e in pending]
        outcome = orjson.dumps({**orjson.loads(_dump(reply)), "refs": refs})
        recordings = self._save(
            tracking,
            *work.aggregates.values(),
            receipts=[self.seal.receipt(Receipt(receipt_key, outcome))],
        )
        self.directory_cache.invalidate(work.aggregates)
        reply.events = [
            c.EventRef(type=type(r.domain_event).__name__, position=r.notification.id)
            for r in recordings
        ]
        return reply

    def _directory_reply_from(self, outcome: dict[str, Any]) -> c.CommandReply:
        reply = c.CommandReply.model_validate(outcome)
        positions = [
            positions_of(self.recorder, UUID(obj_id), version, version)[0]
            for obj_id, version in outcome.get("refs", [])
        ]
        events = [
            c.EventRef(type=e.type, position=p)
            for e, p in zip(reply.events, positions, strict=True)
        ]
        return reply.model_copy(update={"events": events})

    def _save(
        self,
        tracking: Tracking | None,
        *objs: Any,
        receipts: Sequence[Receipt] = (),
        claims: Sequence[Claim] = (),
        marks: Sequence[MeetingMark] = (),
        more_tracking: Sequence[Tracking] = (),
    ) -> list[Any]:
        """Save events, tracking records, receipts, claims and meeting marks in one
        transaction."""
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.saved_kwargs.update(
            receipts=receipts, claims=claims, marks=marks, more_tracking=more_tracking
        )
        # What `processing.collect_events(*objs)` does, without its two runtime-checked
        # Protocol isinstance calls per aggregate (slow on Python 3.11: a tenth of a command).
        for obj in objs:
            processing.events.extend(obj.collect_events())
            processing.aggregates[obj.id] = obj
        recordings = self._record(processing)
        self.changes.saved([r.notification.id for r in recordings])
        self._snapshot_saved(processing)
        self._notify(recordings)
        for listener in self.saved_listeners:
            try:
                listener(recordings, processing.aggregates)
            except Exception:  # stored already: a follower reads it from the log instead
                log.exception("a follower of the saves failed; it will read the log")
        return recordings

    def _snapshot_saved(self, processing: ProcessingEvent[UUID]) -> None:
        """Snapshot an aggregate whose new events crossed its interval, as it is in memory.

        The library's `_take_snapshots` rebuilds it from the store first (a read and a
        decode of up to an interval's events). What was just saved is that state already;
        with several new events it is a version or two past the boundary, which is as good.
        """
        if self.snapshots is None:
            return
        due: dict[UUID, Any] = {}
        for event in processing.events:
            aggregate = processing.aggregates.get(event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is not None and event.originator_version % interval == 0:
                due[event.originator_id] = aggregate
        if due:
            self.snapshots.put([Snapshot.take(aggregate) for aggregate in due.values()])


@dataclass
class _Decision:
    """A reply waiting for the global positions its events get when saved."""

    reply: c.CommandReply
    rotation: UUID | None
    versions: list[int]

    def reply_with(self, positions: dict[tuple[UUID, int], int]) -> c.CommandReply:
        if self.rotation is None:
            return self.reply
        events = [
            c.EventRef(type=ref.type, position=positions[(self.rotation, version)])
            for ref, version in zip(self.reply.events, self.versions, strict=True)
        ]
        return self.reply.model_copy(update={"events": events})


def _rejected(command: c.CommandBase, error: RotationError) -> c.CommandReply:
    return c.CommandReply(
        status="rejected",
        command_id=command.command_id,
        rotation_id=command.rotation_id,
        error=c.ErrorBody(code=error.code, message=str(error)),
    )


def _hold_fields(new_events: Sequence[Rotation.Event]) -> dict[str, Any]:
    """A hold taken: its id and expiry go in the reply."""
    for e in new_events:
        if isinstance(e, Rotation.HostHeld):
            return {"hold_id": e.hold_id, "expires_at": e.expires_at}
    return {}


def _dump(reply: c.CommandReply, actor: str | None = None) -> bytes:
    """A reply as its receipt keeps it (with the command's actor, whose id it is): the events'
    positions are looked up when read."""
    kept = reply.model_dump(mode="json", exclude=_POSITIONS)
    if actor is not None:
        kept["actor"] = actor
    return orjson.dumps(kept)


_POSITIONS: Any = {"events": {"__all__": {"position"}}}


class StoreReads:
    """The application's reads for deciding, each from the store itself (no cache)."""

    def __init__(self, app: RotationsApplication) -> None:
        self.app = app
        self.directory_required = app.directory_required

    def load(self, key: UUID) -> Aggregate | None:
        try:
            aggregate: Aggregate = self.app.store_reader.get(key)
        except AggregateNotFoundError:
            return None
        return aggregate

    def exists(self, key: UUID) -> bool:
        return self.load(key) is not None

    def find_user(self, user_id: str) -> DirectoryUser | None:
        return self.app.find_user(user_id)

    def find_team(self, team_id: str) -> Team | None:
        return self.app.find_team(team_id)

    def has_claim(self, rotation_id: str, meeting_id: str) -> bool:
        return self.app.has_claim(rotation_id, meeting_id)

    def find_meeting_event(self, rotation_id: str, meeting_id: str) -> Rotation.Event | None:
        return self.app.find_meeting_event(rotation_id, meeting_id)  # from the store already

    def ineligible_users(self, user_ids: list[str]) -> dict[str, str]:
        return self.app.ineligible_users(user_ids)
