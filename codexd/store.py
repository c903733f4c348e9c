"""The state store: the one task that writes codexd's state to disk.

Every other task hands its changes (new events, changed records, child output) to the store
through one bounded ``trio`` memory channel. The store task (:meth:`Store.run`) takes what is
waiting, up to a batch, assigns each event its ``seq``, and writes the batch in ONE SQLite
transaction (in a worker thread) together with the JSONL event log and the child output logs.
Only then are the batch's events published to subscribers and its writers acknowledged: what a
caller saw acknowledged, or a subscriber saw, is on disk.

Reads never touch the disk: the store keeps every session, run and approval in memory, updated
the moment a change is submitted, so read-modify-write sequences of different tasks compose.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import trio

from . import _time
from ._database import Database, Row, event_to_json
from ._logfiles import RotatingFile
from .errors import StoreError
from .records import Approval, ChildState, Event, EventLevel, Run, Session, from_wire, to_wire

#: Items taken from the channel for one transaction at most.
MAX_BATCH = 2048

StoredRecord = Session | Run | Approval | ChildState


class SubscriberOverflow(Exception):
    """A subscriber fell too far behind and was dropped; reconnect with ``since=last_seq``."""

    def __init__(self, last_seq: int) -> None:
        super().__init__(
            f"subscriber fell behind and was dropped after seq {last_seq};"
            f" subscribe again with since={last_seq}"
        )
        self.last_seq = last_seq


@attrs.frozen
class EventFilter:
    """Which events a subscriber wants: a type prefix, a session, a run (all optional)."""

    type_prefix: str | None = None
    session_id: str | None = None
    run_id: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (self.type_prefix is None or event.type.startswith(self.type_prefix))
            and (self.session_id is None or event.session_id == self.session_id)
            and (self.run_id is None or event.run_id == self.run_id)
        )


@attrs.define
class _Item:
    """One submission: an event to number, records to upsert, meta keys, or child output."""

    event: tuple[EventLevel, str, str, dict[str, Any] | None, str | None, str | None] | None = None
    records: tuple[StoredRecord, ...] = ()
    meta: Mapping[str, Any] | None = None
    output: tuple[Literal["stdout", "stderr"], bytes] | None = None
    ack: trio.Event | None = None
    result: Event | None = None
    error: BaseException | None = None


class Subscription:
    """An async iterator over events: stored ones after ``since`` first, then live ones.

    Created by :meth:`Store.subscribe`. Live events are buffered up to ``buffer``; a subscriber
    that lets the buffer fill is dropped: iteration then raises :class:`SubscriberOverflow`
    naming the last seq it got, so it can resubscribe with ``since`` and miss nothing.
    """

    def __init__(
        self, store: Store, since: int | None, event_filter: EventFilter, buffer: int
    ) -> None:
        self._store = store
        self.filter = event_filter
        self._send, self._recv = trio.open_memory_channel[Event](buffer)
        # Everything up to here is on disk; everything after arrives live. No gap, no duplicate.
        self._replay_upto = store.last_seq
        self._cursor = since if since is not None else store.last_seq
        self.last_seq = self._cursor
        self.overflowed = False
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self.closed or not self.filter.matches(event):
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.overflowed = True
            self._close_live()

    def _close_live(self) -> None:
        self._store._subscribers.discard(self)
        self._send.close()

    def close(self) -> None:
        """Stop receiving; iteration ends after what is already buffered."""
        self.closed = True
        self._close_live()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while self._cursor < self._replay_upto:
            page = await self._store.query_events(
                after=self._cursor,
                up_to=self._replay_upto,
                event_filter=self.filter,
                limit=1000,
            )
            if not page:
                break
            for event in page:
                self._cursor = event.seq
                self.last_seq = event.seq
                yield event
        while True:
            try:
                event = await self._recv.receive()
            except trio.EndOfChannel:
                break
            self.last_seq = event.seq
            yield event
            # Hand over what is already buffered without a scheduler pass per event.
            while True:
                try:
                    event = self._recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                self.last_seq = event.seq
                yield event
        if self.overflowed:
            raise SubscriberOverflow(self.last_seq)


class Store:
    """codexd's state: in-memory views plus the persistence task that writes them to disk.

    Open it with :meth:`open`, run :meth:`run` in a nursery, and call :meth:`close_input` then
    wait for :meth:`run` to return to flush everything on shutdown.
    """

    def __init__(
        self,
        state_dir: Path,
        db: Database,
        *,
        recent_limit: int,
        log_max_bytes: int,
        log_backups: int,
        channel_size: int = 4096,
    ) -> None:
        self.state_dir = state_dir
        self._db = db
        loaded = db.load(recent_limit)
        meta = dict(loaded.meta)
        self.daemon_id: str = meta.get("daemon_id") or f"codexd-{secrets.token_hex(6)}"
        self._pending_meta: dict[str, Any] = {}
        if "daemon_id" not in meta:
            self._pending_meta["daemon_id"] = self.daemon_id
        self.meta = meta
        self.child_state: ChildState = (
            from_wire(ChildState, meta["child"]) if "child" in meta else ChildState()
        )
        self.sessions: dict[str, Session] = {s.session_id: s for s in loaded.sessions}
        self.runs: dict[str, Run] = {r.run_id: r for r in loaded.runs}
        self.approvals: dict[str, Approval] = {a.approval_id: a for a in loaded.approvals}
        self.last_seq = loaded.last_seq
        self._next_seq = loaded.last_seq + 1
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
        self._send, self._recv = trio.open_memory_channel[_Item](channel_size)
        self._subscribers: set[Subscription] = set()
        self._input_closed = False
        self._reopen_requested = False
        self.write_failures = 0
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
        """Open (creating if needed) the state directory and its database."""

        def _open() -> Database:
            state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(state_dir, 0o700)
            return Database(state_dir / "state.sqlite3")

        db = await trio.to_thread.run_sync(_open)
        return await trio.to_thread.run_sync(
            lambda: cls(
                state_dir,
                db,
                recent_limit=recent_limit,
                log_max_bytes=log_max_bytes,
                log_backups=log_backups,
            )
        )

    # ---- reads (memory only) -------------------------------------------------------------

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

    async def query_events(
        self,
        *,
        after: int = 0,
        up_to: int | None = None,
        event_filter: EventFilter | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Stored events with ``after < seq <= up_to`` that match the filter, oldest first."""
        f = event_filter or EventFilter()
        return await trio.to_thread.run_sync(
            lambda: self._db.query_events(
                after=after,
                up_to=up_to,
                type_prefix=f.type_prefix,
                session_id=f.session_id,
                run_id=f.run_id,
                limit=limit,
            )
        )

    # ---- writes ----------------------------------------------------------------------------

    def _apply(self, records: Iterable[StoredRecord]) -> None:
        for record in records:
            if isinstance(record, Session):
                self.sessions[record.session_id] = record
            elif isinstance(record, Run):
                self.runs[record.run_id] = record
            elif isinstance(record, Approval):
                self.approvals[record.approval_id] = record
            else:
                self.child_state = record

    async def _submit(self, item: _Item) -> None:
        if self._input_closed:
            raise StoreError("the store is closed; codexd is shutting down")
        self._apply(item.records)
        try:
            # The fast path: no checkpoint, no cancel scope (this runs once per event).
            self._send.send_nowait(item)
        except trio.WouldBlock:
            # The channel is full: wait (back-pressure). Shielded: once applied in memory, the
            # change must reach the channel too. Order is kept: while senders are parked the
            # buffer stays full, so a later send_nowait queues behind them.
            with trio.CancelScope(shield=True):
                await self._send.send(item)

    async def _submit_and_wait(self, item: _Item) -> None:
        item.ack = trio.Event()
        await self._submit(item)
        await item.ack.wait()
        if item.error is not None:
            raise StoreError(f"could not persist state: {item.error}") from item.error

    async def record(
        self,
        type: str,
        message: str,
        *,
        level: EventLevel = "info",
        detail: dict[str, Any] | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        records: Sequence[StoredRecord] = (),
    ) -> Event:
        """Persist an event (and records changed with it, in the same transaction); wait for it.

        Returns the stored :class:`Event` with its ``seq``. Raises :class:`StoreError` if the
        batch could not be written. Cancelling the caller does not cancel the write.
        """
        item = _Item(
            event=(level, type, message, detail, session_id, run_id), records=tuple(records)
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
        records: Sequence[StoredRecord] = (),
    ) -> None:
        """Queue an event without waiting for the disk (high-volume streams: deltas, output).

        Still ordered with every other change, and still back-pressured: when the channel is
        full the caller waits, so a fast producer cannot grow memory without bound.
        """
        await self._submit(
            _Item(event=(level, type, message, detail, session_id, run_id), records=tuple(records))
        )

    async def save(self, *records: StoredRecord, meta: Mapping[str, Any] | None = None) -> None:
        """Persist changed records (and meta keys) without an event; wait for the disk."""
        await self._submit_and_wait(_Item(records=records, meta=meta))

    async def append_output(self, stream: Literal["stdout", "stderr"], data: bytes) -> None:
        """Append raw child output to ``child-<stream>.log`` (ordered with events)."""
        await self._submit(_Item(output=(stream, data)))

    def set_meta_soon(self, key: str, value: Any) -> None:
        """Stage a meta key for the next batch (used for small bookkeeping, e.g. daemon info)."""
        self.meta[key] = value
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
        sub = Subscription(self, since, event_filter or EventFilter(), buffer)
        self._subscribers.add(sub)
        return sub

    async def close_input(self) -> None:
        """Refuse new writes; :meth:`run` drains what is queued and returns."""
        if not self._input_closed:
            self._input_closed = True
            await self._send.aclose()

    # ---- the persistence task ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drain the channel into SQLite and the log files until :meth:`close_input`."""
        task_status.started()
        try:
            if self._pending_meta:
                await self._commit([])
            while True:
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

    async def _commit(self, batch: list[_Item]) -> None:
        events: list[tuple[Event, str]] = []
        rows: dict[tuple[str, str], Row] = {}
        outputs: list[tuple[str, bytes]] = []
        meta = dict(self._pending_meta)
        self._pending_meta.clear()
        ts = _time.now_iso()
        for item in batch:
            if item.event is not None:
                level, etype, message, detail, session_id, run_id = item.event
                event = Event(self._next_seq, ts, level, etype, message, detail, session_id, run_id)
                self._next_seq += 1
                item.result = event
                events.append((event, event_to_json(event)))
            for record in item.records:
                if isinstance(record, ChildState):
                    meta["child"] = to_wire(record)
                else:
                    row = _row_of(record)
                    rows[(row.table, row.key)] = row
            if item.meta:
                meta.update(item.meta)
            if item.output is not None:
                outputs.append(item.output)
        if events:
            meta["last_seq"] = events[-1][0].seq
        reopen, self._reopen_requested = self._reopen_requested, False
        try:
            await trio.to_thread.run_sync(
                self._write_sync, events, list(rows.values()), meta, outputs, reopen
            )
        except Exception as exc:  # disk full, I/O error: report, keep serving
            self.write_failures += 1
            # Meta keys are state too: keep them for the next batch unless superseded.
            for key, value in meta.items():
                self._pending_meta.setdefault(key, value)
            print(f"codexd: state store write failed: {exc!r}", file=sys.stderr, flush=True)
            for item in batch:
                item.error = exc
                if item.ack is not None:
                    item.ack.set()
            return
        if events:
            self.last_seq = events[-1][0].seq
        for event, _line in events:
            self.recent_events.append(event)
            for sub in list(self._subscribers):
                sub._offer(event)
        for item in batch:
            if item.ack is not None:
                item.ack.set()

    def _write_sync(
        self,
        events: list[tuple[Event, str]],
        rows: list[Row],
        meta: dict[str, Any],
        outputs: list[tuple[str, bytes]],
        reopen: bool,
    ) -> None:
        if reopen:
            self._event_log.reopen()
            for log in self._output_logs.values():
                log.reopen()
        self._db.write(events, rows, meta)
        if events:
            self._event_log.write("".join(line + "\n" for _e, line in events).encode())
        for stream, data in outputs:
            self._output_logs[stream].write(data)


def _row_of(record: Session | Run | Approval) -> Row:
    data = json.dumps(to_wire(record), separators=(",", ":"), ensure_ascii=False)
    if isinstance(record, Session):
        return Row("sessions", record.session_id, record.status, record.thread_id, data)
    if isinstance(record, Run):
        return Row("runs", record.run_id, record.status, record.created_at, data)
    return Row("approvals", record.approval_id, record.status, None, data)


def new_id(prefix: str) -> str:
    """A sortable unique id: ``prefix-<ms since epoch, base36>-<random>``."""
    millis = math.floor(time.time() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while millis:
        millis, rem = divmod(millis, 36)
        out = digits[rem] + out
    return f"{prefix}-{out}-{secrets.token_hex(3)}"
