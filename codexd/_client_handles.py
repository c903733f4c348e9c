"""Handles of the typed client: a turn, a run, and the streams of their typed events.

A handle remembers where the event log stood just before its turn or run was asked for
(``since``, read from the daemon before ``turn/start`` / ``run/create``), so its stream replays
the turn's events from the very first one, however late :meth:`TurnHandle.stream` is called:
there is no race between starting a turn and subscribing to it. A stream can be read more than
once; each read starts again from the first event.

Cancellation: cancelling a ``wait`` leaves the turn or run running (use ``interrupt`` /
``cancel``); cancelling a stream's ``__anext__`` loses nothing.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import attrs

from ._client_events import (
    RunEvent,
    RunFinished,
    TextDelta,
    TurnEvent,
    TurnFilter,
    merge_deltas,
    run_event,
)
from ._client_stream import EventStream
from ._records import Approval, Run, Session, TurnResult

if TYPE_CHECKING:
    from ._typed_client import Client


class TurnStream:
    """The typed events of one turn, from its first to :class:`TurnCompleted`; then it ends.

    With ``merge_deltas`` (the default) the text chunks that have already arrived together are
    handed out as one :class:`TextDelta`; without, one per app-server delta.
    """

    def __init__(self, events: EventStream, turn_id: str, *, merge_deltas: bool) -> None:
        self._events = events
        self._filter = TurnFilter(turn_id)
        self._merge = merge_deltas
        self._held: TurnEvent | None = None

    @property
    def usage(self) -> dict[str, object] | None:
        """The last token usage seen so far."""
        return self._filter.usage

    def __aiter__(self) -> TurnStream:
        return self

    async def __anext__(self) -> TurnEvent:
        if self._held is None and self._filter.done:
            await self.aclose()
            raise StopAsyncIteration
        typed = self._held if self._held is not None else await self._next()
        self._held = None
        if self._merge and isinstance(typed, TextDelta):
            more: list[TextDelta] = []
            while (following := self._next_nowait()) is not None:
                if isinstance(following, TextDelta) and following.item_id == typed.item_id:
                    more.append(following)
                    continue
                self._held = following
                break
            typed = merge_deltas(typed, more)
        return typed

    async def _next(self) -> TurnEvent:
        async for event in self._events:
            if self._filter.belongs(event):
                return self._filter.classify(event)
        raise StopAsyncIteration  # the stream was closed

    def _next_nowait(self) -> TurnEvent | None:
        while (event := self._events.receive_nowait()) is not None:
            if self._filter.belongs(event):
                return self._filter.classify(event)
        return None

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> TurnStream:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.aclose()


@attrs.define(eq=False)
class TurnHandle:
    """A turn started through :meth:`codexd.Client.start_turn` (or a review)."""

    client: Client
    session_id: str
    turn_id: str
    #: True when ``start_turn`` steered the running turn instead of starting one.
    steered: bool
    #: The session as it was when the turn was accepted.
    session: Session | None
    #: The last seq of the event log before the turn was asked for.
    since: int
    #: A detached review's own thread (``review/start``); ``None`` for other turns.
    review_thread_id: str | None = None

    def stream(self, *, merge_deltas: bool = True) -> TurnStream:
        """The turn's typed events from its first one; ends after :class:`TurnCompleted`."""
        events = self.client.events(since=self.since, session_id=self.session_id)
        return TurnStream(events, self.turn_id, merge_deltas=merge_deltas)

    async def wait(self, timeout: float | None = None) -> TurnResult:
        """Until the turn ends: its status, final message and error.

        With ``timeout`` (seconds) the result may be ``status == "inProgress"``: the turn was
        still running then. A daemon restart while waiting is waited out (up to the client's
        ``reconnect_timeout``).
        """
        return await self.client.wait_turn(self.session_id, self.turn_id, timeout=timeout)

    async def interrupt(self) -> TurnResult:
        """Interrupt the session's running turn (this one, if it still runs)."""
        return await self.client.interrupt(self.session_id)

    async def steer(self, input: str | list[dict[str, object]]) -> TurnHandle:
        """Add input to this turn while it runs (``turn/start`` with ``expectedTurnId``)."""
        return await self.client.start_turn(self.session_id, input, expected_turn_id=self.turn_id)


class RunStream:
    """The typed events of one run until :class:`RunFinished`; then it ends."""

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self._done = False

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        if self._done:
            await self.aclose()
            raise StopAsyncIteration
        event = await self._events.__anext__()
        typed = run_event(event)
        self._done = isinstance(typed, RunFinished)
        return typed

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> RunStream:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.aclose()


@attrs.define(eq=False)
class RunHandle:
    """A ``codex exec`` run created through :meth:`codexd.Client.create_run`."""

    client: Client
    run_id: str
    #: The run as it was when queued.
    run: Run
    #: The last seq of the event log before the run was asked for.
    since: int

    def stream(self) -> RunStream:
        """The run's typed events from ``run.queued``; ends after :class:`RunFinished`."""
        return RunStream(self.client.events(since=self.since, run_id=self.run_id))

    async def wait(self, timeout: float | None = None) -> Run:
        """Until the run is final (its current state if ``timeout`` passes first)."""
        return await self.client.wait_run(self.run_id, timeout=timeout)

    async def cancel(self) -> Run:
        return await self.client.cancel_run(self.run_id)

    async def get(self) -> Run:
        return await self.client.get_run(self.run_id)


class ApprovalStream:
    """Pending approvals as they arrive (those pending already come first); never ends.

    Nothing happens until the first ``__anext__``: it notes the last seq of the event log,
    lists what is pending, then follows ``approval.*`` events from that seq, so an approval
    requested at any moment is handed out, and only once. One decided meanwhile (by the
    daemon's policy, its timeout or another client) is skipped.
    """

    def __init__(self, client: Client, session_id: str | None) -> None:
        self._client = client
        self._session_id = session_id
        self._events: EventStream | None = None
        self._queue: collections.deque[Approval] = collections.deque()
        # Ids handed out (or queued) and not yet seen decided: bounded by what is pending.
        self._seen: set[str] = set()
        self._closed = False

    def __aiter__(self) -> ApprovalStream:
        return self

    async def _start(self) -> EventStream:
        since = await self._client.last_seq()
        pending = await self._client.list_approvals(status="pending", session_id=self._session_id)
        pending.sort(key=lambda a: a.created_at)
        self._queue.extend(pending)
        self._seen.update(a.approval_id for a in pending)
        return self._client.events(since=since, type="approval.", session_id=self._session_id)

    async def __anext__(self) -> Approval:
        if self._closed:
            raise StopAsyncIteration
        if self._events is None:
            self._events = await self._start()
        while True:
            if self._queue:
                return self._queue.popleft()
            event = await self._events.__anext__()
            detail = event.detail or {}
            approval_id = detail.get("approvalId")
            if not isinstance(approval_id, str):
                continue
            if event.type in ("approval.decided", "approval.cancelled"):
                self._seen.discard(approval_id)
            elif event.type == "approval.requested" and approval_id not in self._seen:
                if detail.get("policy") not in (None, "ask"):
                    continue  # the daemon's policy answers it at once
                approval = await self._client.find_pending_approval(
                    approval_id, session_id=event.session_id
                )
                if approval is not None:
                    self._seen.add(approval_id)
                    return approval

    async def aclose(self) -> None:
        self._closed = True
        if self._events is not None:
            await self._events.aclose()

    async def __aenter__(self) -> ApprovalStream:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.aclose()
