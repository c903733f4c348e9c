"""The local control API: JSON-RPC 2.0 over WebSocket, on loopback TCP or a unix socket.

Every connection presents ``Authorization: Bearer <token>`` (``<state_dir>/api-token``, mode
0600), or the web console's session cookie together with the console's own ``Origin``; a
handshake with a foreign ``Origin`` is refused, so another web page cannot drive the daemon.
The same port serves the console's pages: a connection's first request head is read with h11,
and only a WebSocket upgrade reaches the API (:mod:`codexd._console`).
Messages are parsed by the sans-IO core (:mod:`codexd._jsonrpc`), params validated by their
records (:mod:`codexd._params`), and requests dispatched through the method table
(:mod:`codexd._methods`), each in its own task.

Containment by construction: each connection runs in a task of its own whose every exception
is caught, reported and ends that connection only; handshakes time out quickly; requests in
flight per connection are bounded (the daemon stops reading from a connection that has too
many); answers queue in a byte-bounded outbox drained by one writer task, and a client that
stops reading is disconnected instead of growing the daemon. See docs/api.md for the limits.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import urllib.parse
from collections import deque
from typing import TYPE_CHECKING, Any

import trio
import trio_websocket

from ._console._auth import ConsoleAuth
from ._console._http import ConsoleHttp, PrefixStream, read_head
from ._errors import (
    CodexdError,
    InvalidRequest,
    LocalProtocolError,
    RelayedError,
    SubscriberOverflow,
)
from ._jsonrpc import Connection
from ._listeners import listen_on, load_or_create_token
from ._messages import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    ErrorResponse,
    Notification,
    ProtocolIssue,
    Request,
    rejection,
)
from ._methods import METHODS
from ._params import EventsSubscribeParams, EventsUnsubscribeParams, parse
from ._peer import Peer
from ._records import Subscribed, Unsubscribed, to_wire
from ._subscriptions import (
    EventFilter,
    Subscription,
    event_frames,
    event_payloads,
    frame_blob,
    raw_frames_supported,
    send_raw_frames,
)

if TYPE_CHECKING:
    from ._daemon import Daemon

#: Largest API message accepted; a larger one closes the connection with 1009.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: Seconds a client has to complete its WebSocket handshake (or its one console HTTP request).
HANDSHAKE_TIMEOUT_S = 5.0
#: Handshakes under way at once; a new connection beyond this evicts the oldest handshake, so
#: silent connections can delay nobody for long.
MAX_PENDING_HANDSHAKES = 64
#: Requests of one connection being served at once; beyond, the daemon stops reading it.
MAX_IN_FLIGHT = 32
#: Answers and events waiting to be written to one connection; beyond, it is closed (4009).
OUTBOX_LIMIT_BYTES = 16 * 1024 * 1024
#: Event frames a subscription may queue ahead of the writer; the rest wait in its buffer.
STREAM_AHEAD = 256
#: Subscriptions one connection may hold.
MAX_SUBSCRIPTIONS = 32
#: Close code sent to a subscriber that fell behind.
CLOSE_LAGGING = 4008
#: Close code sent to a client that does not read what it asked for.
CLOSE_NOT_READING = 4009

# ---- one connection ---------------------------------------------------------------------------


class _Outbox:
    """Frames waiting for the writer, bounded in bytes (a client that does not read is cut off)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: deque[str | bytes] = deque()
        self._bytes = 0
        self._count = 0
        self._wake = trio.Event()
        self._drained = trio.Event()
        self.closed = False

    def __len__(self) -> int:
        """Frames queued (a blob of event frames counts each of them)."""
        return self._count

    async def wait_room(self, frames: int) -> None:
        """Until fewer than ``frames`` frames wait (a stream must not outrun the writer)."""
        while self._count >= frames and not self.closed:
            self._drained = trio.Event()
            await self._drained.wait()

    def put(self, frame: str | bytes, *, force: bool = False, frames: int = 1) -> bool:
        """Queue ``frame``; False if the outbox is over its limit (``force`` ignores it)."""
        if self.closed:
            return False
        if not force and self._frames and self._bytes + len(frame) > self.limit:
            return False
        self._frames.append(frame)
        self._count += frames
        self._bytes += len(frame)
        self._wake.set()
        return True

    async def take_all(self) -> list[str | bytes]:
        """Everything queued, waiting for at least one frame."""
        while not self._frames:
            if self.closed:
                raise trio.EndOfChannel
            self._wake = trio.Event()
            await self._wake.wait()
        frames = list(self._frames)
        self._frames.clear()
        self._count = 0
        self._bytes = 0
        self._drained.set()
        return frames

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._drained.set()


class _ApiConnection:
    """One authenticated client: its requests, its subscriptions, its one writer."""

    def __init__(self, server: ApiServer, ws: trio_websocket.WebSocketConnection) -> None:
        self.server = server
        self.daemon = server.daemon
        self.ws = ws
        self.peer = Peer(
            Connection(strict=True, emit_jsonrpc_field=True, max_line_bytes=MAX_MESSAGE_BYTES),
            self._write,
            self,
            framed=True,
            request_timeout_s=None,
        )
        self.outbox = _Outbox(OUTBOX_LIMIT_BYTES)
        self._slots = trio.Semaphore(MAX_IN_FLIGHT)
        self._subscriptions: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._writer_done = trio.Event()
        self._request_started = False

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._writer)
            try:
                while True:
                    # Back-pressure: with MAX_IN_FLIGHT requests being served, stop reading.
                    await self._slots.acquire()
                    self._request_started = False
                    await self.peer.receive(await self.ws.get_message())
                    if not self._request_started:
                        self._slots.release()  # a request's slot is released when answered
            except trio_websocket.ConnectionClosed:
                pass
            finally:
                self.outbox.close()
                nursery.cancel_scope.cancel()

    async def _writer(self) -> None:
        # Raw frames: everything queued (answers, and each subscription's batches of event
        # frames spliced from the stored lines) leaves in ONE write.
        raw = raw_frames_supported(self.ws)
        try:
            while True:
                frames = await self.outbox.take_all()
                if raw:
                    await send_raw_frames(self.ws, frame_blob(frames))
                    continue
                for frame in frames:
                    await self.ws.send_message(frame)
        except (trio.EndOfChannel, trio_websocket.ConnectionClosed, trio.BrokenResourceError):
            pass
        finally:
            self._writer_done.set()

    async def _write(self, frame: bytes | str) -> None:
        self._queue(frame if isinstance(frame, str) else frame.decode())

    def _queue(self, frame: str, *, force: bool = False) -> None:
        if not self.outbox.put(frame, force=force):
            self._overflow(CLOSE_NOT_READING, "the client does not read its answers")

    def _overflow(self, code: int, reason: str) -> None:
        """Too much unread: close this connection (bounded), keep the daemon's memory flat."""
        self.outbox.close()
        if self._nursery is not None:
            self._nursery.start_soon(self._close, code, reason)

    async def _close(self, code: int, reason: str) -> None:
        with trio.move_on_after(1), contextlib.suppress(Exception):
            await self._writer_done.wait()  # what was queued (an events/dropped) goes first
            await self.ws.aclose(code, reason)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # ---- the peer's handlers ----------------------------------------------------------------

    def on_request(self, request: Request) -> None:
        assert self._nursery is not None
        self._request_started = True
        self._nursery.start_soon(self._handle, request)

    async def on_notification(self, notification: Notification) -> None:
        """Clients have nothing to notify the daemon of; JSON-RPC says to ignore it."""

    async def on_issue(self, issue: ProtocolIssue) -> None:
        if issue.kind == "oversize":
            # Over 4 MiB of UTF-8 (the WebSocket layer counts characters): as documented, the
            # connection is closed with 1009, like a frame it refused itself.
            self._overflow(1009, "message too big")
            return
        answer = rejection(issue)
        if answer is not None:
            self._queue(json.dumps(answer))

    def error(self, method: str, response: ErrorResponse) -> CodexdError:
        raise AssertionError("the API server sends no requests")  # pragma: no cover

    def timeout(self, method: str, seconds: float) -> CodexdError:
        raise AssertionError("the API server sends no requests")  # pragma: no cover

    # ---- requests ----------------------------------------------------------------------------

    async def _handle(self, request: Request) -> None:
        try:
            frame = await self._answer(request)
            if frame is not None:
                self._queue(frame)
        finally:
            self._slots.release()

    async def _answer(self, request: Request) -> str | None:
        """The answer frame for ``request`` (``None`` if already queued); never raises."""
        try:
            method = METHODS.get(request.method)
            if method is None:
                return self._error_frame(
                    request, METHOD_NOT_FOUND, f"unknown method {request.method!r}"
                )
            params: Any = parse(method.params, request.params)
            if method.handler is not None:
                result = await method.handler(self.daemon, params)
            elif isinstance(params, EventsSubscribeParams):
                self._subscribe(request, params)
                return None
            else:
                assert isinstance(params, EventsUnsubscribeParams)
                result = self._unsubscribe(params)
            return str(self.peer.encode_response(request.id, to_wire(result)))
        except CodexdError as exc:
            data: Any = {"field": exc.field} if exc.field else None
            if isinstance(exc, RelayedError):
                data = exc.data  # the app-server's own error, passed through whole
            return self._error_frame(request, exc.code, exc.message, data)
        except LocalProtocolError as exc:  # a result that cannot be encoded: a bug of ours
            self.server.report(f"answer to {request.method}", exc)
            return self._error_frame(request, INTERNAL_ERROR, "internal error: unencodable result")
        except Exception as exc:  # a bug must cost this request only
            self.server.report(f"request {request.method}", exc)
            return self._error_frame(request, INTERNAL_ERROR, f"internal error: {exc!r}")

    def _error_frame(self, request: Request, code: int, message: str, data: Any = None) -> str:
        return str(self.peer.encode_error(request.id, code, message, data))

    def _subscribe(self, request: Request, params: EventsSubscribeParams) -> None:
        """Reply first, then stream: the reply is queued before any event of the stream."""
        if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            raise InvalidRequest(
                f"too many subscriptions on this connection (at most {MAX_SUBSCRIPTIONS})"
            )
        subscription = self.daemon.store.subscribe(
            params.since,
            event_filter=EventFilter(params.type, params.session_id, params.run_id),
            buffer=self.daemon.config.api.subscriber_buffer,
        )
        subscription_id = f"sub-{secrets.token_hex(4)}"
        reply = Subscribed(subscription_id, self.daemon.store.last_seq)
        self._queue(str(self.peer.encode_response(request.id, to_wire(reply))))
        scope = trio.CancelScope()
        self._subscriptions[subscription_id] = scope
        assert self._nursery is not None
        self._nursery.start_soon(self._stream, subscription, subscription_id, scope)

    def _unsubscribe(self, params: EventsUnsubscribeParams) -> Unsubscribed:
        scope = self._subscriptions.pop(params.subscription_id, None)
        if scope is not None:
            scope.cancel()
        return Unsubscribed(scope is not None)

    async def _stream(
        self, subscription: Subscription, subscription_id: str, scope: trio.CancelScope
    ) -> None:
        raw = raw_frames_supported(self.ws)
        with scope:
            try:
                while batch := await subscription.receive_batch(STREAM_AHEAD):
                    # All buffered events at once, their frames spliced from the stored lines.
                    if raw:
                        blob = event_frames(subscription_id, batch)
                        queued = self.outbox.put(blob, frames=len(batch))
                    else:
                        queued = all(
                            self.outbox.put(payload.decode())
                            for payload in event_payloads(subscription_id, batch)
                        )
                    if not queued:
                        raise SubscriberOverflow(batch[0][0].seq - 1)
                    if len(self.outbox) >= STREAM_AHEAD:
                        # The client is slower than the stream: let the subscription's own
                        # bounded buffer absorb it (and drop it when that overflows).
                        await self.outbox.wait_room(STREAM_AHEAD)
            except SubscriberOverflow as exc:
                dropped = {
                    "subscriptionId": subscription_id,
                    "lastSeq": exc.last_seq,
                    "reason": str(exc),
                }
                self.outbox.put(
                    self.peer.connection.send_notification_frame("events/dropped", dropped),
                    force=True,
                )
                self.outbox.close()
                await self._close(CLOSE_LAGGING, "subscriber fell behind; reconnect with since")
            finally:
                subscription.close()
                self._subscriptions.pop(subscription_id, None)


# ---- the server -------------------------------------------------------------------------------


class ApiServer:
    """Serves the API for one daemon; run :meth:`run` in the daemon's nursery."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.config = daemon.config.api
        self.token = b""
        self.url: str | None = None
        self._instance = secrets.token_hex(8)
        self._handshakes: dict[int, trio.CancelScope] = {}
        self._handshake_ids = 0
        #: Authenticated connections being served now.
        self.open_connections = 0
        self.failures = 0
        self._allowed_origins = {o.encode() for o in self.config.allowed_origins}
        #: The console's credentials (``None`` on a unix socket) and pages; set by :meth:`run`.
        self.console_auth: ConsoleAuth | None = None
        self.console = ConsoleHttp(None, {})

    def report(self, where: str, exc: BaseException) -> None:
        """A bug met while serving one connection or request: recorded, contained."""
        self.failures += 1
        self.daemon._task_failed(f"api {where}", exc)

    def refusal(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """Why a handshake with these headers is refused, or ``None``. Compares bytes only.

        A client presents the bearer token. Without an Authorization header, the console's
        session cookie is accepted instead, but only with the console's own Origin.
        """
        origins = [v for k, v in headers if k.lower() == b"origin"]
        auths = [v for k, v in headers if k.lower() == b"authorization"]
        if len(origins) > 1 or len(auths) > 1:
            return 400, "duplicated Origin or Authorization header"
        console = self.console_auth
        own = bool(origins) and console is not None and origins[0] in console.origins
        if origins and not own and origins[0] not in self._allowed_origins:
            return 403, "origin not allowed"
        if not auths and console is not None and console.has_session(headers):
            return None if own else (403, "a console session needs the console's own Origin")
        scheme, _, token = (auths[0] if auths else b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.token):
            return 401, "missing or wrong bearer token"
        return None

    async def _handshake(
        self, nursery: trio.Nursery, stream: trio.abc.Stream
    ) -> trio_websocket.WebSocketConnection | None:
        """Accept an authorized handshake (bounded in time); refuse anything else."""
        if len(self._handshakes) >= MAX_PENDING_HANDSHAKES:
            oldest = next(iter(self._handshakes))
            self._handshakes.pop(oldest).cancel()
        self._handshake_ids += 1
        key = self._handshake_ids
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as scope:
            self._handshakes[key] = scope
            try:
                head = await read_head(stream)
                if head is None:
                    return None
                if not head.is_upgrade:  # a page of the console
                    await self.console.serve(stream, head)
                    return None
                request = await trio_websocket.wrap_server_stream(
                    nursery,
                    PrefixStream(stream, head.raw),
                    message_queue_size=1,
                    max_message_size=MAX_MESSAGE_BYTES,
                )
                refused = self.refusal(request.headers)
                if refused is None:
                    return await request.accept()
                status, reason = refused
                await request.reject(status, body=reason.encode())
            finally:
                self._handshakes.pop(key, None)
        return None

    async def _connection(self, stream: trio.abc.Stream) -> None:
        """One connection, from handshake to close; nothing raised here leaves this task."""
        try:
            async with trio.open_nursery() as nursery:
                ws = await self._handshake(nursery, stream)
                if ws is not None:
                    self.open_connections += 1
                    try:
                        await _ApiConnection(self, ws).serve()
                    finally:
                        self.open_connections -= 1
                nursery.cancel_scope.cancel()
        except Exception as exc:
            if not isinstance(exc, trio_websocket.ConnectionClosed | trio.BrokenResourceError):
                self.report("connection", exc)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``task_status.started(url)`` once listening.

        Raises :class:`~codexd._errors.ListenError` (one line, naming the address) if the
        address cannot be used; nothing is listening then.
        """
        state_dir = self.daemon.config.state_path
        token, rotated = await trio.to_thread.run_sync(load_or_create_token, state_dir)
        self.token = token.encode()
        if rotated:
            await self.daemon.store.record(
                "api.token.rotated",
                f"Replaced the API token: {rotated}.",
                level="warn",
                detail={"reason": rotated},
            )
        listeners, url, unix = await listen_on(self.config.listen)
        try:
            files = await trio.to_thread.run_sync(ConsoleHttp.load_files)
            if unix is None:
                port = int(listeners[0].socket.getsockname()[1])
                host = urllib.parse.urlsplit(self.config.listen).hostname or "127.0.0.1"
                self.console_auth = ConsoleAuth(self.token, host, port)
            self.console = ConsoleHttp(self.console_auth, files)
            self.url = url
            await trio.to_thread.run_sync(self._write_api_json, url)
            try:
                task_status.started(url)
                await trio.serve_listeners(self._connection, listeners)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._remove_api_json)
        finally:
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    with contextlib.suppress(Exception):
                        await listener.aclose()
            if unix is not None:
                unix.remove_if_ours()

    def _write_api_json(self, url: str) -> None:
        path = self.daemon.config.state_path / "api.json"
        data = {
            "url": url,
            "pid": os.getpid(),
            "daemonId": self.daemon.store.daemon_id,
            "instance": self._instance,
        }
        if self.console_auth is not None:  # where `codexd console` sends a browser
            data["console"] = self.console_auth.base_url + "/console/"
        tmp = path.with_name(f"api.json.new-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

    def _remove_api_json(self) -> None:
        """Remove api.json, but only the one this server wrote."""
        path = self.daemon.config.state_path / "api.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("instance") == self._instance:
            with contextlib.suppress(OSError):
                path.unlink()
