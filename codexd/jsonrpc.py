"""A sans-IO JSON-RPC core, in the style of h11: bytes in, classified messages out, no I/O.

Used on both sides of codexd: as a client of the Codex app-server (newline-delimited JSON over
stdio, or one message per WebSocket frame; the app-server neither needs nor sends ``"jsonrpc"``)
and as the server of codexd's own local API (strict JSON-RPC 2.0).

Garbage from the peer never raises: an undecodable, oversize or invalid line becomes a
:class:`ProtocolIssue` event naming the line, and the connection goes on with the next one.
An oversize line is discarded as it arrives, so memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import attrs

JsonObject = dict[str, Any]
RequestId = int | str

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
#: Codex: "Server overloaded; retry later." -> back off with jitter and retry.
SERVER_OVERLOADED: Final = -32001

PREVIEW_CHARS: Final = 120


class LocalProtocolError(Exception):
    """This side misused the API (e.g. answered a request id twice)."""


class RemoteProtocolError(Exception):
    """The peer broke the protocol beyond recovery (unused for line garbage: see ProtocolIssue)."""


class RpcError(Exception):
    """Raised by a request handler to answer with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@attrs.frozen
class Request:
    """A request from the peer (for codexd as client: a *server request*, e.g. an approval)."""

    id: RequestId
    method: str
    params: Any


@attrs.frozen
class Notification:
    method: str
    params: Any


@attrs.frozen
class Response:
    """A result for one of our requests; ``method`` is the method of that request."""

    id: RequestId
    result: Any
    method: str | None = None


@attrs.frozen
class ErrorResponse:
    id: RequestId | None
    code: int
    message: str
    data: Any = None
    method: str | None = None


@attrs.frozen
class ProtocolIssue:
    """Recoverable garbage from the peer: ``undecodable``, ``oversize``, ``invalid``,
    ``unknown-response`` (a response to no pending request, e.g. after a timeout) or
    ``trailing`` (bytes without a newline at EOF)."""

    kind: str
    detail: str
    line_no: int | None
    size: int
    preview: str


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`Connection.next_event` when more bytes are needed.
NEED_DATA: Final = _NeedData()

Message = Request | Notification | Response | ErrorResponse
Event = Message | ProtocolIssue


def _preview(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[:PREVIEW_CHARS]


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def classify(obj: Any, *, strict: bool = False) -> Message | ProtocolIssue:
    """Classify one decoded JSON value as a message, or say why it is not one.

    Extra keys (``emittedAtMs``) are ignored. With ``strict``, ``"jsonrpc": "2.0"`` is required.
    """
    if not isinstance(obj, dict):
        return ProtocolIssue("invalid", "not a JSON object", None, 0, _preview(json.dumps(obj)))
    if strict and obj.get("jsonrpc") != "2.0":
        return ProtocolIssue("invalid", 'missing "jsonrpc": "2.0"', None, 0, "")
    method = obj.get("method")
    has_id = "id" in obj and obj["id"] is not None
    if method is not None:
        if not isinstance(method, str) or not method:
            return ProtocolIssue("invalid", "method must be a non-empty string", None, 0, "")
        params = obj.get("params")
        if params is not None and not isinstance(params, dict | list):
            return ProtocolIssue("invalid", "params must be an object or array", None, 0, "")
        if has_id:
            if not _valid_id(obj["id"]):
                return ProtocolIssue("invalid", "id must be a string or integer", None, 0, "")
            return Request(obj["id"], method, params)
        return Notification(method, params)
    if "result" in obj and has_id and _valid_id(obj["id"]):
        return Response(obj["id"], obj["result"])
    error = obj.get("error")
    if isinstance(error, dict) and "id" in obj:
        code = error.get("code")
        message = error.get("message")
        if isinstance(code, int) and isinstance(message, str):
            rid = obj["id"] if _valid_id(obj["id"]) else None
            return ErrorResponse(rid, code, message, error.get("data"))
    return ProtocolIssue("invalid", "neither a request, a notification nor a response", None, 0, "")


class LineFramer:
    """Splits a byte stream into lines, bounding memory for lines over ``max_line_bytes``."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._discarding = False
        self._discarded = 0
        self.line_no = 0

    def feed(self, data: bytes) -> list[bytes | ProtocolIssue]:
        """Complete lines (without the newline) and oversize-line issues, in order."""
        out: list[bytes | ProtocolIssue] = []
        start = 0
        end = len(data)
        while start < end:
            nl = data.find(b"\n", start)
            if self._discarding:
                if nl < 0:
                    self._discarded += end - start
                    return out
                self._discarded += nl - start
                self._discarding = False
                start = nl + 1
                continue
            if nl < 0:
                self._buffer += data[start:]
                if len(self._buffer) > self.max_line_bytes:
                    self.line_no += 1
                    out.append(
                        ProtocolIssue(
                            "oversize",
                            f"line longer than {self.max_line_bytes} bytes; discarded",
                            self.line_no,
                            len(self._buffer),
                            _preview(bytes(self._buffer[:PREVIEW_CHARS])),
                        )
                    )
                    self._buffer.clear()
                    self._discarding = True
                return out
            if self._buffer:
                self._buffer += data[start:nl]
                line = bytes(self._buffer)
                self._buffer.clear()
            else:
                line = data[start:nl]
            start = nl + 1
            self.line_no += 1
            if len(line) > self.max_line_bytes:
                out.append(
                    ProtocolIssue(
                        "oversize",
                        f"line longer than {self.max_line_bytes} bytes; discarded",
                        self.line_no,
                        len(line),
                        _preview(line[:PREVIEW_CHARS]),
                    )
                )
                continue
            out.append(line)
        return out

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def close(self) -> ProtocolIssue | None:
        """At EOF: the bytes left without a newline, if any."""
        if not self._buffer:
            return None
        data = bytes(self._buffer)
        self._buffer.clear()
        return ProtocolIssue(
            "trailing",
            "bytes without a newline at EOF",
            self.line_no + 1,
            len(data),
            _preview(data),
        )


class Connection:
    """One side of a JSON-RPC conversation; call ``send_*`` to encode, ``receive_*`` to decode.

    Outgoing request ids are integers from 1. ``pending`` maps the ids of requests still waiting
    for an answer to their method; a response to an unknown id (e.g. after :meth:`forget`) comes
    back as a ``ProtocolIssue("unknown-response")``.
    """

    def __init__(
        self,
        *,
        strict: bool = False,
        emit_jsonrpc_field: bool = False,
        max_line_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.strict = strict
        self.emit_jsonrpc_field = emit_jsonrpc_field
        self._framer = LineFramer(max_line_bytes)
        self._events: deque[Event] = deque()
        self._next_id = 1
        self._pending: dict[RequestId, str] = {}

    @property
    def pending(self) -> Mapping[RequestId, str]:
        return self._pending

    # ---- outgoing ----------------------------------------------------------------------

    def _encode(self, message: JsonObject) -> bytes:
        if self.emit_jsonrpc_field:
            message = {"jsonrpc": "2.0", **message}
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    def send_request(self, method: str, params: Any = None) -> tuple[int, bytes]:
        """Encode a request; ``params`` is always sent (``{}`` when None)."""
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = method
        return request_id, self._encode(
            {"id": request_id, "method": method, "params": {} if params is None else params}
        )

    def send_notification(self, method: str, params: Any = None) -> bytes:
        return self._encode({"method": method, "params": {} if params is None else params})

    def send_response(self, request_id: RequestId | None, result: Any) -> bytes:
        return self._encode({"id": request_id, "result": result})

    def send_error(
        self, request_id: RequestId | None, code: int, message: str, data: Any = None
    ) -> bytes:
        error: JsonObject = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        return self._encode({"id": request_id, "error": error})

    def forget(self, request_id: RequestId) -> None:
        """Stop waiting for ``request_id`` (it timed out); a late answer is reported as an issue."""
        self._pending.pop(request_id, None)

    # ---- incoming ----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes of a newline-delimited stream."""
        for item in self._framer.feed(data):
            if isinstance(item, ProtocolIssue):
                self._events.append(item)
            elif item.strip():
                self._events.append(self._decode(item, self._framer.line_no))

    def receive_message_text(self, text: str | bytes) -> None:
        """Feed one whole message (a WebSocket frame)."""
        self._framer.line_no += 1
        self._events.append(self._decode(text, self._framer.line_no))

    def receive_eof(self) -> ProtocolIssue | None:
        """The stream ended; returns the trailing-bytes issue, if bytes were left over."""
        return self._framer.close()

    def close_pending(self) -> list[tuple[RequestId, str]]:
        """Requests that will never be answered (the connection closed)."""
        out = list(self._pending.items())
        self._pending.clear()
        return out

    def next_event(self) -> Event | _NeedData:
        """The next classified message or issue, or :data:`NEED_DATA`."""
        if not self._events:
            return NEED_DATA
        return self._events.popleft()

    def events(self) -> list[Event]:
        """All events ready now (drains the queue); faster than looping on next_event."""
        out = list(self._events)
        self._events.clear()
        return out

    def _decode(self, raw: bytes | str, line_no: int) -> Event:
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            size = len(raw)
            return ProtocolIssue("undecodable", f"not JSON: {exc}", line_no, size, _preview(raw))
        message = classify(obj, strict=self.strict)
        if isinstance(message, ProtocolIssue):
            return attrs.evolve(message, line_no=line_no, size=len(raw), preview=_preview(raw))
        if isinstance(message, Response):
            method = self._pending.pop(message.id, None)
            if method is None:
                return ProtocolIssue(
                    "unknown-response",
                    f"response to unknown id {message.id!r}",
                    line_no,
                    len(raw),
                    _preview(raw),
                )
            return attrs.evolve(message, method=method)
        if isinstance(message, ErrorResponse) and message.id is not None:
            method = self._pending.pop(message.id, None)
            if method is None:
                return ProtocolIssue(
                    "unknown-response",
                    f"error for unknown id {message.id!r}",
                    line_no,
                    len(raw),
                    _preview(raw),
                )
            return attrs.evolve(message, method=method)
        return message
