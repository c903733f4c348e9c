"""A client of the local API, used by the CLI and usable by any Trio program.

It finds a running daemon through ``<state_dir>/api.json`` and ``<state_dir>/api-token``::

    async with open_client(state_dir) as client:
        status = await client.call("daemon/status")
        async for event in client.subscribe(since=0):
            ...

Every call has a timeout (``default_timeout`` unless given); waiting methods (``turn/wait``,
``run/wait``) get their own ``timeoutS`` plus a margin. Event notifications are buffered per
subscription up to a bound; one that overflows ends with a ``{"dropped": True, ...}`` item, as
when the daemon drops a lagging subscriber, and the caller resubscribes with ``since``.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import trio
import trio_websocket

from ._errors import ApiError, CallTimeout, CodexdError, DaemonUnreachable, TransportClosed
from ._groups import unwrap_single
from ._jsonrpc import Connection
from ._messages import ErrorResponse, Notification, ProtocolIssue, Request
from ._peer import Peer

__all__ = [
    "ApiClient",
    "ApiError",
    "CallTimeout",
    "DaemonUnreachable",
    "RawSubscription",
    "open_client",
    "read_api_info",
]

#: Seconds a call waits for its answer unless told otherwise.
DEFAULT_TIMEOUT_S = 60.0
#: Events buffered per subscription before it counts as dropped.
SUBSCRIPTION_BUFFER = 10_000
#: Largest answer accepted (a status with many large recent events can pass a megabyte).
MAX_ANSWER_BYTES = 256 * 1024 * 1024
#: Notifications kept for a subscription id whose reply has not arrived yet.
EARLY_BUFFER = 1_000


class _Unset(enum.Enum):
    UNSET = "unset"


_UNSET = _Unset.UNSET


class ApiClient:
    """One authenticated WebSocket connection to the daemon."""

    def __init__(
        self, ws: trio_websocket.WebSocketConnection, *, default_timeout: float | None
    ) -> None:
        self._ws = ws
        self._lock = trio.Lock()
        self.peer = Peer(
            Connection(strict=True, emit_jsonrpc_field=True),
            self._write,
            self,
            framed=True,
            request_timeout_s=None,
        )
        self._events: dict[str, _Sink] = {}
        # Notifications that arrived before the reply naming their subscription (older
        # daemons stream before they reply): kept, bounded, until the reply claims them.
        self._early: dict[str, deque[Any]] = {}
        #: Subscriptions this client ended (bounded: the most recent ones).
        self._finished: deque[str] = deque(maxlen=1024)
        self.default_timeout = default_timeout
        self.closed_reason: str | None = None

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed (or its closing handshake has begun)."""
        return self.closed_reason is not None or self._ws.closed is not None

    async def _write(self, data: bytes | str) -> None:
        text = data if isinstance(data, str) else data.decode()
        try:
            async with self._lock:
                await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise trio.BrokenResourceError(f"the connection to the daemon was lost: {exc}") from exc

    async def _reader(self) -> None:
        try:
            while True:
                await self.peer.receive(await self._ws.get_message())
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            self.closed_reason = f"{reason.code} {reason.reason or ''}" if reason else "closed"
        finally:
            # Also when cancelled (the connection is being closed): nothing waits forever.
            self.closed_reason = self.closed_reason or "closed"
            self.peer.close(self.closed_reason)
            for sink in self._events.values():
                sink.send.close()

    # ---- the peer's handlers ----------------------------------------------------------------

    def on_request(self, request: Request) -> None:
        """The daemon sends no requests; JSON-RPC says to ignore what cannot be answered."""

    async def on_issue(self, issue: ProtocolIssue) -> None:
        """Garbage from the daemon: nothing a client can do about it."""

    def error(self, method: str, response: ErrorResponse) -> CodexdError:
        data = response.data
        field = data.get("field") if isinstance(data, dict) else None
        return ApiError(response.code, response.message, field)

    def timeout(self, method: str, seconds: float) -> CodexdError:
        return CallTimeout(f"{method} got no answer within {seconds:g}s")

    async def on_notification(self, notification: Notification) -> None:
        params = notification.params
        sub_id = params.get("subscriptionId")
        if not isinstance(sub_id, str):
            return
        if notification.method == "event":
            item = params.get("event")
        elif notification.method == "events/dropped":
            item = {"dropped": True, **params}
        else:
            return
        sink = self._events.get(sub_id)
        if sink is None:
            if sub_id in self._finished:
                return  # on the wire when it was unsubscribed: nobody will ever read it
            if len(self._early) < 8 or sub_id in self._early:
                early = self._early.setdefault(sub_id, deque(maxlen=EARLY_BUFFER))
                early.append(item)
            return
        self._deliver(sub_id, sink, item)

    def _deliver(self, sub_id: str, sink: _Sink, item: Any) -> None:
        try:
            sink.send.send_nowait(item)
        except trio.WouldBlock:
            # The caller does not keep up: end its stream (it resumes from its last seq).
            self._events.pop(sub_id, None)
            sink.overflowed = True
            sink.send.close()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._events.pop(sub_id, None)  # the caller stopped iterating

    # ---- calls -------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | _Unset | None = _UNSET,
    ) -> Any:
        """Call a method; raises :class:`ApiError` with the daemon's code and message.

        ``timeout`` defaults to the client's ``default_timeout`` (plus the request's own
        ``timeoutS`` when it has one); ``None`` waits as long as it takes. Raises
        :class:`CallTimeout` when no answer comes in time, :class:`DaemonUnreachable` when the
        connection is lost.
        """
        if isinstance(timeout, _Unset):
            timeout = self.default_timeout
            wait = (params or {}).get("timeoutS")
            if timeout is not None and isinstance(wait, int | float):
                timeout += float(wait)
            elif method in ("turn/wait", "run/wait") and wait is None:
                timeout = None
        try:
            return await self.peer.request(
                method, params or {}, timeout_s=timeout if timeout is not None else float("inf")
            )
        except TransportClosed as exc:
            raise DaemonUnreachable(f"the connection to the daemon was lost: {exc}") from None

    async def open_subscription(
        self,
        since: int | None = None,
        *,
        type_prefix: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        buffer: int = SUBSCRIPTION_BUFFER,
    ) -> RawSubscription:
        """Subscribe and return the subscription's channel of raw items (camelCase dicts).

        The channel yields event dicts, then a ``{"dropped": True, "lastSeq": N, ...}`` item if
        the daemon dropped the subscription; it ends (``EndOfChannel``) when the connection
        closes, or at once if this client's own ``buffer`` overflowed (the caller did not keep
        up; :attr:`RawSubscription.overflowed` says so). Close it with
        :meth:`RawSubscription.aclose`.
        """
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        send, receive = trio.open_memory_channel[Any](buffer)
        params: dict[str, Any] = {
            "since": since,
            "type": type_prefix,
            "sessionId": session_id,
            "runId": run_id,
        }
        result = await self.call(
            "events/subscribe", {k: v for k, v in params.items() if v is not None}
        )
        sub_id = result["subscriptionId"]
        last_seq = result.get("lastSeq")
        sink = _Sink(send)
        self._events[sub_id] = sink
        for item in self._early.pop(sub_id, ()):
            self._deliver(sub_id, sink, item)
        if self.closed_reason is not None:
            send.close()  # the connection ended while we subscribed
        return RawSubscription(
            self, sub_id, last_seq if isinstance(last_seq, int) else None, sink, receive
        )

    async def subscribe(
        self,
        since: int | None = None,
        *,
        type_prefix: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        buffer: int = SUBSCRIPTION_BUFFER,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Events (as camelCase dicts); a ``{"dropped": True, "lastSeq": N}`` item if dropped.

        Leaving the loop early unsubscribes. (:func:`codexd.connect` offers typed events that
        resume by themselves.)
        """
        sub = await self.open_subscription(
            since, type_prefix=type_prefix, session_id=session_id, run_id=run_id, buffer=buffer
        )
        last = since or 0
        try:
            async with sub.receive:
                async for event in sub.receive:
                    if isinstance(event, dict) and isinstance(event.get("seq"), int):
                        last = event["seq"]
                    yield event
            if sub.overflowed:
                # Our own buffer overflowed (see _deliver): say so like the daemon would.
                yield {"dropped": True, "subscriptionId": sub.subscription_id, "lastSeq": last}
        finally:
            await sub.aclose()


@attrs.define(eq=False)
class _Sink:
    send: trio.MemorySendChannel[Any]
    overflowed: bool = False


@attrs.define(eq=False)
class RawSubscription:
    """One ``events/subscribe`` of an :class:`ApiClient`: its id and its channel of raw items."""

    client: ApiClient
    subscription_id: str
    #: The daemon's last committed seq when the subscription started.
    last_seq: int | None
    _sink: _Sink
    receive: trio.MemoryReceiveChannel[Any]

    @property
    def overflowed(self) -> bool:
        """True if this client's buffer overflowed and the channel was closed for it."""
        return self._sink.overflowed

    def detach(self) -> None:
        """Stop delivering at once; a task waiting on :attr:`receive` gets ClosedResourceError."""
        self.client._events.pop(self.subscription_id, None)
        self.client._early.pop(self.subscription_id, None)
        self.client._finished.append(self.subscription_id)
        self._sink.send.close()
        self.receive.close()

    async def aclose(self) -> None:
        """Stop delivering and unsubscribe (bounded; a lost connection needs nothing)."""
        self.detach()
        if self.client.closed_reason is None:
            with trio.CancelScope(shield=True), trio.move_on_after(2), suppress(CodexdError):
                await self.client.call(
                    "events/unsubscribe", {"subscriptionId": self.subscription_id}
                )


def read_api_info(state_dir: Path | str) -> tuple[str, str]:
    """``(url, token)`` of the daemon using ``state_dir``; raises DaemonUnreachable if none."""
    state_dir = Path(state_dir)
    try:
        info = json.loads((state_dir / "api.json").read_text())
        token = (state_dir / "api-token").read_text().strip()
    except FileNotFoundError as exc:
        raise DaemonUnreachable(
            f"no running daemon found in {state_dir} (missing {Path(exc.filename).name});"
            " start one with `codexd serve`"
        ) from None
    except (OSError, ValueError) as exc:
        raise DaemonUnreachable(f"cannot read the daemon's address in {state_dir}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        raise DaemonUnreachable(f"{state_dir / 'api.json'} does not name the daemon's url")
    return str(info["url"]), token


@asynccontextmanager
async def open_client(
    state_dir: Path | str | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    default_timeout: float | None = DEFAULT_TIMEOUT_S,
) -> AsyncIterator[ApiClient]:
    """Connect to the daemon (by ``state_dir``'s api.json, or an explicit url + token)."""
    if url is None or token is None:
        if state_dir is None:
            raise DaemonUnreachable("give a state_dir or a url and a token")
        url, token = read_api_info(state_dir)
    headers = [(b"Authorization", f"Bearer {token}".encode())]
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(default_timeout or float("inf")):
                    if url.startswith("unix://"):
                        stream = await trio.open_unix_socket(url[len("unix://") :])
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            "localhost",
                            "/",
                            extra_headers=headers,
                            max_message_size=MAX_ANSWER_BYTES,
                        )
                    else:
                        ws = await trio_websocket.connect_websocket_url(
                            nursery, url, extra_headers=headers, max_message_size=MAX_ANSWER_BYTES
                        )
            except (OSError, trio_websocket.HandshakeError, trio.TooSlowError) as exc:
                raise DaemonUnreachable(f"cannot reach the daemon at {url}: {exc}") from None
            client = ApiClient(ws, default_timeout=default_timeout)
            nursery.start_soon(client._reader)
            try:
                yield client
            finally:
                with trio.move_on_after(2):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
