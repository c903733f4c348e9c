"""The state store: the one task that writes codexd's state to disk, and the state it committed.

Every other task hands its changes (events, record changes, child output) to the store through
one bounded ``trio`` memory channel. The store task (:meth:`Store.run`) takes what is waiting, up
to a batch, numbers the events, evaluates the record changes in order, and writes the batch in
ONE SQLite transaction (in a worker thread), then appends the same event lines to
``events.jsonl``. Only after the commit does anything change in memory: the records, the recent
ring, the subscribers and the writers waiting for their acknowledgement. What a caller or a
subscriber saw is on disk; what did not reach the disk was never seen.

A record change is either the new record or an :class:`Update` whose function gets the latest
value (committed, or changed earlier in the same batch): read-modify-write changes from
different tasks compose in submission order without anyone reading a stale record.

A failed commit is retried with backoff. If it keeps failing (disk full, I/O error) the store
becomes *degraded*: the batch's writers get :class:`~codexd._errors.StoreError`, new writes are
refused at once, streamed events are dropped and counted, and a probe retries with backoff;
once a write succeeds again the store records ``store.recovered`` and serves normally. No
``seq`` is skipped: numbers are given to a batch from the last committed one.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import trio

from . import _statedir, _time
from ._config import Durability
from ._database import Database, ForeignDatabase, LoadProblem
from ._errors import StoreError
from ._records import (
    Approval,
    ChildState,
    Event,
    EventLevel,
    Run,
    Session,
    StoreHealth,
    from_wire,
)
from ._store_batch import Change, Item, Prepared, StoredRecord, Update, patch, prepare
from ._store_events import EventSpec
from ._store_writer import StoreFiles, log, open_state
from ._subscriptions import EventFilter, Subscription

__all__ = [
    "MAX_BATCH",
    "Change",
    "EventSpec",
    "Store",
    "StoredRecord",
    "Update",
    "new_id",
    "patch",
]

#: Items taken from the channel for one transaction at most.
MAX_BATCH = 2048
#: Pauses between the attempts of a failing commit before the store becomes degraded.
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0)
#: The probe of a degraded store backs off between these bounds.
PROBE_MIN_S, PROBE_MAX_S = 0.5, 10.0


class Store:
    """codexd's committed state plus the persistence task that writes changes to disk.

    Open it with :meth:`open`, run :meth:`run` in a nursery, and call :meth:`close_input` then
    wait for :meth:`run` to return to flush everything on shutdown. Reads are memory only and
    show committed state.
    """

    def __init__(
        self,
        state_dir: Path,
        db: Database,
        lock: _statedir.StateDirLock,
        *,
        recent_limit: int,
        log_max_bytes: int,
        log_backups: int,
        channel_size: int = 4096,
    ) -> None:
        self.state_dir = state_dir
        self._db = db
        self._files = StoreFiles(
            state_dir, db, lock, log_max_bytes=log_max_bytes, log_backups=log_backups
        )
        loaded = db.load(recent_limit)
        #: Rows and keys that could not be read at open (quarantined); the daemon reports them.
        self.load_problems: list[LoadProblem] = loaded.problems
        meta = dict(loaded.meta)
        self.daemon_id: str = str(meta.get("daemon_id") or f"codexd-{secrets.token_hex(6)}")
        self._pending_meta: dict[str, Any] = {}
        self.meta = meta
        self.child_state: ChildState = ChildState()
        if "child" in meta:
            try:
                self.child_state = from_wire(ChildState, meta["child"])
            except Exception as exc:  # a bad meta value must not prevent a start
                self.load_problems.append(LoadProblem("meta", "child", repr(exc)))
        owned = meta.get("owned_processes")
        self._owned: dict[str, Any] = dict(owned) if isinstance(owned, dict) else {}
        self.sessions: dict[str, Session] = {s.session_id: s for s in loaded.sessions}
        self.runs: dict[str, Run] = {r.run_id: r for r in loaded.runs}
        self.approvals: dict[str, Approval] = {a.approval_id: a for a in loaded.approvals}
        self.last_seq = loaded.last_seq
        self.recent_events: deque[Event] = deque(loaded.recent_events, maxlen=recent_limit)
        self._send, self._recv = trio.open_memory_channel[Item](channel_size)
        self._subscribers: set[Subscription] = set()
        self._input_closed = False
        self._reopen_requested = False
        self._in_flight: list[Item] = []
        self.fault: StoreHealth | None = None
        self._degraded_at = 0.0
        self._degraded = trio.Event()
        self.write_failures = 0
        self.dropped_events = 0
        self.finished = trio.Event()

    @classmethod
    async def open(
        cls,
        state_dir: Path,
        *,
        recent_limit: int = 200,
        log_max_bytes: int = 10 * 1024 * 1024,
        log_backups: int = 3,
        durability: Durability = "full",
    ) -> Store:
        """Claim the state directory (one daemon per dir) and open or create its database.

        Raises :class:`~codexd._errors.StateDirInUse` when another daemon holds it, and
        :class:`~codexd._errors.StoreError` naming the problem when the directory or its
        ``state.sqlite3`` cannot be used (not a directory, not writable, empty or foreign).
        """

        def build(db: Database, lock: _statedir.StateDirLock) -> Store:
            return cls(
                state_dir,
                db,
                lock,
                recent_limit=recent_limit,
                log_max_bytes=log_max_bytes,
                log_backups=log_backups,
            )

        synchronous = "FULL" if durability == "full" else "NORMAL"
        return await trio.to_thread.run_sync(open_state, state_dir, build, synchronous)

    # ---- reads (memory only, committed state) ----------------------------------------------

    def get_session(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def list_sessions(self) -> list[Session]:
        return list(self.sessions.values())

    def get_run(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def list_runs(self) -> list[Run]:
        return list(self.runs.values())

    def get_approval(self, approval_id: str) -> Approval | None:
        return self.approvals.get(approval_id)

    def list_approvals(self) -> list[Approval]:
        return list(self.approvals.values())

    def health(self) -> StoreHealth:
        """``ok`` or ``degraded`` (with the error and since when), and the loss counters."""
        base = self.fault or StoreHealth()
        return attrs.evolve(
            base,
            dropped_events=self.dropped_events,
            write_failures=self.write_failures,
            log_failures=self.log_failures,
        )

    @property
    def log_failures(self) -> int:
        """Appends to ``events.jsonl`` or a child log that failed (their commits stood)."""
        return self._files.log_failures

    async def wait(self, done: trio.Event) -> None:
        """Wait for ``done`` (set after a commit); raise StoreError if the store degrades first.

        A waiter on something that must be recorded (a turn's end, a run's end) learns at once
        that it cannot be, instead of waiting for a commit that will not come.
        """
        if done.is_set():
            return
        async with trio.open_nursery() as nursery:

            async def on_degraded() -> None:
                await self._degraded.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_degraded)
            await done.wait()
            nursery.cancel_scope.cancel()
        if not done.is_set():
            raise StoreError(self._refusal())

    async def query_events(
        self,
        *,
        after: int = 0,
        up_to: int | None = None,
        event_filter: EventFilter | None = None,
        limit: int = 1000,
        max_bytes: int | None = None,
    ) -> list[Event]:
        """Stored events with ``after < seq <= up_to`` that match the filter, oldest first.

        ``max_bytes`` ends the page early once its JSON is that large (one event at least).
        """
        f = event_filter or EventFilter()
        try:
            return await trio.to_thread.run_sync(
                lambda: self._db.query_events(
                    after=after,
                    up_to=up_to,
                    type_prefix=f.type_prefix,
                    session_id=f.session_id,
                    run_id=f.run_id,
                    limit=limit,
                    max_bytes=max_bytes,
                )
            )
        except (ForeignDatabase, sqlite3.Error) as exc:
            raise StoreError(f"cannot read events: {exc}") from None

    # ---- owned processes (for the successor to reap if this daemon is killed) ----------------

    def owned_processes(self) -> dict[str, Any]:
        """pid -> what a previous or this daemon recorded about a child it owns."""
        return dict(self._owned)

    def register_owned(self, pid: int, info: Mapping[str, Any]) -> None:
        """Record a child this daemon owns; persisted with the next batch."""
        self._owned[str(pid)] = dict(info)
        self._pending_meta["owned_processes"] = dict(self._owned)

    def unregister_owned(self, *pids: int | str) -> None:
        """Forget children that have been waited for (or reaped)."""
        if any(self._owned.pop(str(pid), None) is not None for pid in pids):
            self._pending_meta["owned_processes"] = dict(self._owned)

    # ---- writes ----------------------------------------------------------------------------

    def _refusal(self) -> str:
        if self.fault is not None:
            return (
                f"the state store is degraded and refuses writes: {self.fault.error}"
                " (see daemon/status; it recovers by itself once the disk is writable)"
            )
        return "the state store is closed; codexd is shutting down"

    async def _submit(self, item: Item) -> None:
        if self._input_closed or self.fault is not None:
            self._refuse(item)
            return
        try:
            # The fast path: no checkpoint (this runs once per streamed event).
            self._send.send_nowait(item)
        except trio.WouldBlock:
            # The channel is full: wait (back-pressure). Order is kept: while senders are
            # parked the buffer stays full, so a later send_nowait queues behind them.
            try:
                await self._send.send(item)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._refuse(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._refuse(item)

    def _refuse(self, item: Item) -> None:
        """A write the store will not take: a streamed one is counted, a waited-for one raises."""
        if item.ack is None:
            self.dropped_events += len(item.events)
            return
        raise StoreError(self._refusal())

    async def _submit_and_wait(self, item: Item) -> None:
        item.ack = trio.Event()
        await self._submit(item)
        await item.ack.wait()
        if item.error is not None:
            error = item.error
            if isinstance(error, StoreError):
                raise StoreError(error.message) from None
            raise StoreError(f"could not persist state: {error}") from error

    async def record(
        self,
        type: str,
        message: str,
        *,
        level: EventLevel = "info",
        detail: dict[str, Any] | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        records: Sequence[Change] = (),
    ) -> Event:
        """Persist an event and record changes in ONE transaction; wait until they are on disk.

        Returns the stored :class:`Event` with its ``seq``. Raises
        :class:`~codexd._errors.StoreError` if they could not be written (then nothing of them
        is visible anywhere). Cancelling the caller does not cancel the write.
        """
        item = Item(
            events=((level, type, message, detail, session_id, run_id),),
            changes=tuple(records),
        )
        await self._submit_and_wait(item)
        assert item.result is not None
        return item.result

    async def emit(
        self,
        type: str,
        message: str,
        *,
        level: EventLevel = "info",
        detail: dict[str, Any] | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        records: Sequence[Change] = (),
    ) -> None:
        """Queue an event (and record changes) without waiting for the disk.

        For high-volume streams (deltas, output). Still ordered with every other change, and
        back-pressured: when the channel is full the caller waits. Never raises: while the
        store is degraded or closed the event is dropped and counted (``daemon/status``).
        """
        await self._submit(
            Item(
                events=((level, type, message, detail, session_id, run_id),),
                changes=tuple(records),
            )
        )

    async def emit_events(self, events: Sequence[EventSpec]) -> None:
        """Queue several events as ONE submission (a stdout chunk's worth), like :meth:`emit`.

        They are numbered consecutively, committed in the same transaction and published
        together: one channel item, one wake-up of the store, one offer to each subscriber.
        Never raises.
        """
        if events:
            await self._submit(Item(events=events))

    async def save(self, *records: Change, meta: Mapping[str, Any] | None = None) -> None:
        """Persist record changes (and meta keys) without an event; wait for the disk."""
        await self._submit_and_wait(Item(changes=records, meta=meta))

    async def append_output(self, stream: Literal["stdout", "stderr"], data: bytes) -> None:
        """Append raw child output to ``child-<stream>.log`` (ordered with events)."""
        await self._submit(Item(output=(stream, data)))

    def set_meta_soon(self, key: str, value: Any) -> None:
        """Stage a meta key for the next batch (small bookkeeping, e.g. the daemon's info)."""
        self._pending_meta[key] = value

    def request_reopen(self) -> None:
        """Reopen the log files before the next write (SIGHUP, for external logrotate)."""
        self._reopen_requested = True

    def subscribe(
        self,
        since: int | None = None,
        *,
        event_filter: EventFilter | None = None,
        buffer: int = 10_000,
    ) -> Subscription:
        """Events after ``since`` (stored first, then live), or only live ones if ``None``."""
        sub = Subscription(
            self.query_events,
            self.last_seq,
            since,
            event_filter or EventFilter(),
            buffer,
            on_close=self._subscribers.discard,
        )
        if self.finished.is_set():
            sub.close()
        else:
            self._subscribers.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        """Live subscriptions (a closed or dropped one is gone from the count at once)."""
        return len(self._subscribers)

    async def close_input(self) -> None:
        """Refuse new writes; :meth:`run` drains what is queued and returns."""
        if not self._input_closed:
            self._input_closed = True
            await self._send.aclose()

    # ---- the persistence task ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drain the channel into SQLite and the log files until :meth:`close_input`.

        If this task ends for any reason (cancellation included), every writer still waiting
        is answered with :class:`~codexd._errors.StoreError` and later writes are refused at
        once: nothing ever waits for a store that is gone.
        """
        task_status.started()
        try:
            if self._pending_meta:
                await self._commit([])
            while True:
                if self.fault is not None:
                    if not await self._wait_for_recovery():
                        break
                    continue
                try:
                    first = await self._recv.receive()
                except trio.EndOfChannel:
                    break
                # Two passes for ready tasks (the pump hands a chunk to the reader, which
                # queues): a turn's first delta joins its item/started's commit instead of
                # waiting for it. Shielded: taken items must reach _commit, which answers them.
                for _ in range(2):
                    await trio.lowlevel.cancel_shielded_checkpoint()
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._recv.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._commit(batch)
        finally:
            self._input_closed = True
            stopped = StoreError("the state store stopped before this change was written")
            for item in self._in_flight:
                self._fail(item, stopped)
            self._in_flight = []
            self._fail_queued(stopped)
            self._recv.close()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._files.close)
            for sub in list(self._subscribers):
                sub.close()
            self.finished.set()

    def _fail(self, item: Item, error: BaseException) -> None:
        if item.ack is None:
            self.dropped_events += len(item.events)
            return
        if not item.ack.is_set():
            item.error = error
            item.ack.set()

    def _fail_queued(self, error: BaseException) -> None:
        while True:
            try:
                item = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            self._fail(item, error)

    def _prepare(self, batch: list[Item]) -> Prepared:
        """Number the events and evaluate the changes (:func:`prepare`); memory is untouched."""
        reopen, self._reopen_requested = self._reopen_requested, False
        return prepare(
            batch,
            last_seq=self.last_seq,
            committed={Session: self.sessions, Run: self.runs, Approval: self.approvals},
            pending_meta=self._pending_meta,
            reopen=reopen,
            fail=self._fail,
        )

    async def _commit(self, batch: list[Item]) -> None:
        """Write the batch, retrying with backoff; apply it to memory once it is on disk."""
        self._in_flight = batch
        prepared = self._prepare(batch)
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
            try:
                # Not cancellable: a commit that happened is always applied right after.
                await trio.to_thread.run_sync(self._files.write, prepared)
            except Exception as exc:  # disk full, I/O error, a locked or broken database
                self.write_failures += 1
                if delay is None:
                    self._degrade(exc, batch)
                    return
                log(f"state store write failed (attempt {attempt}), retrying: {exc}")
                await trio.sleep(delay)
                continue
            self._apply(prepared, batch)
            return

    def _degrade(self, exc: BaseException, batch: list[Item]) -> None:
        error = f"{exc}" or type(exc).__name__
        self.fault = StoreHealth(status="degraded", error=error, since=_time.now_iso())
        self._degraded_at = time.monotonic()
        self._degraded.set()
        log(f"state store degraded, writes refused until the disk recovers: {error}")
        for item in batch:
            self._fail(item, exc)
        self._in_flight = []
        self._fail_queued(StoreError(self._refusal()))

    async def _wait_for_recovery(self) -> bool:
        """Probe a degraded store with backoff; True once it recovered, False at shutdown."""
        delay = PROBE_MIN_S
        while True:
            with trio.move_on_after(delay):
                try:
                    item = await self._recv.receive()
                except trio.EndOfChannel:
                    return False
                self._fail(item, StoreError(self._refusal()))
                continue
            fault = self.fault
            assert fault is not None
            seconds = time.monotonic() - self._degraded_at
            probe = Item(
                events=[
                    (
                        "warn",
                        "store.recovered",
                        f"The state store is writable again after {seconds:.1f}s degraded"
                        f" ({self.dropped_events} streamed events dropped meanwhile).",
                        {
                            "since": fault.since,
                            "error": fault.error,
                            "degradedS": round(seconds, 3),
                            "droppedEvents": self.dropped_events,
                            "writeFailures": self.write_failures,
                        },
                        None,
                        None,
                    )
                ]
            )
            prepared = self._prepare([probe])
            try:
                await trio.to_thread.run_sync(self._files.write, prepared)
            except Exception as exc:
                self.write_failures += 1
                self.fault = attrs.evolve(fault, error=f"{exc}" or type(exc).__name__)
                delay = min(delay * 2, PROBE_MAX_S)
                continue
            self.fault = None
            self._degraded = trio.Event()
            log("state store recovered; writes accepted again")
            self._apply(prepared, [probe])
            return True

    def _apply(self, prepared: Prepared, batch: list[Item]) -> None:
        """The batch is on disk: make it visible (records, ring, subscribers, acks)."""
        for record in prepared.records.values():
            if isinstance(record, Session):
                self.sessions[record.session_id] = record
            elif isinstance(record, Run):
                self.runs[record.run_id] = record
            else:
                self.approvals[record.approval_id] = record
        if prepared.child is not None:
            self.child_state = prepared.child
        for key, value in prepared.meta.items():
            if self._pending_meta.get(key) is value:
                del self._pending_meta[key]
        self.meta.update(prepared.meta)
        if prepared.events:
            stored = prepared.events
            self.last_seq = stored[-1][0].seq
            self.recent_events.extend([event for event, _line in stored])
            for sub in list(self._subscribers):
                sub.offer(stored)
        self._in_flight = []
        for item in batch:
            if item.ack is not None:
                item.ack.set()


def new_id(prefix: str) -> str:
    """A sortable unique id: ``prefix-<ms since epoch, base36>-<random>``."""
    millis = math.floor(time.time() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while millis:
        millis, rem = divmod(millis, 36)
        out = digits[rem] + out
    return f"{prefix}-{out}-{secrets.token_hex(3)}"
