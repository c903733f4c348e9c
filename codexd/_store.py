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

import json
import math
import secrets
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import trio

from . import _statedir, _time
from ._database import Database, ForeignDatabase, LoadProblem, Row, create_database
from ._database import dumps as dumps_valid_json
from ._database import event_to_json as _event_json
from ._errors import StoreError
from ._jsoncheck import has_surrogate, scrub
from ._logfiles import RotatingFile, last_logged_seq
from ._records import (
    Approval,
    ChildState,
    Event,
    EventLevel,
    Run,
    Session,
    StoreHealth,
    from_wire,
    to_wire,
)
from ._subscriptions import EventFilter, Subscription

#: Items taken from the channel for one transaction at most.
MAX_BATCH = 2048
#: Pauses between the attempts of a failing commit before the store becomes degraded.
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0)
#: The probe of a degraded store backs off between these bounds.
PROBE_MIN_S, PROBE_MAX_S = 0.5, 10.0
#: Event-log bytes kept for a later append when events.jsonl cannot be written.
LOG_BACKLOG_BYTES = 8 * 1024 * 1024

StoredRecord = Session | Run | Approval | ChildState
_Keyed = Session | Run | Approval


@attrs.frozen
class Update:
    """A change to one record, computed in the store task from its latest value.

    ``change`` gets the current record (``None`` if there is none) and returns the new one, or
    ``None`` to leave it as it is. It must be quick and must not raise.
    """

    kind: type[Session] | type[Run] | type[Approval]
    key: str
    change: Callable[[Any], Any]


Change = StoredRecord | Update


def patch(kind: type[Any], key: str, change: Callable[[Any], Any]) -> Update:
    """An :class:`Update` of an existing record (nothing happens if it does not exist)."""
    return Update(kind, key, lambda current: change(current) if current is not None else None)


def _key_of(record: _Keyed) -> str:
    if isinstance(record, Session):
        return record.session_id
    if isinstance(record, Run):
        return record.run_id
    return record.approval_id


@attrs.define
class _Item:
    """One submission: an event to number, record changes, meta keys, or child output."""

    event: tuple[EventLevel, str, str, dict[str, Any] | None, str | None, str | None] | None = None
    changes: tuple[Change, ...] = ()
    meta: Mapping[str, Any] | None = None
    output: tuple[Literal["stdout", "stderr"], bytes] | None = None
    ack: trio.Event | None = None
    result: Event | None = None
    error: BaseException | None = None


@attrs.define
class _Prepared:
    """A batch ready to write: nothing in memory has changed yet."""

    events: list[tuple[Event, str]]
    records: dict[tuple[type, str], _Keyed]
    child: ChildState | None
    meta: dict[str, Any]
    outputs: list[tuple[str, bytes]]
    reopen: bool


def _storable(event: Event) -> tuple[Event, str]:
    """The event and its JSON line; a value JSON or UTF-8 cannot hold is repaired and flagged.

    Peers' output is repaired where it enters (the JSON-RPC core, the exec reader); this is the
    last line of defence, so that no event can ever fail a batch or the API's encoder.
    """
    try:
        line = _event_json(event)
        if line.isascii() or not has_surrogate(line):
            return event, line
    except (ValueError, RecursionError):
        pass
    fixed = attrs.evolve(
        event,
        message=scrub(event.message)[0],
        type=scrub(event.type)[0],
        detail={**(scrub(event.detail)[0] or {}), "repairedByCodexd": True},
        session_id=scrub(event.session_id)[0],
        run_id=scrub(event.run_id)[0],
    )
    return fixed, _event_json(fixed)


def _row_of(record: _Keyed) -> Row:
    wire = to_wire(record)
    try:
        data = json.dumps(wire, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if has_surrogate(data):
            raise ValueError("lone surrogate")
    except (ValueError, RecursionError):
        data = dumps_valid_json(scrub(wire)[0])
    if isinstance(record, Session):
        return Row("sessions", record.session_id, record.status, record.thread_id, data)
    if isinstance(record, Run):
        return Row("runs", record.run_id, record.status, record.created_at, data)
    return Row("approvals", record.approval_id, record.status, None, data)


def _log(message: str) -> None:
    print(f"codexd: {message}", file=sys.stderr, flush=True)


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
        self._lock = lock
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
        self._event_log = RotatingFile(
            state_dir / "events.jsonl", max_bytes=log_max_bytes, backups=log_backups
        )
        self._output_logs = {
            "stdout": RotatingFile(
                state_dir / "child-stdout.log", max_bytes=log_max_bytes, backups=log_backups
            ),
            "stderr": RotatingFile(
                state_dir / "child-stderr.log", max_bytes=log_max_bytes, backups=log_backups
            ),
        }
        self._log_backlog = b""
        self._send, self._recv = trio.open_memory_channel[_Item](channel_size)
        self._subscribers: set[Subscription] = set()
        self._input_closed = False
        self._reopen_requested = False
        self._in_flight: list[_Item] = []
        self.fault: StoreHealth | None = None
        self._degraded_at = 0.0
        self._degraded = trio.Event()
        self.write_failures = 0
        self.dropped_events = 0
        self.log_failures = 0
        self.finished = trio.Event()

    @classmethod
    async def open(
        cls,
        state_dir: Path,
        *,
        recent_limit: int = 200,
        log_max_bytes: int = 10 * 1024 * 1024,
        log_backups: int = 3,
    ) -> Store:
        """Claim the state directory (one daemon per dir) and open or create its database.

        Raises :class:`~codexd._errors.StateDirInUse` when another daemon holds it, and
        :class:`~codexd._errors.StoreError` naming the problem when the directory or its
        ``state.sqlite3`` cannot be used (not a directory, not writable, empty or foreign).
        """

        def _open() -> Store:
            lock = _statedir.claim(state_dir)
            try:
                path = state_dir / "state.sqlite3"
                if not path.exists():
                    start = last_logged_seq(state_dir / "events.jsonl")
                    create_database(
                        path,
                        {
                            "daemon_id": f"codexd-{secrets.token_hex(6)}",
                            "created_at": _time.now_iso(),
                            "last_seq": start,
                        },
                    )
                db = Database(path)
                return cls(
                    state_dir,
                    db,
                    lock,
                    recent_limit=recent_limit,
                    log_max_bytes=log_max_bytes,
                    log_backups=log_backups,
                )
            except ForeignDatabase as exc:
                lock.release()
                raise StoreError(f"refusing to use the state store: {exc}") from None
            except OSError as exc:
                lock.release()
                raise StoreError(
                    f"cannot open the state store in {state_dir}: {exc.strerror or exc}"
                ) from None
            except BaseException:
                lock.release()
                raise

        return await trio.to_thread.run_sync(_open)

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

    async def _submit(self, item: _Item) -> None:
        if self._input_closed or self.fault is not None:
            if item.ack is not None:
                raise StoreError(self._refusal())
            self.dropped_events += item.event is not None
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
                self._refuse_late(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._refuse_late(item)

    def _refuse_late(self, item: _Item) -> None:
        if item.ack is None:
            self.dropped_events += item.event is not None
            return
        raise StoreError(self._refusal())

    async def _submit_and_wait(self, item: _Item) -> None:
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
        item = _Item(
            event=(level, type, message, detail, session_id, run_id), changes=tuple(records)
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
            _Item(event=(level, type, message, detail, session_id, run_id), changes=tuple(records))
        )

    async def save(self, *records: Change, meta: Mapping[str, Any] | None = None) -> None:
        """Persist record changes (and meta keys) without an event; wait for the disk."""
        await self._submit_and_wait(_Item(changes=records, meta=meta))

    async def append_output(self, stream: Literal["stdout", "stderr"], data: bytes) -> None:
        """Append raw child output to ``child-<stream>.log`` (ordered with events)."""
        await self._submit(_Item(output=(stream, data)))

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
                await trio.to_thread.run_sync(self._close_files)
            for sub in list(self._subscribers):
                sub.close()
            self.finished.set()

    def _close_files(self) -> None:
        self._event_log.close()
        for log in self._output_logs.values():
            log.close()
        self._db.close()
        self._lock.release()

    def _fail(self, item: _Item, error: BaseException) -> None:
        if item.ack is None:
            self.dropped_events += item.event is not None
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

    def _prepare(self, batch: Iterable[_Item]) -> _Prepared:
        """Number the events and evaluate the changes; memory is not touched."""
        records: dict[tuple[type, str], _Keyed] = {}
        child: ChildState | None = None
        events: list[tuple[Event, str]] = []
        outputs: list[tuple[str, bytes]] = []
        meta = dict(self._pending_meta)
        ts = _time.now_iso()
        seq = self.last_seq
        committed: dict[type, Mapping[str, Any]] = {
            Session: self.sessions,
            Run: self.runs,
            Approval: self.approvals,
        }
        for item in batch:
            try:
                changed, child_change = self._evaluate(item, records, committed)
            except Exception as exc:  # a faulty Update fails its own item, never the batch
                self._fail(item, StoreError(f"a change could not be applied: {exc!r}"))
                continue
            records.update(changed)
            child = child_change or child
            if item.meta:
                meta.update(item.meta)
            if item.output is not None:
                outputs.append(item.output)
            if item.event is not None:
                seq += 1
                level, etype, message, detail, session_id, run_id = item.event
                event = Event(seq, ts, level, etype, message, detail, session_id, run_id)
                event, line = _storable(event)
                item.result = event
                events.append((event, line))
        if child is not None:
            meta["child"] = to_wire(child)
        if events:
            meta["last_seq"] = events[-1][0].seq
        reopen, self._reopen_requested = self._reopen_requested, False
        return _Prepared(events, records, child, meta, outputs, reopen)

    @staticmethod
    def _evaluate(
        item: _Item,
        records: Mapping[tuple[type, str], _Keyed],
        committed: Mapping[type, Mapping[str, Any]],
    ) -> tuple[dict[tuple[type, str], _Keyed], ChildState | None]:
        """The records one item changes, evaluated on top of the batch so far."""
        changed: dict[tuple[type, str], _Keyed] = {}
        child: ChildState | None = None
        for change in item.changes:
            if isinstance(change, ChildState):
                child = change
                continue
            if isinstance(change, Update):
                slot = (change.kind, change.key)
                current = (
                    changed.get(slot) or records.get(slot) or committed[change.kind].get(change.key)
                )
                new = change.change(current)
                if new is None:
                    continue
            else:
                new = change
            changed[(type(new), _key_of(new))] = new
        return changed, child

    async def _commit(self, batch: list[_Item]) -> None:
        """Write the batch, retrying with backoff; apply it to memory once it is on disk."""
        self._in_flight = batch
        prepared = self._prepare(batch)
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
            try:
                # Not cancellable: a commit that happened is always applied right after.
                await trio.to_thread.run_sync(self._write_sync, prepared)
            except Exception as exc:  # disk full, I/O error, a locked or broken database
                self.write_failures += 1
                if delay is None:
                    self._degrade(exc, batch)
                    return
                _log(f"state store write failed (attempt {attempt}), retrying: {exc}")
                await trio.sleep(delay)
                continue
            self._apply(prepared, batch)
            return

    def _degrade(self, exc: BaseException, batch: list[_Item]) -> None:
        error = f"{exc}" or type(exc).__name__
        self.fault = StoreHealth(status="degraded", error=error, since=_time.now_iso())
        self._degraded_at = time.monotonic()
        self._degraded.set()
        _log(f"state store degraded, writes refused until the disk recovers: {error}")
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
            probe = _Item(
                event=(
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
            )
            prepared = self._prepare([probe])
            try:
                await trio.to_thread.run_sync(self._write_sync, prepared)
            except Exception as exc:
                self.write_failures += 1
                self.fault = attrs.evolve(fault, error=f"{exc}" or type(exc).__name__)
                delay = min(delay * 2, PROBE_MAX_S)
                continue
            self.fault = None
            self._degraded = trio.Event()
            _log("state store recovered; writes accepted again")
            self._apply(prepared, [probe])
            return True

    def _apply(self, prepared: _Prepared, batch: list[_Item]) -> None:
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
            events = [event for event, _line in prepared.events]
            self.last_seq = events[-1].seq
            self.recent_events.extend(events)
            for sub in list(self._subscribers):
                sub.offer(events)
        self._in_flight = []
        for item in batch:
            if item.ack is not None:
                item.ack.set()

    def _write_sync(self, prepared: _Prepared) -> None:
        """Commit the batch (raises if the database write fails), then append the logs.

        The SQLite transaction is the commit point. The logs are appended after it and a log
        that cannot be written does not undo the commit: its lines wait in a bounded backlog.
        """
        self._db.write(
            prepared.events,
            [_row_of(r) for r in prepared.records.values()],
            prepared.meta,
        )
        if prepared.reopen:
            self._event_log.reopen()
            for log in self._output_logs.values():
                log.reopen()
        data = self._log_backlog + "".join(line + "\n" for _e, line in prepared.events).encode()
        if data:
            try:
                self._event_log.write(data)
                self._log_backlog = b""
            except OSError as exc:
                self.log_failures += 1
                cut = max(0, len(data) - LOG_BACKLOG_BYTES)
                if cut:
                    cut = data.find(b"\n", cut) + 1
                self._log_backlog = data[cut:]
                _log(f"events.jsonl could not be appended (kept for later): {exc}")
        for stream, output in prepared.outputs:
            try:
                self._output_logs[stream].write(output)
            except OSError:
                self.log_failures += 1


def new_id(prefix: str) -> str:
    """A sortable unique id: ``prefix-<ms since epoch, base36>-<random>``."""
    millis = math.floor(time.time() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while millis:
        millis, rem = divmod(millis, 36)
        out = digits[rem] + out
    return f"{prefix}-{out}-{secrets.token_hex(3)}"
