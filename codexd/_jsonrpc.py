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

The per-line fast path is one ``bytes.split`` per chunk, then per line one orjson decode of the
bytes (UTF-8 validated by it) and a few dict lookups; anything orjson refuses or could read
inexactly (lone surrogates, non-finite numbers, 20-digit integers) takes the slow path, where
``json.loads`` gives the canonical answer. Outgoing messages are encoded by orjson too
(:func:`codexd._json.dumpb`, with the standard library's errors).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from ._errors import LocalProtocolError
from ._framing import DEFAULT_MAX_LINE_BYTES, LineFramer
from ._json import dumpb, fast_loads
from ._jsoncheck import MAX_PEER_DEPTH, needs_scrub, scrub
from ._messages import (
    INVALID_REQUEST,
    NEED_DATA,
    PARSE_ERROR,
    ErrorResponse,
    Event,
    JsonObject,
    LateResponse,
    Message,
    NeedData,
    Notification,
    ProtocolIssue,
    Request,
    RequestId,
    Response,
    classify,
    is_id,
    preview,
)

#: How many forgotten request ids are remembered, to tell a late answer from an unknown one.
FORGOTTEN_REMEMBERED: Final = 1024


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
        if not is_id(request_id):
            raise LocalProtocolError(f"a response needs a string or integer id: {request_id!r}")
        return self._stamp({"id": request_id, "result": result})

    def _error(
        self, request_id: RequestId | None, code: int, message: str, data: Any
    ) -> JsonObject:
        if request_id is not None and not is_id(request_id):
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
    def _dump(message: JsonObject) -> bytes:
        try:
            return dumpb(message)
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(
                f"message is not valid Unicode (lone surrogate): {exc}"
            ) from exc
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"cannot encode message as JSON: {exc}") from exc

    def _line(self, message: JsonObject) -> bytes:
        return self._dump(message) + b"\n"

    def _frame(self, message: JsonObject) -> str:
        return self._dump(message).decode()

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
            # Fast path: one orjson decode. Anything unusual (not UTF-8 or JSON, lone
            # surrogates, non-finite or 20-digit numbers, deep nesting, not an object) takes
            # the slow path, where json.loads gives the canonical answer (and repairs).
            obj = fast_loads(item, None if strict else MAX_PEER_DEPTH)
            if obj.__class__ is not dict:
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
                    preview(text),
                    error_code=INVALID_REQUEST,
                )
            )
            return
        # The same orjson fast path as for lines; anything unusual takes the careful one.
        raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        obj = fast_loads(raw, None if self.strict else MAX_PEER_DEPTH)
        if obj.__class__ is dict:
            self._events.append(self._match(classify(obj, strict=self.strict), text, n))
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
                            preview(raw),
                        )
                    )
            return self._match(classify(obj, strict=self.strict), raw, n)
        return ProtocolIssue(
            "undecodable", detail, n, _size(raw), preview(raw), error_code=PARSE_ERROR
        )

    def _match(self, message: Message | ProtocolIssue, raw: bytes | str, n: int) -> Event:
        """Fill in the method of a response from :attr:`pending`; name the line of an issue."""
        if message.__class__ is Request or message.__class__ is Notification:
            return message
        if isinstance(message, ProtocolIssue):
            return attrs.evolve(message, line_no=n, size=_size(raw), preview=preview(raw))
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
            preview(raw),
            request_id=rid,
        )


def _size(raw: bytes | str) -> int:
    return len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
