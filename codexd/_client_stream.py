"""Connections of the typed client, and an event stream that resumes by itself.

A :class:`Links` finds the daemon (``api.json`` and ``api-token`` in the state directory, read
again at every connection so a restarted daemon on a new port is found, or a fixed url and
token) and opens WebSocket connections whose lifetime is a task in the client's nursery.

An :class:`EventStream` holds one connection of its own (so a stream that falls behind and is
dropped with close code 4008 costs nothing to the client's calls) and one subscription on it.
When the subscription ends for any reason (``events/dropped``, close 4008, this client's own
bounded buffer overflowing, the daemon stopping or restarting) it connects again and subscribes
with ``since`` = the last seq it handed out: the daemon replays what was missed from its store,
so the caller sees every event once, in seq order, and memory stays bounded by ``buffer``.

Cancellation: cancelling a ``__anext__`` leaves the stream usable (nothing is lost: the next
call resumes from the last seq handed out). Close a stream with :meth:`EventStream.aclose` or
``async with``; the client closes the ones still open when it closes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from ._errors import ApiError, CallTimeout, DaemonUnreachable, InvalidRequest
from ._records import Event, from_wire
from .client import ApiClient, RawSubscription, open_client, read_api_info

#: Events a stream buffers before it counts as behind (it then resumes from the store).
STREAM_BUFFER = 2_000
#: First and longest pause between attempts to reach a daemon that went away.
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 1.0


@attrs.define(eq=False)
class _Held:
    """One open connection: the client and the event that lets its task close it."""

    api: ApiClient
    release: trio.Event


class Links:
    """How the typed client reaches the daemon, and the connections it holds open."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        state_dir: Path | None,
        url: str | None,
        token: str | None,
        timeout: float | None,
        reconnect_timeout: float | None,
    ) -> None:
        self._nursery = nursery
        self.state_dir = state_dir
        self._url = url
        self._token = token
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self._held: dict[int, _Held] = {}
        self.closed = False

    def address(self) -> tuple[str, str]:
        """``(url, token)``: the fixed ones, else read from the state directory now."""
        if self._url is not None and self._token is not None:
            return self._url, self._token
        assert self.state_dir is not None
        url, token = read_api_info(self.state_dir)
        return self._url or url, self._token or token

    async def open(self) -> ApiClient:
        """A new connection (raises DaemonUnreachable); close it with :meth:`release`."""
        if self.closed:
            raise DaemonUnreachable("the client is closed")
        url, token = await trio.to_thread.run_sync(self.address)
        held: _Held = await self._nursery.start(self._hold, url, token)
        self._held[id(held.api)] = held
        return held.api

    async def _hold(self, url: str, token: str, *, task_status: trio.TaskStatus[_Held]) -> None:
        started = False
        try:
            async with open_client(url=url, token=token, default_timeout=self.timeout) as api:
                held = _Held(api, trio.Event())
                task_status.started(held)
                started = True
                await held.release.wait()
        except Exception:
            if not started:
                raise
            # Contained: a connection that broke after it was handed out only ends itself;
            # its users see it closed (calls raise DaemonUnreachable, streams resume).

    def release(self, api: ApiClient) -> None:
        """Close a connection opened by :meth:`open` (its task ends it, bounded)."""
        held = self._held.pop(id(api), None)
        if held is not None:
            held.release.set()

    def close_all(self) -> None:
        self.closed = True
        for held in list(self._held.values()):
            held.release.set()
        self._held.clear()

    async def open_with_retry(self) -> ApiClient:
        """:meth:`open`, retried with backoff while the daemon is away (a restart).

        Gives up with :class:`DaemonUnreachable` after ``reconnect_timeout`` seconds
        (``None``: never).
        """
        delay = BACKOFF_INITIAL_S
        limit = self.reconnect_timeout
        deadline = trio.current_time() + (limit if limit is not None else math.inf)
        while True:
            try:
                return await self.open()
            except DaemonUnreachable:
                if self.closed or trio.current_time() + delay > deadline:
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)


class EventStream:
    """Events in seq order, resumed across drops and daemon restarts; see the module doc.

    ``last_seq`` is the seq of the last event handed out (or, before the first one, where the
    stream starts); ``reconnects`` counts the times it had to subscribe again.
    """

    def __init__(
        self,
        links: Links,
        *,
        since: int | None,
        type_prefix: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        buffer: int = STREAM_BUFFER,
        on_close: Callable[[EventStream], None] | None = None,
    ) -> None:
        if buffer < 1:
            raise InvalidRequest("buffer must be at least 1", field="buffer")
        self._links = links
        self._since = since
        self.type_prefix = type_prefix
        self.session_id = session_id
        self.run_id = run_id
        self._buffer = buffer
        self._api: ApiClient | None = None
        self._sub: RawSubscription | None = None
        self._on_close = on_close
        self.last_seq: int | None = since
        self.reconnects = 0
        self.closed = False

    # ---- iteration ---------------------------------------------------------------------------

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self.closed:
                raise StopAsyncIteration
            sub = await self._subscription()
            try:
                item = await sub.receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                await self._lost()
                continue
            event = self._accept(item)
            if event is not None:
                return event

    def receive_nowait(self) -> Event | None:
        """The next event if one is already here, else ``None`` (never waits, never resumes)."""
        while self._sub is not None and not self.closed:
            try:
                item = self._sub.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return None
            event = self._accept(item)
            if event is not None:
                return event
            if self._sub is None:
                return None
        return None

    def _accept(self, item: Any) -> Event | None:
        """The event in ``item``, or ``None`` (a duplicate, or a drop that ends this round)."""
        if not isinstance(item, dict):
            return None
        if item.get("dropped"):
            self._forget_connection()
            self.reconnects += 1
            return None
        event = from_wire(Event, item)
        if self.last_seq is not None and event.seq <= self.last_seq:
            return None  # already handed out (never expected; cheap insurance)
        self.last_seq = event.seq
        return event

    # ---- the subscription --------------------------------------------------------------------

    async def _subscription(self) -> RawSubscription:
        while self._sub is None:
            if self._api is None:
                self._api = await self._links.open_with_retry()
            try:
                sub = await self._api.open_subscription(
                    self.last_seq,
                    type_prefix=self.type_prefix,
                    session_id=self.session_id,
                    run_id=self.run_id,
                    buffer=self._buffer,
                )
            except ApiError:
                self._forget_connection()
                raise  # a bad filter: nothing to retry
            except (DaemonUnreachable, CallTimeout):
                self._forget_connection()
                continue
            if self.last_seq is None and sub.last_seq is not None:
                # Live only: everything after the daemon's last seq at this moment.
                self.last_seq = sub.last_seq
            self._sub = sub
        return self._sub

    async def _lost(self) -> None:
        """The subscription ended: drop its connection; the next round resumes."""
        self._forget_connection()
        self.reconnects += 1
        await trio.lowlevel.checkpoint()

    def _forget_connection(self) -> None:
        if self._sub is not None:
            self._sub.detach()
        self._sub = None
        if self._api is not None:
            self._links.release(self._api)
            self._api = None

    # ---- closing -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the stream and close its connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._forget_connection()
        if self._on_close is not None:
            self._on_close(self)
        await trio.lowlevel.checkpoint()

    def close_nowait(self) -> None:
        """Like :meth:`aclose`, from synchronous code."""
        if not self.closed:
            self.closed = True
            self._forget_connection()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.aclose()
