"""The app-server client: requests with timeouts, a reader that only routes, and the handshake.

:class:`AppServerClient` drives a sans-IO :class:`codexd._jsonrpc.Connection` over a
:class:`codexd._transport.Transport`. Its reader task (:meth:`AppServerClient.run`) never waits on
a human or a slow handler: responses wake their waiting requests, notifications go to the
``on_notification`` callback (which only queues them), server requests go to
``on_server_request`` (which spawns a handler task), protocol garbage to ``on_issue``.

Every request has a timeout, because the Codex app-server drops a malformed line silently and a
lost request would otherwise wait forever. ``-32001 Server overloaded`` is retried with
exponential backoff and jitter. ``params`` is always sent (at least ``{}``): the server rejects
a missing or null ``params``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ._errors import AppServerError, AppServerTimeout, TransportClosed
from ._jsonrpc import Connection
from ._messages import (
    NEED_DATA,
    SERVER_OVERLOADED,
    ErrorResponse,
    LateResponse,
    Notification,
    ProtocolIssue,
    Request,
    Response,
)
from ._transport import Transport
from ._version import __version__

JsonObject = dict[str, Any]


@attrs.frozen
class CloseInfo:
    """Why and how the connection ended (for the ``app-server.transport.closed`` diagnostics)."""

    source: str
    message: str
    trailing_bytes: int = 0
    trailing_preview: str = ""


@attrs.define
class _Waiter:
    method: str
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


OnNotification = Callable[[Notification], Awaitable[None]]
OnServerRequest = Callable[["AppServerClient", Request], None]
OnIssue = Callable[[ProtocolIssue], Awaitable[None]]


class AppServerClient:
    """One connection to an app-server (one child incarnation or one WebSocket session)."""

    def __init__(
        self,
        transport: Transport,
        *,
        request_timeout_s: float,
        on_notification: OnNotification,
        on_server_request: OnServerRequest,
        on_issue: OnIssue,
        max_line_bytes: int = 64 * 1024 * 1024,
        overload_retries: int = 6,
    ) -> None:
        self.transport = transport
        self.request_timeout_s = request_timeout_s
        self._on_notification = on_notification
        self._on_server_request = on_server_request
        self._on_issue = on_issue
        self._conn = Connection(max_line_bytes=max_line_bytes)
        self._waiters: dict[int | str, _Waiter] = {}
        self._overload_retries = overload_retries
        self.closed = trio.Event()
        self.close_info: CloseInfo | None = None
        self.initialize_result: JsonObject | None = None

    # ---- the reader ----------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> CloseInfo:
        """Read until the transport ends, routing every message; returns why it ended."""
        task_status.started()
        conn = self._conn
        try:
            async for data in self.transport.receive():
                if isinstance(data, str):
                    conn.receive_message_text(data)
                else:
                    conn.receive_data(data)
                while True:
                    event = conn.next_event()
                    if event is NEED_DATA:
                        break
                    await self._route(event)
            trailing = conn.receive_eof()
            info = CloseInfo(
                source=self.transport.close_reason or "eof",
                message="the app-server closed the connection",
                trailing_bytes=trailing.size if trailing is not None else 0,
                trailing_preview=trailing.preview if trailing is not None else "",
            )
        except trio.Cancelled:
            info = CloseInfo(source="local", message="codexd closed the connection")
            self._close(info)
            raise
        self._close(info)
        return info

    def _close(self, info: CloseInfo) -> None:
        if self.closed.is_set():
            return
        self.close_info = info
        for waiter in self._waiters.values():
            waiter.error = TransportClosed(
                f"app-server connection closed ({info.source}) before {waiter.method} was answered"
            )
            waiter.done.set()
        self._waiters.clear()
        self.closed.set()

    async def _route(self, event: Any) -> None:
        if isinstance(event, Notification):
            await self._on_notification(event)
        elif isinstance(event, Response | ErrorResponse):
            waiter = self._waiters.pop(event.id, None) if event.id is not None else None
            if waiter is None:
                return
            if isinstance(event, Response):
                waiter.result = event.result
            else:
                waiter.error = AppServerError(waiter.method, event.code, event.message, event.data)
            waiter.done.set()
        elif isinstance(event, Request):
            self._on_server_request(self, event)
        elif isinstance(event, ProtocolIssue):
            await self._on_issue(event)
        elif isinstance(event, LateResponse):
            # The peer was merely slow: keep a trace for diagnostics, nothing waits for it.
            late = event.message
            await self._on_issue(
                ProtocolIssue(
                    "late-response",
                    f"{late.method or 'a request'} answered after its timeout",
                    None,
                    0,
                    "",
                )
            )

    # ---- sending -------------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise TransportClosed("the app-server connection is closed")
        try:
            await self.transport.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise TransportClosed(f"could not write to the app-server: {exc}") from exc

    async def request(
        self, method: str, params: JsonObject | None = None, *, timeout_s: float | None = None
    ) -> Any:
        """Send a request and wait for its result.

        Raises :class:`AppServerError` for an error answer, :class:`AppServerTimeout` when no answer
        comes within ``timeout_s`` (default: the client's), :class:`TransportClosed` if the
        connection ends first. Overload errors (-32001) are retried with jittered backoff.
        Cancelling the caller forgets the request; a late answer is then ignored.
        """
        delay = 0.05
        for attempt in range(self._overload_retries + 1):
            try:
                return await self._request_once(method, params or {}, timeout_s)
            except AppServerError as exc:
                if exc.rpc_code != SERVER_OVERLOADED or attempt == self._overload_retries:
                    raise
            await trio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request_once(self, method: str, params: JsonObject, timeout_s: float | None) -> Any:
        request_id, data = self._conn.send_request(method, params)
        waiter = _Waiter(method)
        self._waiters[request_id] = waiter
        try:
            await self._send(data)
            with trio.move_on_after(timeout_s or self.request_timeout_s):
                await waiter.done.wait()
            if not waiter.done.is_set():
                raise AppServerTimeout(
                    f"app-server did not answer {method} within"
                    f" {timeout_s or self.request_timeout_s:g}s"
                )
        finally:
            if self._waiters.pop(request_id, None) is not None:
                self._conn.forget(request_id)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def notify(self, method: str, params: JsonObject | None = None) -> None:
        await self._send(self._conn.send_notification(method, params or {}))

    async def respond(self, request_id: int | str, result: Any) -> None:
        """Answer a server request."""
        await self._send(self._conn.send_response(request_id, result))

    async def respond_error(self, request_id: int | str, code: int, message: str) -> None:
        """Answer a server request with a JSON-RPC error."""
        await self._send(self._conn.send_error(request_id, code, message))

    async def initialize(self) -> JsonObject:
        """The handshake: ``initialize`` (clientInfo codexd/version), then ``initialized``."""
        result = await self.request(
            "initialize",
            {
                "clientInfo": {
                    "name": "codexd",
                    "title": "codexd local supervisor",
                    "version": __version__,
                }
            },
        )
        await self.notify("initialized", {})
        self.initialize_result = result if isinstance(result, dict) else {}
        return self.initialize_result

    async def aclose(self) -> None:
        await self.transport.aclose()
