"""A client of the local API, used by the CLI and usable by any Trio program.

It finds a running daemon through ``<state_dir>/api.json`` and ``<state_dir>/api-token``::

    async with open_client(state_dir) as client:
        status = await client.call("daemon/status")
        async for event in client.subscribe(since=0):
            ...
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
import trio_websocket

from ._groups import unwrap_single
from .jsonrpc import Connection, ErrorResponse, Notification, Response


class ApiError(Exception):
    """The daemon answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class DaemonUnreachable(Exception):
    """No daemon answers at the address in ``api.json`` (or there is no ``api.json``)."""


@attrs.define
class _Waiter:
    done: trio.Event = attrs.field(factory=trio.Event)
    result: Any = None
    error: ApiError | None = None


class ApiClient:
    """One authenticated WebSocket connection to the daemon."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._rpc = Connection(strict=True, emit_jsonrpc_field=True)
        self._waiters: dict[int | str, _Waiter] = {}
        self._events: dict[str, trio.MemorySendChannel[Any]] = {}
        self._lock = trio.Lock()
        self.closed_reason: str | None = None

    async def _reader(self) -> None:
        try:
            while True:
                text = await self._ws.get_message()
                self._rpc.receive_message_text(text)
                for msg in self._rpc.events():
                    self._route(msg)
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            self.closed_reason = f"{reason.code} {reason.reason or ''}" if reason else "closed"
        for waiter in self._waiters.values():
            waiter.error = ApiError(-32000, f"connection closed ({self.closed_reason})")
            waiter.done.set()
        for channel in self._events.values():
            channel.close()

    def _route(self, msg: Any) -> None:
        if isinstance(msg, Response | ErrorResponse) and msg.id is not None:
            waiter = self._waiters.pop(msg.id, None)
            if waiter is None:
                return
            if isinstance(msg, Response):
                waiter.result = msg.result
            else:
                field = msg.data.get("field") if isinstance(msg.data, dict) else None
                waiter.error = ApiError(msg.code, msg.message, field)
            waiter.done.set()
        elif isinstance(msg, Notification) and isinstance(msg.params, dict):
            sub_id = msg.params.get("subscriptionId")
            channel = self._events.get(sub_id) if isinstance(sub_id, str) else None
            if channel is None:
                return
            if msg.method == "event":
                channel.send_nowait(msg.params["event"])
            elif msg.method == "events/dropped":
                channel.send_nowait({"dropped": True, **msg.params})

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call a method; raises :class:`ApiError` with the daemon's code and message."""
        request_id, data = self._rpc.send_request(method, params or {})
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        try:
            async with self._lock:
                await self._ws.send_message(data.decode().rstrip("\n"))
        except trio_websocket.ConnectionClosed as exc:
            self._waiters.pop(request_id, None)
            raise DaemonUnreachable(f"the connection to the daemon was lost: {exc}") from None
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def subscribe(
        self,
        since: int | None = None,
        *,
        type_prefix: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events (as camelCase dicts); a ``{"dropped": True, "lastSeq": N}`` item if dropped."""
        send, receive = trio.open_memory_channel[Any](float("inf"))
        params: dict[str, Any] = {
            "since": since,
            "type": type_prefix,
            "sessionId": session_id,
            "runId": run_id,
        }
        result = await self.call(
            "events/subscribe", {k: v for k, v in params.items() if v is not None}
        )
        self._events[result["subscriptionId"]] = send
        async with receive:
            async for event in receive:
                yield event


def read_api_info(state_dir: Path) -> tuple[str, str]:
    """``(url, token)`` of the daemon using ``state_dir``; raises DaemonUnreachable if none."""
    try:
        info = json.loads((state_dir / "api.json").read_text())
        token = (state_dir / "api-token").read_text().strip()
    except FileNotFoundError as exc:
        raise DaemonUnreachable(
            f"no running daemon found in {state_dir} (missing {Path(exc.filename).name});"
            " start one with `codexd serve`"
        ) from None
    return str(info["url"]), token


@asynccontextmanager
async def open_client(
    state_dir: Path | None = None, *, url: str | None = None, token: str | None = None
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
                if url.startswith("unix://"):
                    stream = await trio.open_unix_socket(url[len("unix://") :])
                    ws = await trio_websocket.wrap_client_stream(
                        nursery, stream, "localhost", "/", extra_headers=headers
                    )
                else:
                    ws = await trio_websocket.connect_websocket_url(
                        nursery, url, extra_headers=headers
                    )
            except (OSError, trio_websocket.HandshakeError) as exc:
                raise DaemonUnreachable(f"cannot reach the daemon at {url}: {exc}") from None
            client = ApiClient(ws)
            nursery.start_soon(client._reader)
            try:
                yield client
            finally:
                await ws.aclose()
                nursery.cancel_scope.cancel()
