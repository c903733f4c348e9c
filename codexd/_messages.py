"""JSON-RPC messages as immutable events, and the rules that classify a decoded value.

Like h11's ``_events.py``: the classes the sans-IO core (:mod:`codexd._jsonrpc`) hands out, the
error codes, :func:`classify` (pure: one decoded JSON value in, a message or the reason it is
not one out) and :func:`rejection` (the error a server answers an invalid message with).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import attrs

from ._jsoncheck import has_surrogate

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

#: Characters of a bad line kept in a :class:`ProtocolIssue` so an event log can name it.
PREVIEW_CHARS: Final = 120


# ---- exceptions ---------------------------------------------------------------------------------


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


def preview(raw: bytes | str, max_bytes: int = PREVIEW_CHARS * 4) -> str:
    """The start of a line for a human: at most :data:`PREVIEW_CHARS` characters, decoded
    without failing (bad bytes as ``\\xNN``), never decoding more than needed."""
    if isinstance(raw, str):
        return raw[:PREVIEW_CHARS]
    return raw[:max_bytes].decode("utf-8", "backslashreplace")[:PREVIEW_CHARS]


def is_id(value: object) -> bool:
    # Exact class checks: bool is an int subclass, and True is not an id. A string id must be
    # encodable, or no answer to it could ever be written.
    if value.__class__ is str:
        return not has_surrogate(value)
    return value.__class__ is int


def _usable_id(obj: JsonObject) -> RequestId | None:
    rid = obj.get("id")
    return rid if is_id(rid) else None


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
        if not is_id(rid):
            return _invalid(f"response id is a {_json_type(rid)}", None, None)
        return Response(rid, obj["result"])
    error = obj["error"]
    if error.__class__ is not dict:
        return _invalid(f"error is a {_json_type(error)}, not an object", _usable_id(obj), None)
    code = error.get("code")
    message = error.get("message")
    if code.__class__ is not int or message.__class__ is not str:
        return _invalid("error needs an integer code and a string message", _usable_id(obj), None)
    if rid is not None and not is_id(rid):
        return _invalid(f"error response id is a {_json_type(rid)}", None, None)
    return ErrorResponse(rid, code, message, error.get("data"))


def _classify_call(obj: JsonObject, strict: bool) -> Request | Notification | ProtocolIssue:
    """A message with a ``method``: a request or a notification."""
    method = obj["method"]
    has_id = "id" in obj
    rid: Any = obj.get("id")
    if has_id and not is_id(rid):
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
