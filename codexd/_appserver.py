"""The app-server client: requests with timeouts, a reader that only routes, and the handshake.

:class:`AppServerClient` drives a :class:`codexd._peer.Peer` over a
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
import re
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ._errors import AppServerError, AppServerTimeout, CodexdError
from ._jsonrpc import Connection
from ._messages import (
    SERVER_OVERLOADED,
    ErrorResponse,
    JsonObject,
    Notification,
    ProtocolIssue,
    Request,
)
from ._peer import Peer
from ._transport import Transport
from ._version import __version__

#: The Codex version inside ``initialize``'s userAgent: ``codexd/0.163.0 (Debian ...) ...``.
_VERSION_RE = re.compile(r"/(\d+)\.(\d+)\.(\d+)((?:-[0-9A-Za-z.]+)?) \(")

Version = tuple[int, int, int]

#: The oldest Codex whose ``thread/resume``/``thread/fork`` take ``excludeTurns`` without the
#: experimental API, and whose ``thread/revert`` replaces ``thread/rollback`` (0.149 differs).
PAGINATED_SINCE: Version = (0, 153, 0)


def parse_codex_version(user_agent: str | None) -> tuple[Version | None, str | None]:
    """``(0, 163, 0), "0.163.0"`` from a userAgent; ``(None, None)`` if it holds none."""
    match = _VERSION_RE.search(user_agent or "")
    if match is None:
        return None, None
    major, minor, patch, suffix = match.groups()
    version = (int(major), int(minor), int(patch))
    return version, f"{major}.{minor}.{patch}{suffix}"


@attrs.frozen
class CloseInfo:
    """Why and how the connection ended (for the ``app-server.transport.closed`` diagnostics)."""

    source: str
    message: str
    trailing_bytes: int = 0
    trailing_preview: str = ""


OnNotification = Callable[[Notification], Awaitable[None]]
OnNotifications = Callable[[list[Notification]], Awaitable[None]]
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
        experimental_api: bool = False,
        on_notifications: OnNotifications | None = None,
    ) -> None:
        self.transport = transport
        self._on_notification = on_notification
        self._on_notifications = on_notifications
        self._on_server_request = on_server_request
        self._on_issue = on_issue
        self._overload_retries = overload_retries
        self.peer = Peer(
            Connection(max_line_bytes=max_line_bytes),
            transport.send,
            self,
            framed=transport.framed,
            request_timeout_s=request_timeout_s,
        )
        self.closed = trio.Event()
        self.close_info: CloseInfo | None = None
        self.initialize_result: JsonObject | None = None
        self.experimental_api = experimental_api
        #: The server's Codex version (from ``initialize``), ``None`` if it did not say.
        self.codex_version: Version | None = None
        self.codex_version_text: str | None = None

    # ---- the peer's handlers ----------------------------------------------------------------

    def on_request(self, request: Request) -> None:
        self._on_server_request(self, request)

    async def on_notification(self, notification: Notification) -> None:
        await self._on_notification(notification)

    async def on_notifications(self, notifications: list[Notification]) -> None:
        """The notifications of one read (a stdout chunk), in order, in one call."""
        if self._on_notifications is not None:
            await self._on_notifications(notifications)
            return
        for notification in notifications:
            await self._on_notification(notification)

    async def on_issue(self, issue: ProtocolIssue) -> None:
        await self._on_issue(issue)

    def error(self, method: str, response: ErrorResponse) -> CodexdError:
        return AppServerError(method, response.code, response.message, response.data)

    def timeout(self, method: str, seconds: float) -> CodexdError:
        return AppServerTimeout(f"app-server did not answer {method} within {seconds:g}s")

    # ---- the reader ----------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> CloseInfo:
        """Read until the transport ends, routing every message; returns why it ended."""
        task_status.started()
        try:
            async for data in self.transport.receive():
                await self.peer.receive(data)
            trailing = await self.peer.receive_eof()
            info = CloseInfo(
                source=self.transport.close_reason or "eof",
                message="the app-server closed the connection",
                trailing_bytes=trailing.size if trailing is not None else 0,
                trailing_preview=trailing.preview if trailing is not None else "",
            )
        except trio.Cancelled:
            self._close(CloseInfo(source="local", message="codexd closed the connection"))
            raise
        self._close(info)
        return info

    def _close(self, info: CloseInfo) -> None:
        if self.closed.is_set():
            return
        self.close_info = info
        self.peer.close(f"app-server connection closed ({info.source})")
        self.closed.set()

    # ---- sending -------------------------------------------------------------------------

    async def request(
        self, method: str, params: JsonObject | None = None, *, timeout_s: float | None = None
    ) -> Any:
        """Send a request and wait for its result.

        Raises :class:`AppServerError` for an error answer, :class:`AppServerTimeout` when no
        answer comes within ``timeout_s`` (default: the client's), :class:`TransportClosed` if
        the connection ends first. Overload errors (-32001) are retried with jittered backoff.
        Cancelling the caller forgets the request; a late answer is then ignored.
        """
        delay = 0.05
        for attempt in range(self._overload_retries + 1):
            try:
                return await self.peer.request(method, params or {}, timeout_s=timeout_s)
            except AppServerError as exc:
                if exc.rpc_code != SERVER_OVERLOADED or attempt == self._overload_retries:
                    raise
            await trio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def notify(self, method: str, params: JsonObject | None = None) -> None:
        await self.peer.notify(method, params)

    async def respond(self, request_id: int | str, result: Any) -> None:
        """Answer a server request."""
        await self.peer.respond(request_id, result)

    async def respond_error(self, request_id: int | str, code: int, message: str) -> None:
        """Answer a server request with a JSON-RPC error."""
        await self.peer.respond_error(request_id, code, message)

    async def initialize(self) -> JsonObject:
        """The handshake: ``initialize`` (clientInfo codexd/version), then ``initialized``.

        Opts in to the experimental API when configured, and learns the server's Codex version
        from the userAgent (features differ by version; see :meth:`paginated`).
        """
        params: JsonObject = {
            "clientInfo": {
                "name": "codexd",
                "title": "codexd local supervisor",
                "version": __version__,
            }
        }
        if self.experimental_api:
            params["capabilities"] = {"experimentalApi": True}
        result = await self.request("initialize", params)
        await self.notify("initialized", {})
        self.initialize_result = result if isinstance(result, dict) else {}
        agent = self.initialize_result.get("userAgent")
        self.codex_version, self.codex_version_text = parse_codex_version(
            agent if isinstance(agent, str) else None
        )
        return self.initialize_result

    @property
    def paginated(self) -> bool:
        """Whether the server has paginated threads (0.153+; unknown versions count as new)."""
        return self.codex_version is None or self.codex_version >= PAGINATED_SINCE

    @property
    def exclude_turns_ok(self) -> bool:
        """``excludeTurns`` on resume/fork: stable since 0.153, experimental before."""
        return self.paginated or self.experimental_api

    def resume_params(self, thread_id: str, settings: JsonObject) -> JsonObject:
        """``thread/resume`` params: without old turns where the server allows it."""
        params: JsonObject = {"threadId": thread_id, **settings}
        if self.exclude_turns_ok:
            params["excludeTurns"] = True
        return params

    async def aclose(self) -> None:
        await self.transport.aclose()
