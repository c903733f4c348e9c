"""A sans-IO JSON-RPC core, in the style of h11: bytes in, classified messages out, no I/O.

codexd speaks JSON-RPC in two roles, and this module serves both:

* as a **client** of the Codex app-server: newline-delimited JSON over stdio (or one message per
  WebSocket text frame). The app-server neither needs nor sends ``"jsonrpc": "2.0"``, stamps every
  notification with an extra ``emittedAtMs`` key, sends *server requests* (an ``id`` and a
  ``method``: approvals) and drops a malformed line silently;
* as a **server** of codexd's own local API: strict JSON-RPC 2.0, one message per WebSocket
  frame, where a bad message is answered with -32700 / -32600 / -32602 (see :func:`rejection`).

The user drives one :class:`Connection`: ``send_*`` methods return bytes (or ``*_frame`` text) to
write, ``receive_data`` / ``receive_message_text`` take what was read, and ``next_event`` hands
back :class:`Request`, :class:`Notification`, :class:`Response`, :class:`ErrorResponse`,
:class:`LateResponse` or :class:`ProtocolIssue` events, or :data:`NEED_DATA`. Nothing here
touches a socket, a clock or Trio, so every behaviour is testable with bytes in and events out.

Garbage from the peer never raises: a line that is not UTF-8 JSON, is over the size limit, or is
JSON but not a message becomes a :class:`ProtocolIssue` *event* naming the line (number, size,
preview), and the connection goes on with the next line. An oversize line is discarded as it
arrives, so memory stays bounded whatever the peer sends.

The per-line fast path is one ``bytes.split`` per chunk, then per line a UTF-8 decode, one C-level
JSON scan and a few dict lookups: no regular expression, and each line is copied out once.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

import attrs

from ._jsoncheck import MAX_PEER_DEPTH, has_surrogate, needs_scrub, scrub

JsonObject: TypeAlias = dict[str, Any]
#: JSON-RPC ids are strings or integers (never booleans, floats or null in a request).
RequestId: TypeAlias = int | str

# ---- error codes --------------------------------------------------------------------------------

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
#: Codex: "Server overloaded; retry later." Back off with jitter and retry the request.
SERVER_OVERLOADED: Final = -32001

_CODE_TITLES: Final[Mapping[int, str]] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
}

#: Longest line (or frame) accepted, in bytes; longer ones are reported and discarded.
DEFAULT_MAX_LINE_BYTES: Final = 16 * 1024 * 1024
#: Characters of a bad line kept in a :class:`ProtocolIssue` so an event log can name it.
PREVIEW_CHARS: Final = 120
#: How many forgotten request ids are remembered, to tell a late answer from an unknown one.
FORGOTTEN_REMEMBERED: Final = 1024


# ---- exceptions ---------------------------------------------------------------------------------


class ProtocolError(Exception):
    """Base of the two "who broke the protocol" errors, as in h11."""


class LocalProtocolError(ProtocolError):
    """This side misused the API: e.g. params that are not an object, a value JSON cannot encode,
    or data fed after :meth:`Connection.receive_eof`. A bug in codexd, never the peer's fault."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol beyond recovery.

    Nothing raises it today: every kind of garbage a peer can send is recoverable and comes back
    as a :class:`ProtocolIssue` event, so one bad line never costs the connection. It exists so
    callers can already write ``except RemoteProtocolError`` the way they would with h11.
    """


class RpcError(Exception):
    """Raised by a request handler to answer with a JSON-RPC error ``(code, message, data)``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


# ---- events -------------------------------------------------------------------------------------


@attrs.frozen
class Request:
    """A request from the peer: it has an ``id`` and waits for an answer.

    For codexd as an app-server client these are *server requests* (approvals, user input);
    for the local API they are the calls of a client. ``params`` is always an object (``{}`` when
    the peer left it out).
    """

    id: RequestId
    method: str
    params: JsonObject


@attrs.frozen
class Notification:
    """A one-way message from the peer; extra top-level keys such as ``emittedAtMs`` are
    ignored. ``params`` is always an object (``{}`` when the peer left it out)."""

    method: str
    params: JsonObject


@attrs.frozen
class Response:
    """A result for one of our requests; ``method`` is the method of that request, filled in by
    the :class:`Connection` (``None`` from a bare :func:`classify`)."""

    id: RequestId
    result: Any
    method: str | None = None


@attrs.frozen
class ErrorResponse:
    """An error answer. ``id`` is ``None`` when the peer could not tell which message it answers
    (a JSON-RPC 2.0 server does that for a parse error); ``method`` as in :class:`Response`."""

    id: RequestId | None
    code: int
    message: str
    data: Any = None
    method: str | None = None


@attrs.frozen
class LateResponse:
    """The answer to a request that was :meth:`Connection.forget`-ten (it timed out here).

    Not a :class:`ProtocolIssue`: the peer did nothing wrong, it was merely slow. ``message``
    carries the answer with its ``method`` filled in, for a log line such as "turn/interrupt
    answered after its timeout".
    """

    message: Response | ErrorResponse


@attrs.frozen
class ProtocolIssue:
    """Recoverable garbage from the peer: an event, not an exception.

    ``kind`` is one of

    * ``undecodable``: not UTF-8, or not JSON;
    * ``oversize``: longer than the limit; reported once, when the limit is crossed (``size`` is
      the bytes seen by then: the whole line only if it came in one chunk), and the rest of the
      line is discarded as it arrives, up to its newline;
    * ``invalid``: JSON but not a message (not an object, no method and no id, wrong types, a
      batch, a missing ``"jsonrpc": "2.0"`` in strict mode);
    * ``unknown-response``: a response whose id matches no request of ours;
    * ``trailing``: bytes without a final newline at end of stream (see
      :meth:`Connection.receive_eof`).

    ``line_no`` counts lines (or frames) from 1; ``size`` is in bytes; ``preview`` is the start of
    the line (bad bytes shown as ``\\xNN``). ``request_id`` is the id of the offending message when
    it had a usable one, and ``error_code`` the JSON-RPC code a server answers it with (``None``
    when it must not be answered, e.g. a malformed *response*: answering it could start an
    error ping-pong between two peers). See :func:`rejection`.
    """

    kind: str
    detail: str
    line_no: int | None = None
    size: int = 0
    preview: str = ""
    request_id: RequestId | None = None
    error_code: int | None = None


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`Connection.next_event` when no complete event is ready; feed more data.
#: An enum member, so ``if event is NEED_DATA`` narrows the type for mypy.
NEED_DATA: Final = _NeedData.NEED_DATA
NeedData: TypeAlias = Literal[_NeedData.NEED_DATA]

Message: TypeAlias = Request | Notification | Response | ErrorResponse
Event: TypeAlias = Message | LateResponse | ProtocolIssue


# ---- classification -----------------------------------------------------------------------------


def _preview(raw: bytes | str, max_bytes: int = PREVIEW_CHARS * 4) -> str:
    """The start of a line for a human: at most :data:`PREVIEW_CHARS` characters, decoded
    without failing (bad bytes as ``\\xNN``), never decoding more than needed."""
    if isinstance(raw, str):
        return raw[:PREVIEW_CHARS]
    return raw[:max_bytes].decode("utf-8", "backslashreplace")[:PREVIEW_CHARS]


def _is_id(value: object) -> bool:
    # Exact class checks: bool is an int subclass, and True is not an id. A string id must be
    # encodable, or no answer to it could ever be written.
    if value.__class__ is str:
        return not has_surrogate(value)
    return value.__class__ is int


def _usable_id(obj: JsonObject) -> RequestId | None:
    rid = obj.get("id")
    return rid if _is_id(rid) else None


def _invalid(
    detail: str, request_id: RequestId | None = None, code: int | None = INVALID_REQUEST
) -> ProtocolIssue:
    return ProtocolIssue("invalid", detail, request_id=request_id, error_code=code)


_JSON_TYPES: Final[Mapping[type, str]] = {
    type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
    list: "array", dict: "object",
}  # fmt: skip


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def classify(obj: object, *, strict: bool = False) -> Message | ProtocolIssue:
    """Classify one decoded JSON value as a message, or say why it is not one.

    Pure: no state, so a response comes back with ``method=None`` (the :class:`Connection`
    matches it to its request) and an issue without line number, size or preview (the
    connection has the raw text for those).

    Rules: an object with ``method`` is a :class:`Request` when it also has an ``id``, else a
    :class:`Notification`; without ``method`` it must have an ``id`` and exactly one of
    ``result`` (:class:`Response`) or ``error`` (:class:`ErrorResponse`, whose ``error`` needs an
    integer ``code`` and a string ``message``). Ids are strings or integers; an error response
    may have a null id. ``params`` must be an object; absent means ``{}``, and so does ``null``
    unless ``strict``. Extra keys (``emittedAtMs``) are ignored. With ``strict`` the message must
    carry ``"jsonrpc": "2.0"``, as JSON-RPC 2.0 requires; without it the field is optional
    (the Codex app-server never sends it).
    """
    if not isinstance(obj, dict):
        if isinstance(obj, list):
            return _invalid("a JSON array: batch messages are not supported")
        return _invalid(f"a JSON {_json_type(obj)}, not an object")
    looks_like_response = "method" not in obj and ("result" in obj or "error" in obj)
    if strict and obj.get("jsonrpc") != "2.0":
        return _invalid(
            'missing "jsonrpc": "2.0"',
            _usable_id(obj),
            None if looks_like_response else INVALID_REQUEST,
        )
    if "method" in obj:
        return _classify_call(obj, strict)
    if "id" not in obj:
        return _invalid("neither a method nor an id: not a message")
    rid = obj["id"]
    has_result = "result" in obj
    if has_result == ("error" in obj):
        if has_result:
            return _invalid("a response with both result and error", _usable_id(obj), None)
        return _invalid("an id but no method, result or error", _usable_id(obj))
    if has_result:
        if not _is_id(rid):
            return _invalid(f"response id is a {_json_type(rid)}", None, None)
        return Response(rid, obj["result"])
    error = obj["error"]
    if error.__class__ is not dict:
        return _invalid(f"error is a {_json_type(error)}, not an object", _usable_id(obj), None)
    code = error.get("code")
    message = error.get("message")
    if code.__class__ is not int or message.__class__ is not str:
        return _invalid("error needs an integer code and a string message", _usable_id(obj), None)
    if rid is not None and not _is_id(rid):
        return _invalid(f"error response id is a {_json_type(rid)}", None, None)
    return ErrorResponse(rid, code, message, error.get("data"))


def _classify_call(obj: JsonObject, strict: bool) -> Request | Notification | ProtocolIssue:
    """A message with a ``method``: a request or a notification."""
    method = obj["method"]
    has_id = "id" in obj
    rid: Any = obj.get("id")
    if has_id and not _is_id(rid):
        # JSON-RPC 2.0 discourages null ids; treating one as a notification would leave a peer
        # waiting forever, so it is invalid (answered with a null id).
        if rid.__class__ is str:
            return _invalid("id is not valid Unicode (it holds a lone surrogate)")
        return _invalid(f"id is a {_json_type(rid)}, not a string or an integer")
    usable = rid if has_id else None
    if method.__class__ is not str or not method:
        return _invalid("method must be a non-empty string", usable)
    params = obj.get("params")
    if params.__class__ is not dict:
        if params is None and not (strict and "params" in obj):
            params = {}
        elif isinstance(params, list):
            # Valid JSON-RPC (by-position params), but no method here takes them.
            return _invalid(
                "params is an array; only named params (an object) are supported",
                usable,
                INVALID_PARAMS,
            )
        elif not isinstance(params, dict):
            return _invalid(f"params is a {_json_type(params)}, not an object", usable)
    if has_id:
        return Request(rid, method, params)
    return Notification(method, params)


def rejection(issue: ProtocolIssue) -> JsonObject | None:
    """The JSON-RPC 2.0 error response a *server* sends for an invalid incoming message.

    ``{"jsonrpc": "2.0", "id": <its id, or null when unknown>, "error": {"code", "message"}}``:
    -32700 for undecodable input, -32602 for array params, -32600 otherwise. ``None`` when the
    message must not be answered: responses (an unknown or malformed response answered with an
    error could bounce between two peers forever) and trailing bytes at end of stream.
    """
    code = issue.error_code
    if code is None:
        return None
    title = _CODE_TITLES.get(code, "Error")
    return {
        "jsonrpc": "2.0",
        "id": issue.request_id,
        "error": {"code": code, "message": f"{title}: {issue.detail}"},
    }


# ---- line framing -------------------------------------------------------------------------------


class LineFramer:
    """Splits a byte stream into lines, with memory bounded by ``max_line_bytes``.

    :meth:`feed` returns the lines completed by a chunk, without their ``\\n`` (or ``\\r\\n``),
    in order, as ``bytes``. A line longer than the limit is reported once, as a
    ``ProtocolIssue("oversize")`` in its place in that order, as soon as the limit is crossed;
    its remaining bytes are then counted and dropped as they arrive, never buffered, and
    framing resumes after the next newline. So the buffer never holds more than
    ``max_line_bytes`` (+1 for a ``\\r`` that may start a ``\\r\\n``), even for a gigabyte-long
    line. ``\\r\\n`` ends a line like ``\\n``; blank lines are returned (as ``b""``).

    ``line_no`` is the number of the last line returned or reported (lines count from 1, blank
    ones included; an oversize line takes its number when it is reported).
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.line_no = 0
        self._buffer = bytearray()
        self._discarding = False
        self._discarded = 0
        self._discard_preview = ""

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held in memory (at most ``max_line_bytes``, plus one
        for a ``\\r`` that may start a ``\\r\\n``)."""
        return len(self._buffer)

    @property
    def discarding(self) -> bool:
        """True while the rest of an oversize line is being dropped."""
        return self._discarding

    def feed(self, data: bytes | bytearray) -> Sequence[bytes | ProtocolIssue]:
        """Take a chunk (split anywhere); return the lines and oversize issues it completes."""
        if data.__class__ is not bytes:
            data = bytes(data)
        if not data:
            return ()
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                self._discarded += len(data)
                return ()
            self._discarding = False
            self._discarded = 0
            data = data[nl + 1 :]
        buffer = self._buffer
        if buffer[-1:] == b"\r" and data[:1] == b"\n":  # a \r\n split between two chunks
            del buffer[-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        lines = data.split(b"\n")
        tail = lines.pop()
        limit = self.max_line_bytes
        if buffer:
            if not lines:
                # A \r that may be the first half of a \r\n does not count against the limit.
                if len(buffer) + len(tail) > limit + ((tail or buffer)[-1:] == b"\r"):
                    head = bytes(buffer[: PREVIEW_CHARS * 4])
                    head += tail[: PREVIEW_CHARS * 4 - len(head)]
                    return [self._start_discard(head, len(buffer) + len(tail))]
                buffer += tail
                return ()
            buffer += lines[0]
            lines[0] = bytes(buffer)
            buffer.clear()
        out: Sequence[bytes | ProtocolIssue] = lines
        if lines and (len(data) > limit or len(lines[0]) > limit):
            out = self._check_lengths(lines)
        self.line_no += len(lines)
        if tail:
            if len(tail) > limit + (tail[-1:] == b"\r"):
                return [*out, self._start_discard(tail, len(tail))]
            buffer += tail
        return out

    def _check_lengths(self, lines: list[bytes]) -> list[bytes | ProtocolIssue]:
        """The slow path, for chunks long enough to hold an oversize complete line."""
        limit = self.max_line_bytes
        out: list[bytes | ProtocolIssue] = []
        for n, line in enumerate(lines, self.line_no + 1):
            if len(line) > limit:
                out.append(
                    ProtocolIssue(
                        "oversize",
                        f"line of {len(line)} bytes is over the limit of {limit}; discarded",
                        n,
                        len(line),
                        self._oversize_preview(line),
                        error_code=INVALID_REQUEST,
                    )
                )
            else:
                out.append(line)
        return out

    def _oversize_preview(self, head: bytes) -> str:
        # Only as many bytes as every chunking has seen when the limit is crossed, so the
        # preview is the same however the line arrived.
        return _preview(head, min(PREVIEW_CHARS * 4, self.max_line_bytes + 1))

    def _start_discard(self, head: bytes, seen: int) -> ProtocolIssue:
        self._buffer.clear()
        self._discarding = True
        self._discarded = seen
        self._discard_preview = self._oversize_preview(head)
        self.line_no += 1
        return ProtocolIssue(
            "oversize",
            f"line is over the limit of {self.max_line_bytes} bytes;"
            " discarding it up to the next newline",
            self.line_no,
            seen,
            self._discard_preview,
            error_code=INVALID_REQUEST,
        )

    def close(self) -> ProtocolIssue | None:
        """At end of stream: a ``trailing`` issue for bytes left without a newline, if any.

        Its ``size`` counts every byte of that unterminated line (also the dropped ones of an
        oversize line), and its preview is the line's start, for transport diagnostics.
        """
        if self._discarding:
            issue = ProtocolIssue(
                "trailing",
                "end of stream inside an oversize line",
                self.line_no,
                self._discarded,
                self._discard_preview,
            )
            self._discarding = False
            self._discarded = 0
            return issue
        if not self._buffer:
            return None
        data = bytes(self._buffer)
        self._buffer.clear()
        return ProtocolIssue(
            "trailing",
            f"{len(data)} bytes without a newline at end of stream",
            self.line_no + 1,
            len(data),
            _preview(data),
        )


def _checked_params(method: str, params: JsonObject | None) -> JsonObject:
    """Outgoing calls: a non-empty method, and params as an object (``{}`` for ``None``)."""
    if method.__class__ is not str or not method:
        raise LocalProtocolError(f"method must be a non-empty string, not {method!r}")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise LocalProtocolError(f"params must be an object (dict), not {type(params).__name__}")
    return params


# ---- the connection -----------------------------------------------------------------------------

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode = _ENCODER.encode
_DECODER: Final = json.JSONDecoder()
# The C scanner json.loads uses inside, without its regex-based whitespace skipping.
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


class Connection:
    """One side of a JSON-RPC conversation, with no I/O: the object codexd drives.

    Outgoing: ``send_request`` / ``send_notification`` / ``send_response`` / ``send_error``
    return one newline-terminated line of UTF-8 JSON for a stream; the ``*_frame`` variants
    return the same message as ``str`` without newline, for one WebSocket text frame. Request ids
    are integers counting from 1, and ``params`` is always sent (``{}`` at least: the Codex
    app-server rejects a missing or null ``params``).

    Incoming: :meth:`receive_data` takes stream bytes split anywhere (line mode),
    :meth:`receive_message_text` one whole message (frame mode); :meth:`next_event` (or
    :meth:`events`) returns what they produced, in order.

    Bookkeeping: :attr:`pending` maps the ids of our requests that wait for an answer to their
    methods; a response removes its entry and comes back with ``method`` filled in. A response
    to an id that is not pending is a ``ProtocolIssue("unknown-response")``, except for the last
    :data:`FORGOTTEN_REMEMBERED` ids given to :meth:`forget`, whose answers come back as
    :class:`LateResponse`.

    ``strict=True`` requires ``"jsonrpc": "2.0"`` on incoming messages (the local API);
    ``emit_jsonrpc_field=True`` adds it to outgoing ones.
    """

    def __init__(
        self,
        *,
        strict: bool = False,
        emit_jsonrpc_field: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.strict = strict
        self.emit_jsonrpc_field = emit_jsonrpc_field
        self.max_line_bytes = max_line_bytes
        self._framer = LineFramer(max_line_bytes)
        self._events: deque[Event] = deque()
        self._next_id = 1
        self._pending: dict[RequestId, str] = {}
        self._pending_view = MappingProxyType(self._pending)
        self._forgotten: dict[RequestId, str] = {}
        self._frame_no = 0
        self._eof = False

    # ---- state ----------------------------------------------------------------------------

    @property
    def pending(self) -> Mapping[RequestId, str]:
        """Our requests still waiting for an answer: id -> method (a read-only live view)."""
        return self._pending_view

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete incoming line held in memory (at most ``max_line_bytes``)."""
        return self._framer.buffered

    @property
    def line_no(self) -> int:
        """Lines seen so far in line mode (blank ones included)."""
        return self._framer.line_no

    # ---- outgoing -------------------------------------------------------------------------

    def send_request(self, method: str, params: JsonObject | None = None) -> tuple[int, bytes]:
        """Encode a request with the next id and record it as pending; returns ``(id, line)``."""
        request_id, message = self._request(method, params)
        return request_id, self._line(message)

    def send_notification(self, method: str, params: JsonObject | None = None) -> bytes:
        """Encode a notification (no answer expected)."""
        return self._line(self._notification(method, params))

    def send_response(self, request_id: RequestId, result: Any) -> bytes:
        """Encode the result of a peer's request."""
        return self._line(self._response(request_id, result))

    def send_error(
        self, request_id: RequestId | None, code: int, message: str, data: Any = None
    ) -> bytes:
        """Encode an error answer; ``request_id`` is ``None`` when the id could not be read."""
        return self._line(self._error(request_id, code, message, data))

    def send_request_frame(self, method: str, params: JsonObject | None = None) -> tuple[int, str]:
        """:meth:`send_request` for one WebSocket text frame (``str``, no newline)."""
        request_id, message = self._request(method, params)
        return request_id, self._frame(message)

    def send_notification_frame(self, method: str, params: JsonObject | None = None) -> str:
        """:meth:`send_notification` for one WebSocket text frame."""
        return self._frame(self._notification(method, params))

    def send_response_frame(self, request_id: RequestId, result: Any) -> str:
        """:meth:`send_response` for one WebSocket text frame."""
        return self._frame(self._response(request_id, result))

    def send_error_frame(
        self, request_id: RequestId | None, code: int, message: str, data: Any = None
    ) -> str:
        """:meth:`send_error` for one WebSocket text frame."""
        return self._frame(self._error(request_id, code, message, data))

    def forget(self, request_id: RequestId) -> None:
        """Stop waiting for ``request_id`` (it timed out, or its caller was cancelled).

        Its entry leaves :attr:`pending`; if the answer still comes, it is reported as a
        :class:`LateResponse` (for the last :data:`FORGOTTEN_REMEMBERED` forgotten ids; older
        ones as ``unknown-response``). Forgetting an id that is not pending does nothing.
        """
        method = self._pending.pop(request_id, None)
        if method is None:
            return
        forgotten = self._forgotten
        forgotten[request_id] = method
        if len(forgotten) > FORGOTTEN_REMEMBERED:
            del forgotten[next(iter(forgotten))]

    def close_pending(self) -> list[tuple[RequestId, str]]:
        """The transport closed: return every pending ``(id, method)``, oldest first, and clear
        them; those requests will never be answered and their callers should be failed."""
        out = list(self._pending.items())
        self._pending.clear()
        return out

    def _request(self, method: str, params: JsonObject | None) -> tuple[int, JsonObject]:
        params = _checked_params(method, params)
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = method
        return request_id, self._stamp({"id": request_id, "method": method, "params": params})

    def _notification(self, method: str, params: JsonObject | None) -> JsonObject:
        return self._stamp({"method": method, "params": _checked_params(method, params)})

    def _response(self, request_id: RequestId, result: Any) -> JsonObject:
        if not _is_id(request_id):
            raise LocalProtocolError(f"a response needs a string or integer id: {request_id!r}")
        return self._stamp({"id": request_id, "result": result})

    def _error(
        self, request_id: RequestId | None, code: int, message: str, data: Any
    ) -> JsonObject:
        if request_id is not None and not _is_id(request_id):
            raise LocalProtocolError(f"an error needs a string, integer or null id: {request_id!r}")
        if code.__class__ is not int:
            raise LocalProtocolError(f"error code must be an integer, not {code!r}")
        error: JsonObject = {"code": code, "message": str(message)}
        if data is not None:
            error["data"] = data
        return self._stamp({"id": request_id, "error": error})

    def _stamp(self, message: JsonObject) -> JsonObject:
        return {"jsonrpc": "2.0", **message} if self.emit_jsonrpc_field else message

    @staticmethod
    def _dump(message: JsonObject) -> str:
        try:
            return _encode(message)
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"cannot encode message as JSON: {exc}") from exc

    def _line(self, message: JsonObject) -> bytes:
        text = self._dump(message)
        try:
            return (text + "\n").encode()
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(
                f"message is not valid Unicode (lone surrogate): {exc}"
            ) from exc

    def _frame(self, message: JsonObject) -> str:
        text = self._dump(message)
        if not text.isascii():  # O(1); only non-ASCII text can hold a lone surrogate
            try:
                text.encode()
            except UnicodeEncodeError as exc:
                raise LocalProtocolError(f"message is not valid Unicode: {exc}") from exc
        return text

    # ---- incoming -------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Line mode: feed bytes of a newline-delimited stream, split anywhere.

        Every complete line becomes one event (blank lines are skipped); an incomplete last line
        waits for the next call. Raises :class:`LocalProtocolError` after :meth:`receive_eof`.
        """
        if self._eof:
            raise LocalProtocolError("receive_data() after receive_eof()")
        items = self._framer.feed(data)
        if not items:
            return
        strict = self.strict
        pending = self._pending
        append = self._events.append
        # Each item (a line, or an oversize issue standing for one) takes the next line number.
        n = self._framer.line_no - len(items)
        for item in items:
            n += 1
            if isinstance(item, ProtocolIssue):
                append(item)
                continue
            # Fast path: UTF-8 decode and one C-level JSON scan. Anything unusual (whitespace
            # around the value, errors, not an object) takes the slow path, where json.loads
            # gives the canonical answer.
            try:
                text = item.decode()
                obj, end = _scan_once(text, 0)
                # Escapes of lone surrogates take the careful path, which repairs them.
                whole = end == len(text) and (strict or not needs_scrub(text))
            except (ValueError, StopIteration, RecursionError):
                whole = False
            if not whole or obj.__class__ is not dict:
                event = self._slow_line(item, n, skip_blank=True)
                if event is not None:
                    append(event)
                continue
            if not strict:
                # The two hot shapes, inline: a notification, and a result for a pending id.
                method = obj.get("method")
                if method is not None:
                    if method.__class__ is str and method and "id" not in obj:
                        params = obj.get("params")
                        if params.__class__ is dict:
                            append(Notification(method, params))
                            continue
                elif "result" in obj and "method" not in obj and "error" not in obj:
                    rid = obj.get("id")
                    if rid.__class__ is int or rid.__class__ is str:
                        got = pending.pop(rid, None)
                        if got is not None:
                            append(Response(rid, obj["result"], got))
                            continue
            append(self._match(classify(obj, strict=strict), item, n))

    def receive_message_text(self, text: str | bytes) -> None:
        """Frame mode: feed one whole message (a WebSocket frame; text, or bytes of UTF-8).

        The size limit applies to its UTF-8 length; ``line_no`` in issues counts frames.
        """
        self._frame_no += 1
        n = self._frame_no
        limit = self.max_line_bytes
        if isinstance(text, str):
            size = len(text)
            if size * 4 > limit:  # UTF-8 takes at most 4 bytes a character
                size = len(text.encode("utf-8", "surrogatepass"))
        else:
            size = len(text)
        if size > limit:
            self._events.append(
                ProtocolIssue(
                    "oversize",
                    f"message of {size} bytes is over the limit of {limit}; discarded",
                    n,
                    size,
                    _preview(text),
                    error_code=INVALID_REQUEST,
                )
            )
            return
        event = self._slow_line(text, n, skip_blank=False)
        assert event is not None
        self._events.append(event)

    def receive_eof(self) -> ProtocolIssue | None:
        """The peer closed the stream. Returns a ``trailing`` issue for bytes left without a
        newline (a count and a preview for the transport's diagnostics), else ``None``.

        Pending requests stay in :attr:`pending` until :meth:`close_pending` collects them.
        Idempotent; feeding data afterwards is a :class:`LocalProtocolError`.
        """
        if self._eof:
            return None
        self._eof = True
        return self._framer.close()

    def next_event(self) -> Event | NeedData:
        """The next event, in arrival order, or :data:`NEED_DATA` when none is ready."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def events(self) -> list[Event]:
        """Every event ready now, draining the queue: one call instead of a ``next_event`` loop."""
        out = list(self._events)
        self._events.clear()
        return out

    def _slow_line(self, raw: bytes | str, n: int, *, skip_blank: bool) -> Event | None:
        """Decode one line or frame the careful way; ``None`` for a blank line if skipped."""
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
            obj = json.loads(text)
        except UnicodeDecodeError as exc:
            detail = f"not UTF-8: {exc.reason} at byte {exc.start}"
        except (ValueError, RecursionError) as exc:
            if skip_blank and not raw.strip():
                return None
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            detail = f"not JSON: {reason}"
        else:
            if not self.strict and needs_scrub(text):
                # A peer's output must be storable: repair it, and say so before the message.
                obj, changed = scrub(obj)
                if changed:
                    self._events.append(
                        ProtocolIssue(
                            "repaired",
                            "lone surrogates (U+FFFD), non-finite numbers (null) or nesting"
                            f" deeper than {MAX_PEER_DEPTH} levels were replaced",
                            n,
                            _size(raw),
                            _preview(raw),
                        )
                    )
            return self._match(classify(obj, strict=self.strict), raw, n)
        return ProtocolIssue(
            "undecodable", detail, n, _size(raw), _preview(raw), error_code=PARSE_ERROR
        )

    def _match(self, message: Message | ProtocolIssue, raw: bytes | str, n: int) -> Event:
        """Fill in the method of a response from :attr:`pending`; name the line of an issue."""
        if message.__class__ is Request or message.__class__ is Notification:
            return message
        if isinstance(message, ProtocolIssue):
            return attrs.evolve(message, line_no=n, size=_size(raw), preview=_preview(raw))
        assert isinstance(message, Response | ErrorResponse)
        rid = message.id
        if rid is None:  # an error about a message the peer could not read: matches nothing
            return message
        method = self._pending.pop(rid, None)
        if method is not None:
            return attrs.evolve(message, method=method)
        method = self._forgotten.pop(rid, None)
        if method is not None:
            return LateResponse(attrs.evolve(message, method=method))
        what = "result" if isinstance(message, Response) else "error"
        return ProtocolIssue(
            "unknown-response",
            f"{what} for id {rid!r}, which matches no pending request",
            n,
            _size(raw),
            _preview(raw),
            request_id=rid,
        )


def _size(raw: bytes | str) -> int:
    return len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
