"""One async JSON-RPC peer over the sans-IO core: requests with timeouts, a router, answers.

Every JSON-RPC conversation of codexd goes through a :class:`Peer`: the app-server client (a
stdio or WebSocket transport), each connection of the API server, and the API client. The peer
owns the one pending-request table of its connection (waiters keyed by id, beside the core's id
-> method bookkeeping), puts a timeout on every request, forgets a request whose caller gave up
(its late answer is then reported, not matched), and fails every waiter when the connection
closes. What arrives is routed to the :class:`Handlers`; the reader never waits on anything
slow (a handler that must, spawns a task).

Cancellation: cancelling :meth:`Peer.request` forgets the request (a late answer is ignored);
:meth:`Peer.receive` awaits the notification and issue handlers, so a slow handler is
back-pressure on the reader, by design.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import trio

from ._errors import CodexdError, LocalProtocolError, TransportClosed
from ._jsonrpc import Connection
from ._messages import (
    ErrorResponse,
    JsonObject,
    LateResponse,
    Notification,
    ProtocolIssue,
    Request,
    RequestId,
    Response,
)


class Handlers(Protocol):
    """Where a peer routes what it receives."""

    def on_request(self, request: Request) -> None:
        """A request of the other side: answer it with :meth:`Peer.respond` (never block)."""

    async def on_notification(self, notification: Notification) -> None:
        """A notification (awaited: keep it quick).

        A handler may also define ``on_notifications(list)``: then the notifications that
        arrive together (one stdout chunk) are handed over in one call, in order.
        """

    async def on_issue(self, issue: ProtocolIssue) -> None:
        """Garbage from the other side, or a late answer to a forgotten request."""

    def error(self, method: str, response: ErrorResponse) -> CodexdError:
        """The exception a request raises when the other side answers with an error."""

    def timeout(self, method: str, seconds: float) -> CodexdError:
        """The exception a request raises when no answer comes in time."""


@attrs.define
class _Waiter:
    method: str
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: CodexdError | None = None


Write = Callable[[bytes | str], Awaitable[None]]


class Peer:
    """JSON-RPC over one connection. ``write`` sends one encoded message (line or frame)."""

    def __init__(
        self,
        connection: Connection,
        write: Write,
        handlers: Handlers,
        *,
        framed: bool,
        request_timeout_s: float | None,
    ) -> None:
        self.connection = connection
        self._write = write
        self._handlers = handlers
        self._framed = framed
        self.request_timeout_s = request_timeout_s
        self._waiters: dict[RequestId, _Waiter] = {}
        self.closed_reason: str | None = None

    # ---- receiving -------------------------------------------------------------------------

    async def receive(self, data: bytes | str) -> None:
        """Feed what the transport read (stream bytes, or one whole frame) and route it."""
        if self._framed:
            self.connection.receive_message_text(data)
        else:
            assert isinstance(data, bytes | bytearray)
            self.connection.receive_data(data)
        await self._route_ready()

    async def receive_eof(self) -> ProtocolIssue | None:
        """The stream ended; returns the ``trailing`` issue for bytes left without a newline."""
        trailing = self.connection.receive_eof()
        await self._route_ready()
        return trailing

    async def _route_ready(self) -> None:
        handlers = self._handlers
        batch: list[Notification] = []
        for event in self.connection.events():
            if isinstance(event, Notification):
                batch.append(event)
                continue
            if batch:
                await self._notify(batch)
                batch = []
            if isinstance(event, Response | ErrorResponse):
                self._resolve(event)
            elif isinstance(event, Request):
                handlers.on_request(event)
            elif isinstance(event, ProtocolIssue):
                await handlers.on_issue(event)
            elif isinstance(event, LateResponse):
                # The other side was merely slow: a trace for diagnostics, nothing waits.
                late = event.message
                await handlers.on_issue(
                    ProtocolIssue(
                        "late-response",
                        f"{late.method or 'a request'} answered after its timeout",
                    )
                )
        if batch:
            await self._notify(batch)

    async def _notify(self, batch: list[Notification]) -> None:
        """Consecutive notifications: one call if the handlers take batches, else one each."""
        many = getattr(self._handlers, "on_notifications", None)
        if many is not None:
            await many(batch)
            return
        for notification in batch:
            await self._handlers.on_notification(notification)

    def _resolve(self, response: Response | ErrorResponse) -> None:
        waiter = self._waiters.pop(response.id, None) if response.id is not None else None
        if waiter is None:
            return
        if isinstance(response, Response):
            waiter.result = response.result
        else:
            waiter.error = self._handlers.error(waiter.method, response)
        waiter.done.set()

    def close(self, reason: str) -> None:
        """The connection is gone: every request still waiting fails with TransportClosed."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self.connection.close_pending()
        for waiter in self._waiters.values():
            waiter.error = TransportClosed(
                f"connection closed ({reason}) before {waiter.method} was answered"
            )
            waiter.done.set()
        self._waiters.clear()

    # ---- sending ---------------------------------------------------------------------------

    async def _send(self, data: bytes | str) -> None:
        if self.closed_reason is not None:
            raise TransportClosed(f"the connection is closed ({self.closed_reason})")
        try:
            await self._write(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise TransportClosed(f"could not write: {exc}") from exc

    async def request(
        self, method: str, params: JsonObject | None = None, *, timeout_s: float | None = None
    ) -> Any:
        """Send a request and wait for its result (``timeout_s``: default the peer's own).

        Raises the handlers' error for an error answer, their timeout error when no answer
        comes in time, :class:`TransportClosed` if the connection ends first.
        """
        conn = self.connection
        data: bytes | str
        if self._framed:
            request_id, data = conn.send_request_frame(method, params or {})
        else:
            request_id, data = conn.send_request(method, params or {})
        waiter = _Waiter(method)
        self._waiters[request_id] = waiter
        limit = timeout_s if timeout_s is not None else self.request_timeout_s
        try:
            await self._send(data)
            with trio.move_on_after(limit if limit is not None else float("inf")):
                await waiter.done.wait()
        finally:
            if self._waiters.pop(request_id, None) is not None:
                conn.forget(request_id)
        if not waiter.done.is_set():
            assert limit is not None
            raise self._handlers.timeout(method, limit)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def notify(self, method: str, params: JsonObject | None = None) -> None:
        conn = self.connection
        if self._framed:
            await self._send(conn.send_notification_frame(method, params or {}))
        else:
            await self._send(conn.send_notification(method, params or {}))

    def encode_response(self, request_id: RequestId, result: Any) -> bytes | str:
        """The encoded answer to ``request_id`` (raises LocalProtocolError if unencodable)."""
        conn = self.connection
        if self._framed:
            return conn.send_response_frame(request_id, result)
        return conn.send_response(request_id, result)

    def encode_error(
        self, request_id: RequestId | None, code: int, message: str, data: Any = None
    ) -> bytes | str:
        """The encoded error answer; a message that cannot be encoded is made encodable."""
        conn = self.connection
        send = conn.send_error_frame if self._framed else conn.send_error
        try:
            return send(request_id, code, message, data)
        except LocalProtocolError:
            return send(request_id, code, message.encode(errors="replace").decode())

    async def respond(self, request_id: RequestId, result: Any) -> None:
        """Answer a request of the other side."""
        await self._send(self.encode_response(request_id, result))

    async def respond_error(
        self, request_id: RequestId | None, code: int, message: str, data: Any = None
    ) -> None:
        """Answer a request of the other side with a JSON-RPC error."""
        await self._send(self.encode_error(request_id, code, message, data))
