"""Thin Trio transports that carry app-server JSON-RPC bytes: child stdio, WebSocket, unix socket.

A transport only moves data; framing and classification live in :mod:`codexd._jsonrpc`.
Stdio yields raw chunks (newline-delimited JSON, split anywhere); WebSocket yields whole text
messages (one JSON message per frame). Both end their iteration when the peer goes away, and
say why in :attr:`Transport.close_reason`.
"""

from __future__ import annotations

import abc
import contextlib
import urllib.parse
from collections.abc import AsyncIterator

import trio
import trio_websocket

#: Chunks of child stdout buffered between the pump and the reader (back-pressure beyond).
STDIO_CHUNKS_BUFFERED = 16


class Transport(abc.ABC):
    """A bidirectional carrier of JSON-RPC data."""

    #: True when every received item is one complete message (WebSocket frames).
    framed: bool = False
    #: Why the transport closed (``eof``, ``websocket-closed: 1006 ...``, ``local``), once closed.
    close_reason: str | None = None

    @abc.abstractmethod
    async def send(self, data: bytes | str) -> None:
        """Send one encoded message: a line of bytes (stdio) or a text frame (framed)."""

    @abc.abstractmethod
    def receive(self) -> AsyncIterator[bytes | str]:
        """Chunks (stdio) or messages (framed) until the peer closes."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close our side; pending receives end."""


class StdioTransport(Transport):
    """The stdin/stdout pipes of a spawned app-server child.

    The child's stdout pump calls :meth:`feed` with each chunk (``b""`` at EOF); a bounded
    channel between them turns a slow reader into back-pressure on the child instead of memory.
    """

    framed = False

    def __init__(self) -> None:
        self._send_chunk, self._chunks = trio.open_memory_channel[bytes](STDIO_CHUNKS_BUFFERED)
        self._stdin: trio.abc.SendStream | None = None
        self._write_lock = trio.Lock()

    def attach_stdin(self, stdin: trio.abc.SendStream) -> None:
        self._stdin = stdin

    async def feed(self, chunk: bytes) -> None:
        """Called by the stdout pump; ``b""`` means EOF."""
        if not chunk:
            self.close_reason = self.close_reason or "eof"
            self._send_chunk.close()
            return
        # If the reader is gone (shutting down), keep draining so the child never blocks.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await self._send_chunk.send(chunk)

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if self._stdin is None:
            raise trio.BrokenResourceError("child stdin is not attached")
        async with self._write_lock:
            await self._stdin.send_all(data)

    async def receive(self) -> AsyncIterator[bytes | str]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self.close_reason = self.close_reason or "local"
        if self._stdin is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._stdin.aclose()
        self._send_chunk.close()


def websocket_url(endpoint: str) -> str:
    """Map an external endpoint to a WebSocket URL: http(s) becomes ws(s); ws(s) is kept."""
    parsed = urllib.parse.urlsplit(endpoint)
    scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(
            f"unsupported app-server endpoint {endpoint!r}: use ws://, wss://, http(s):// or unix://"
        )
    return urllib.parse.urlunsplit((scheme, *parsed[1:]))


class WebSocketTransport(Transport):
    """A trio-websocket client connection (``ws://``, ``wss://`` or a ``unix://`` socket)."""

    framed = True

    def __init__(self, connection: trio_websocket.WebSocketConnection) -> None:
        self._ws = connection

    @classmethod
    async def connect(
        cls,
        nursery: trio.Nursery,
        endpoint: str,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> WebSocketTransport:
        """Open a connection to ``endpoint``; raises ``OSError`` or a handshake error."""
        extra = headers or []
        if endpoint.startswith("unix://"):
            path = endpoint[len("unix://") :]
            stream = await trio.open_unix_socket(path)
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "localhost", "/", extra_headers=extra
            )
            return cls(ws)
        url = websocket_url(endpoint)
        ws = await trio_websocket.connect_websocket_url(nursery, url, extra_headers=extra)
        return cls(ws)

    async def send(self, data: bytes | str) -> None:
        text = data if isinstance(data, str) else data.rstrip(b"\n").decode("utf-8")
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise trio.BrokenResourceError(f"websocket closed: {exc.reason}") from exc

    async def receive(self) -> AsyncIterator[bytes | str]:
        while True:
            try:
                message = await self._ws.get_message()
            except trio_websocket.ConnectionClosed as exc:
                reason = exc.reason
                self.close_reason = (
                    f"websocket-closed: {reason.code} {reason.name} {reason.reason or ''}".strip()
                    if reason is not None
                    else "websocket-closed"
                )
                return
            yield message

    async def ping(self, timeout_s: float) -> bool:
        """True if the server answered a ping within ``timeout_s``."""
        with trio.move_on_after(timeout_s):
            try:
                await self._ws.ping()
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                return False
            return True
        return False

    async def aclose(self) -> None:
        self.close_reason = self.close_reason or "local"
        await self._ws.aclose()
