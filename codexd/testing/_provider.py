"""A fake OpenAI Responses API model provider on 127.0.0.1, for running the real Codex offline.

The real Codex binary, pointed at :attr:`FakeModelProvider.base_url` (see
:func:`codexd.testing.write_codex_home`), POSTs ``/v1/responses`` and reads a server-sent-event
stream. Each POST takes the next scripted :class:`Reply` (or the default one): a text answer with
streamed deltas, an ``exec_command`` tool call, a failure, or a stream that never finishes.
Every request is recorded, so tests can assert on what the model was sent.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs
import trio

ReplyKind = Literal["text", "shell", "failure", "hang", "http_error"]

_ids = itertools.count(1)


@attrs.frozen
class Reply:
    """One scripted answer of the fake model. Build it with the class methods."""

    kind: ReplyKind
    #: The assistant text, the failure message or the HTTP error body.
    message: str = ""
    deltas: tuple[str, ...] = ()
    command: str = ""
    call_id: str = ""
    code: str = "server_error"
    status: int = 200
    delay_s: float = 0.0
    delta_interval_s: float = 0.0

    @classmethod
    def text(
        cls,
        text: str,
        *,
        deltas: Sequence[str] | None = None,
        delay_s: float = 0.0,
        delta_interval_s: float = 0.0,
    ) -> Reply:
        """An assistant message, streamed as ``deltas`` (default: about four chunks)."""
        if deltas is None:
            step = max(1, len(text) // 4)
            deltas = [text[i : i + step] for i in range(0, len(text), step)] or [""]
        return cls(
            "text",
            message=text,
            deltas=tuple(deltas),
            delay_s=delay_s,
            delta_interval_s=delta_interval_s,
        )

    @classmethod
    def shell(cls, command: str, *, call_id: str | None = None, delay_s: float = 0.0) -> Reply:
        """A tool call: the model asks Codex to run ``command`` (``exec_command``)."""
        return cls("shell", command=command, call_id=call_id or "", delay_s=delay_s)

    @classmethod
    def failure(cls, message: str, *, code: str = "server_error", delay_s: float = 0.0) -> Reply:
        """A ``response.failed`` event with this error."""
        return cls("failure", message=message, code=code, delay_s=delay_s)

    @classmethod
    def hang(cls) -> Reply:
        """Start the stream, then never finish it (until the client goes away)."""
        return cls("hang")

    @classmethod
    def http_error(cls, status: int, body: str = "error") -> Reply:
        """A plain HTTP error response instead of a stream."""
        return cls("http_error", message=body, status=status)


@attrs.frozen
class RecordedRequest:
    """One request the provider received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _usage() -> dict[str, Any]:
    return {
        "input_tokens": 10,
        "input_tokens_details": None,
        "output_tokens": 5,
        "output_tokens_details": None,
        "total_tokens": 15,
    }


class FakeModelProvider:
    """The server; use it through :func:`open_fake_provider`."""

    def __init__(
        self,
        replies: Sequence[Reply] = (),
        default: Reply | None = None,
        responder: Callable[[RecordedRequest], Reply | None] | None = None,
    ) -> None:
        self._script: deque[Reply] = deque(replies)
        self.default = default or Reply.text("ok")
        #: Chooses the reply from the request when the script is empty (``None``: the default).
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self.port = 0
        self._changed = trio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the script (one is used per POST /v1/responses)."""
        self._script.extend(replies)

    async def wait_for_requests(self, n: int) -> None:
        """Until at least ``n`` model requests (POST /responses) have arrived."""
        while sum(1 for r in self.requests if r.method == "POST") < n:
            await self._changed.wait()

    def function_call_outputs(self) -> list[Any]:
        """Every ``function_call_output`` input item sent back to the model."""
        out = []
        for request in self.requests:
            items = request.body.get("input") if isinstance(request.body, dict) else None
            for item in items or []:
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    out.append(item)
        return out

    def _record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._changed.set()
        self._changed = trio.Event()

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            await self._handle(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
            pass
        finally:
            await stream.aclose()

    async def _handle(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = bytearray(rest)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked(stream, body)
        else:
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                body += chunk
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = bytes(body).decode("utf-8", "replace")
        request = RecordedRequest(method, path, headers, parsed)
        self._record(request)
        if method == "POST" and path.rstrip("/").endswith("/responses"):
            reply = self._script.popleft() if self._script else self._answer(request)
            await self._respond(stream, reply)
        elif method == "GET" and "/models" in path:
            await self._plain(stream, 200, json.dumps({"object": "list", "data": []}))
        else:
            await self._plain(stream, 404, json.dumps({"error": {"message": "not found"}}))

    def _answer(self, request: RecordedRequest) -> Reply:
        chosen = self.responder(request) if self.responder is not None else None
        return chosen or self.default

    async def _read_chunked(self, stream: trio.SocketStream, data: bytearray) -> bytearray:
        body = bytearray()
        while True:
            while b"\r\n" not in data:
                data += await stream.receive_some(65536)
            size_line, _, remainder = bytes(data).partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = bytearray(remainder)
            while len(data) < size + 2:
                data += await stream.receive_some(65536)
            if size == 0:
                return body
            body += data[:size]
            data = data[size + 2 :]

    async def _plain(self, stream: trio.SocketStream, status: int, body: str) -> None:
        payload = body.encode()
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
        )
        await stream.send_all(head.encode() + payload)

    async def _respond(self, stream: trio.SocketStream, reply: Reply) -> None:
        if reply.delay_s:
            await trio.sleep(reply.delay_s)
        if reply.kind == "http_error":
            await self._plain(stream, reply.status, reply.message)
            return
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            "cache-control: no-cache\r\nconnection: close\r\n\r\n"
        )
        await stream.send_all(head.encode())
        n = next(_ids)
        response_id = f"resp_{n}"
        await stream.send_all(_sse({"type": "response.created", "response": {"id": response_id}}))
        if reply.kind == "hang":
            # Hold the stream open until the client disconnects (or the server stops).
            while await stream.receive_some(65536):
                pass
            return
        if reply.kind == "failure":
            await stream.send_all(
                _sse(
                    {
                        "type": "response.failed",
                        "response": {
                            "id": response_id,
                            "error": {"code": reply.code, "message": reply.message},
                        },
                    }
                )
            )
            return
        if reply.kind == "shell":
            call_id = reply.call_id or f"call_{n}"
            item = {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": call_id,
                "name": "exec_command",
                "arguments": json.dumps({"cmd": reply.command}),
            }
            await stream.send_all(_sse({"type": "response.output_item.done", "item": item}))
        else:
            message_id = f"msg_{n}"
            start = {
                "type": "message",
                "role": "assistant",
                "id": message_id,
                "content": [{"type": "output_text", "text": ""}],
            }
            await stream.send_all(_sse({"type": "response.output_item.added", "item": start}))
            for delta in reply.deltas:
                if reply.delta_interval_s:
                    await trio.sleep(reply.delta_interval_s)
                await stream.send_all(
                    _sse(
                        {
                            "type": "response.output_text.delta",
                            "item_id": message_id,
                            "delta": delta,
                        }
                    )
                )
            done = dict(start, content=[{"type": "output_text", "text": reply.message}])
            await stream.send_all(_sse({"type": "response.output_item.done", "item": done}))
        await stream.send_all(
            _sse({"type": "response.completed", "response": {"id": response_id, "usage": _usage()}})
        )


@asynccontextmanager
async def open_fake_provider(
    *replies: Reply,
    default: Reply | None = None,
    responder: Callable[[RecordedRequest], Reply | None] | None = None,
) -> AsyncIterator[FakeModelProvider]:
    """Serve a :class:`FakeModelProvider` on 127.0.0.1 (a free port) for the ``async with``.

    Each model request takes the next of ``replies``; once they are used up, ``responder``
    (if given) picks a reply from the request, else ``default`` answers.
    """
    provider = FakeModelProvider(replies, default, responder)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, provider._serve, 0, host="127.0.0.1")
        )
        provider.port = listeners[0].socket.getsockname()[1]
        try:
            yield provider
        finally:
            nursery.cancel_scope.cancel()
