"""Run one fuzz case against a :class:`~._daemon.Target`; shared by the properties and the corpus.

Each ``run_*_case`` function takes a case (plain JSON data, see :mod:`._strategies`) and raises
AssertionError with a message that names the input and the symptom when a property fails. The
caller (:func:`execute`) always ends an example with :meth:`Target.check_alive`, so a daemon that
an input wedged or killed is reported as such, with its stderr tail and thread stacks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio
import trio_websocket

from codexd import Config, ConfigError, load_config

from . import _render as r
from ._api_surface import ACCEPTED_ERROR_CODES, INTERNAL_ERROR, MAX_MESSAGE_BYTES, WAITING_METHODS
from ._daemon import STATUS_TIMEOUT_S, Target, open_api

JsonObject = dict[str, Any]

#: How long a request that does not wait on purpose may take to be answered.
ANSWER_TIMEOUT_S = 20.0
#: How long we wait for an answer to a request that may wait on purpose (turn/wait, run/wait).
WAITING_GRACE_S = 3.0
#: Bound on one whole example (every step inside has its own, shorter bound).
EXAMPLE_TIMEOUT_S = 120.0
#: How long the server may take to answer a complete handshake.
HANDSHAKE_TIMEOUT_S = 2.0


def execute(target: Target, runner: Callable[[Target, Any], Awaitable[None]], case: Any) -> None:
    """One example: a healthy daemon, the case, then daemon/status must answer."""
    target.ensure()
    context = f"{runner.__name__} {r.describe(case)}"

    async def main() -> None:
        try:
            with trio.fail_after(EXAMPLE_TIMEOUT_S):
                await runner(target, case)
        except trio.TooSlowError:
            raise AssertionError(
                f"{context}: the example did not finish within {EXAMPLE_TIMEOUT_S:g} s"
            ) from None
        finally:
            with trio.fail_after(3 * STATUS_TIMEOUT_S + 10):
                await target.check_alive(context)

    trio.run(main)


# ---- API messages ------------------------------------------------------------------------------


def check_api_message(text: str | bytes, context: str) -> JsonObject:
    """A message from the daemon must be a JSON-RPC 2.0 response or one of its notifications."""
    if isinstance(text, bytes):
        raise AssertionError(f"{context}: the daemon sent a binary frame: {text[:200]!r}")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise AssertionError(
            f"{context}: the daemon sent a frame that is not JSON ({exc}): {text[:300]!r}"
        ) from None
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        raise AssertionError(f"{context}: not a JSON-RPC 2.0 message: {text[:300]!r}")
    if "method" in obj:
        if obj["method"] not in ("event", "events/dropped") or "id" in obj:
            raise AssertionError(f"{context}: unexpected notification: {text[:300]!r}")
        return obj
    if "id" not in obj or ("result" in obj) == ("error" in obj):
        raise AssertionError(
            f"{context}: not a response (needs id and one of result/error): {text[:300]!r}"
        )
    if "error" in obj:
        error = obj["error"]
        code = error.get("code") if isinstance(error, dict) else None
        if code == INTERNAL_ERROR:
            raise AssertionError(
                f"{context}: answered -32603 internal error (a bug): {error.get('message')!r}"
            )
        if not isinstance(code, int) or code not in ACCEPTED_ERROR_CODES:
            raise AssertionError(
                f"{context}: error code {code!r} is not documented: {text[:300]!r}"
            )
        if not isinstance(error.get("message"), str):
            raise AssertionError(f"{context}: error without a message: {text[:300]!r}")
    return obj


def _closed(exc: trio_websocket.ConnectionClosed) -> str:
    reason = exc.reason
    return f"code {reason.code} {reason.reason or ''}".strip() if reason else "no close frame"


class Rpc:
    """Requests on one connection; every message received is checked by check_api_message."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, context: str) -> None:
        self.ws = ws
        self.context = context
        self.notifications: list[JsonObject] = []
        self._answers: dict[str, JsonObject] = {}
        self._n = 0

    async def send(self, method: str, params: Any) -> str:
        self._n += 1
        request_id = f"fz-{self._n}"
        text = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        await self.send_text(text)
        return request_id

    async def send_text(self, text: str) -> None:
        """Send a frame; the daemon must take it within ANSWER_TIMEOUT_S and keep the line."""
        with trio.move_on_after(ANSWER_TIMEOUT_S) as scope:
            try:
                await self.ws.send_message(text)
            except trio_websocket.ConnectionClosed as exc:
                raise AssertionError(
                    f"{self.context}: the daemon closed the connection ({_closed(exc)})"
                ) from None
        if scope.cancelled_caught:
            raise AssertionError(
                f"{self.context}: the daemon did not read a frame within {ANSWER_TIMEOUT_S:g} s"
            )

    async def _receive(self) -> None:
        try:
            message = await self.ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise AssertionError(
                f"{self.context}: the daemon closed the connection ({_closed(exc)})"
            ) from None
        obj = check_api_message(message, self.context)
        if "method" in obj:
            self.notifications.append(obj)
        else:
            self._answers[str(obj.get("id"))] = obj

    async def answer(
        self, request_id: str, timeout: float = ANSWER_TIMEOUT_S, *, or_null_id: bool = False
    ) -> JsonObject | None:
        """The answer to ``request_id``; with ``or_null_id`` an error with ``"id": null`` counts
        too (a frame that does not parse is answered without its id: the only request in flight
        on that connection is the one it answers)."""
        keys = (request_id, "None") if or_null_id else (request_id,)
        with trio.move_on_after(timeout):
            while not any(key in self._answers for key in keys):
                await self._receive()
            return self._answers.pop(next(key for key in keys if key in self._answers))
        return None

    async def call(self, method: str, params: Any, timeout: float = ANSWER_TIMEOUT_S) -> JsonObject:
        request_id = await self.send(method, params)
        answer = await self.answer(request_id, timeout)
        if answer is None:
            raise AssertionError(f"{self.context}: {method} not answered within {timeout:g} s")
        return answer

    async def result(self, method: str, params: Any, timeout: float = ANSWER_TIMEOUT_S) -> Any:
        answer = await self.call(method, params, timeout)
        if "result" not in answer:
            raise AssertionError(f"{self.context}: {method} {r.describe(params)} failed: {answer}")
        return answer["result"]

    async def notification(
        self, match: Callable[[JsonObject], bool], timeout: float
    ) -> JsonObject | None:
        with trio.move_on_after(timeout):
            while True:
                for index, note in enumerate(self.notifications):
                    if match(note):
                        return self.notifications.pop(index)
                self.notifications.clear()
                await self._receive()
        return None


def _event_of(note: JsonObject) -> JsonObject:
    params = note.get("params") or {}
    event = params.get("event") if isinstance(params, dict) else None
    return event if isinstance(event, dict) else {}


# ---- (a) handshakes ----------------------------------------------------------------------------


def render_handshake(case: Mapping[str, Any], refs: Mapping[str, str]) -> bytes:
    request = case["request"]
    eol = request.get("eol", "\r\n")
    lines = [f"{request['method']} {request['target']} {request['version']}".rstrip()]
    lines += [f"{name}: {value}" for name, value in request["headers"]]
    text = eol.join(lines) + eol + eol
    data = r.substitute(text, refs).encode("latin-1", "replace")
    if case.get("truncate") is not None:
        data = data[: int(case["truncate"])]
    return data + r.substitute(case.get("after") or "", refs).encode("latin-1", "replace")


_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def _read_until(
    stream: trio.SocketStream, done: Callable[[bytes], bool], timeout: float
) -> bytes:
    data = b""
    with trio.move_on_after(timeout):
        while not done(data):
            try:
                chunk = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                break
            if not chunk:
                break
            data += chunk
    return data


async def run_handshake_case(target: Target, case: Mapping[str, Any]) -> None:
    """``count`` connections (default 1) each get the request; the last one is held open while
    daemon/status is checked, the earlier ones are closed first (clients that give up)."""
    host, port = target.host_port
    data = render_handshake(case, target.refs)
    mode = case.get("mode", "eof")
    for _ in range(int(case.get("count", 1)) - 1):
        with trio.fail_after(STATUS_TIMEOUT_S):
            early = await trio.open_tcp_stream(host, port)
        try:
            if mode != "silent":
                with contextlib.suppress(*_GONE):
                    await early.send_all(data)
        finally:
            await early.aclose()
    with trio.fail_after(STATUS_TIMEOUT_S):
        stream = await trio.open_tcp_stream(host, port)
    try:
        if mode != "silent":
            # The server may refuse and close early.
            with trio.move_on_after(STATUS_TIMEOUT_S), contextlib.suppress(*_GONE):
                await stream.send_all(data)
        if mode == "eof":
            with contextlib.suppress(*_GONE):
                await stream.send_eof()
            await _read_until(stream, lambda _: False, HANDSHAKE_TIMEOUT_S)
        elif mode == "hold" and case.get("truncate") is None:
            await _read_until(stream, lambda d: b"\r\n\r\n" in d, HANDSHAKE_TIMEOUT_S)
        # While this connection is still open, another client must be served.
        await target.check_alive(f"handshake {r.describe(case)} (connection still open)")
    finally:
        await stream.aclose()


# ---- (b) frames --------------------------------------------------------------------------------


def _frame_data(frame: Mapping[str, Any], refs: Mapping[str, str]) -> tuple[str | bytes, int]:
    payload = frame["payload"]
    if frame.get("binary"):
        data = r.render_bytes(payload, refs)
        return data, len(data)
    text = r.render_text(payload, refs)
    # A text frame must be valid UTF-8: a lone surrogate can only travel escaped.
    text = r._escape_surrogates(text)
    return text, len(text.encode("utf-8"))


async def _send_frame(
    ws: trio_websocket.WebSocketConnection, data: str | bytes, size: int, context: str
) -> bool:
    """Send one frame (bounded); False if the daemon closed while taking an oversize frame."""
    with trio.move_on_after(ANSWER_TIMEOUT_S) as scope:
        try:
            await ws.send_message(data)
        except trio_websocket.ConnectionClosed as exc:
            if size > MAX_MESSAGE_BYTES:
                return False
            raise AssertionError(
                f"{context}: the daemon closed the connection ({_closed(exc)})"
            ) from None
    if scope.cancelled_caught:
        raise AssertionError(
            f"{context}: the daemon did not read the frame within {ANSWER_TIMEOUT_S:g} s"
        )
    return True


async def run_frame_case(target: Target, case: Mapping[str, Any]) -> None:
    async with open_api(target.url, target.token) as ws:
        for index, frame in enumerate(case["frames"]):
            data, size = _frame_data(frame, target.refs)
            kind = "binary" if frame.get("binary") else "text"
            context = f"frame {index} ({kind}, {size} bytes) {r.describe(frame)}"
            if not await _send_frame(ws, data, size, context):
                return  # over the limit and closed while sending: as documented
            if size > MAX_MESSAGE_BYTES:
                with trio.move_on_after(ANSWER_TIMEOUT_S):
                    try:
                        while True:
                            await ws.get_message()
                    except trio_websocket.ConnectionClosed as exc:
                        code = exc.reason.code if exc.reason else None
                        assert code == 1009, (
                            f"{context}: over the limit, expected close 1009, got {_closed(exc)}"
                        )
                        return
                raise AssertionError(
                    f"{context}: a frame over {MAX_MESSAGE_BYTES} bytes left the connection open"
                )
            # A sentinel request after the frame: everything before its answer must be valid.
            rpc = Rpc(ws, context)
            sentinel = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": f"fz-sentinel-{index}",
                    "method": "daemon/status",
                    "params": {},
                }
            )
            await rpc.send_text(sentinel)
            answer = await rpc.answer(f"fz-sentinel-{index}", ANSWER_TIMEOUT_S)
            if answer is None:
                raise AssertionError(
                    f"{context}: daemon/status sent after it on that connection not answered"
                    f" within {ANSWER_TIMEOUT_S:g} s"
                )
            if "result" not in answer:
                raise AssertionError(
                    f"{context}: daemon/status sent after it failed: {r.describe(answer)}"
                )


# ---- (c) API params ----------------------------------------------------------------------------

#: Environment names a run must not override (they keep `codex exec` offline and sandboxed).
_PROTECTED_ENV = (
    "CODEX",
    "HOME",
    "OPENAI",
    "PATH",
    "MOCK",
    "XDG",
    "SSL",
    "HTTP",
    "ALL_PROXY",
    "NO_PROXY",
    "LD_",
    "PYTHON",
)


def offline_guard(method: str, params: Any) -> Any:
    """Keep run/create offline: no env override of CODEX_HOME/HOME/proxies, no ``-c`` override
    of providers or URLs (everything else, NULs and ``=`` included, goes through as drawn)."""
    if method != "run/create" or not isinstance(params, dict):
        return params
    params = dict(params)
    env = params.get("env")
    if isinstance(env, dict):
        params["env"] = {
            (
                f"FZ_{k}"
                if isinstance(k, str) and k.upper().lstrip().startswith(_PROTECTED_ENV)
                else k
            ): v
            for k, v in env.items()
        }
    config = params.get("config")
    if isinstance(config, list):
        params["config"] = [
            f"fz_{item}"
            if isinstance(item, str) and "=" in item and item.split("=", 1)[0].strip()
            else item
            for item in config
        ]
    if isinstance(params.get("profile"), str):
        params["profile"] = "fz_" + params["profile"]
    return params


async def _fresh_approval(target: Target) -> str | None:
    """A pending approval made for this example (session SESSION2 starts a turn that asks one)."""
    async with open_api(target.url, target.token) as ws:
        rpc = Rpc(ws, "preparing a fresh approval")
        for _attempt in range(2):
            session_id = target.refs.get("SESSION2", "")
            await rpc.result(
                "events/subscribe", {"type": "approval.requested", "sessionId": session_id}
            )
            got = await rpc.call("session/get", {"sessionId": session_id})
            session = got.get("result") or {}
            if session.get("currentTurnId"):
                await rpc.call("turn/interrupt", {"sessionId": session_id})
            started = await rpc.call("turn/start", {"sessionId": session_id, "input": "ask me"})
            if "result" in started:
                note = await rpc.notification(
                    lambda n: _event_of(n).get("type") == "approval.requested", 10
                )
                if note is not None:
                    return str((_event_of(note).get("detail") or {}).get("approvalId"))
            created = await rpc.call("session/create", {"purpose": "general", "cwd": "/tmp"})
            if "result" not in created:
                return None
            target.refs["SESSION2"] = created["result"]["sessionId"]
    return None


async def run_api_case(target: Target, case: Mapping[str, Any]) -> None:
    method = case["method"]
    params = offline_guard(method, case.get("params"))
    refs = dict(target.refs)
    if method == "approval/respond":
        fresh = await _fresh_approval(target)
        if fresh:
            refs["APPROVAL"] = fresh
    context = f"{method} {r.describe(case)}"
    async with open_api(target.url, target.token) as ws:
        rpc = Rpc(ws, context)
        if method == "events/unsubscribe":
            refs["SUBSCRIPTION"] = (await rpc.result("events/subscribe", {}))["subscriptionId"]
        request: JsonObject = {"jsonrpc": "2.0", "id": "fz-req", "method": method}
        if "params" in case:
            request["params"] = params
        text = r.json_text(request, refs, ascii_only=bool(case.get("ascii", True)))
        size = len(text.encode("utf-8"))
        if not await _send_frame(ws, text, size, context) or size > MAX_MESSAGE_BYTES:
            return  # over the limit: closing (1009) is the documented answer; frames test it
        # A wait method may wait on purpose, but not past a short timeoutS it was given.
        timeout_s = params.get("timeoutS") if isinstance(params, dict) else None
        short = isinstance(timeout_s, int | float) and not isinstance(timeout_s, bool)
        short = short and 0 <= timeout_s <= WAITING_GRACE_S
        waits = method in WAITING_METHODS and not short
        answer = await rpc.answer(
            "fz-req", WAITING_GRACE_S if waits else ANSWER_TIMEOUT_S, or_null_id=True
        )
        if answer is None and not waits:
            raise AssertionError(f"{context}: not answered within {ANSWER_TIMEOUT_S:g} s")


# ---- (d) configuration -------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(value: Any) -> str:
    token = r._token(value)
    if token is not None:
        kind, arg = token
        if kind == "$fz:raw":
            return r.raw_text(arg)
        raise ValueError(f"token {kind} has no TOML form")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(type(value))


def render_toml(keys: Mapping[str, Any]) -> str:
    top: list[str] = []
    sections: dict[str, list[str]] = {}
    for dotted, value in keys.items():
        section, _, rest = dotted.partition(".")
        if not rest:
            top.append(f"{_toml_string(section)} = {_toml_value(value)}")
        else:
            key = ".".join(_toml_string(part) for part in rest.split("."))
            sections.setdefault(section, []).append(f"{key} = {_toml_value(value)}")
    text = "\n".join(top) + "\n"
    for section, lines in sections.items():
        text += f"\n[{_toml_string(section)}]\n" + "\n".join(lines) + "\n"
    return text


def config_keys() -> list[str]:
    """Every dotted key of the Config tree (leaves; ``child.env`` is a leaf)."""
    out: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        attrs.resolve_types(cls)
        for field in attrs.fields(cls):
            if isinstance(field.type, type) and attrs.has(field.type):
                walk(field.type, prefix + field.name + ".")
            else:
                out.append(prefix + field.name)

    walk(Config, "")
    return out


def env_key(name: str) -> str:
    return name[len("CODEXD_") :].lower().replace("__", ".")


def _names_a_key(message: str, keys: list[str]) -> bool:
    for key in keys:
        if key and key in message:
            return True
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            if f"{'.'.join(parts[:n])}:" in message:
                return True
    return False


def _nan_fields(obj: Any, prefix: str = "") -> list[str]:
    found = []
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if attrs.has(type(value)):
            found += _nan_fields(value, prefix + field.name + ".")
        elif isinstance(value, float) and math.isnan(value):
            found.append(prefix + field.name)
    return found


def run_config_case(case: Mapping[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="cxfz-config-") as tmp:
        path = Path(tmp) / "codexd.toml"
        data = render_toml(case.get("toml") or {}).encode("utf-8", "surrogatepass")
        tail = case.get("tail") or ""
        data += r.render_bytes(tail, {}) if tail else b""
        path.write_bytes(data)
        env = {str(k): r.render_text(v, {}) for k, v in (case.get("env") or {}).items()}
        keys = [*(case.get("toml") or {}), *(env_key(n) for n in env if n.startswith("CODEXD_"))]
        keys += [n for n in env if n.startswith("CODEXD_")]
        context = f"load_config({r.describe(case, 600)})"
        try:
            config = load_config(path, environ=env)
        except ConfigError as exc:
            message = str(exc)
            if not (_names_a_key(message, keys) or (tail and str(path) in message)):
                raise AssertionError(
                    f"{context}: ConfigError names none of the keys set: {message!r}"
                ) from None
            return
        except Exception:
            raise AssertionError(
                f"{context}: raised something other than ConfigError:\n{traceback.format_exc()}"
            ) from None
        nan = _nan_fields(config)
        if nan:
            raise AssertionError(
                f"{context}: accepted NaN for {', '.join(nan)} (a NaN timeout crashes trio)"
            )


# ---- (e) child output --------------------------------------------------------------------------


class Control:
    """The test's end of fuzz_child.py's control socket."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = b""

    @classmethod
    async def open(cls, path: str) -> Control:
        with trio.fail_after(STATUS_TIMEOUT_S):
            return cls(await trio.open_unix_socket(path))

    async def _line(self, timeout: float, what: str) -> bytes:
        with trio.move_on_after(timeout):
            while b"\n" not in self._buffer:
                chunk = await self.stream.receive_some(65536)
                if not chunk:
                    raise AssertionError(
                        f"the app-server child closed its control socket while {what}"
                        " (the daemon stopped or replaced its child)"
                    )
                self._buffer += chunk
            line, _, self._buffer = self._buffer.partition(b"\n")
            return line
        raise AssertionError(
            f"the app-server child did not confirm {what} within {timeout:g} s"
            " (codexd stopped reading its stdout?)"
        )

    async def _send(self, data: bytes, what: str) -> None:
        with trio.move_on_after(STATUS_TIMEOUT_S) as scope:
            await self.stream.send_all(data)
        if scope.cancelled_caught:
            raise AssertionError(
                f"the app-server child did not take {what} within {STATUS_TIMEOUT_S:g} s"
                " (codexd stopped reading its stdout?)"
            )

    async def write(self, data: bytes) -> None:
        await self._send(b"W %d\n" % len(data) + data, "the injected lines")
        line = await self._line(STATUS_TIMEOUT_S, "writing the injected lines")
        assert line == b"ok", line

    async def mark(self, name: str) -> None:
        await self._send(b"M %d\n" % len(name) + name.encode(), "the marker command")
        line = await self._line(STATUS_TIMEOUT_S, "writing the marker request")
        assert line == b"sent", line

    async def ack(self, timeout: float) -> JsonObject:
        line = await self._line(timeout, "receiving codexd's answer to the marker request")
        assert line.startswith(b"ack "), line
        return json.loads(line[4:])

    async def aclose(self) -> None:
        await self.stream.aclose()


_marker_count = 0


async def run_child_case(target: Target, case: Mapping[str, Any]) -> None:
    global _marker_count
    _marker_count += 1
    marker = f"{os.getpid()}-{target.generation}-{_marker_count}"
    control = await Control.open(target.refs["CONTROL"])
    try:
        async with open_api(target.url, target.token) as ws:
            rpc = Rpc(ws, f"child output {r.describe(case)}")
            # Every event streams to this connection: each must arrive as valid JSON-RPC.
            await rpc.result("events/subscribe", {})
            if case.get("turn_first"):
                await rpc.call("turn/start", {"sessionId": target.refs["SESSION"], "input": "go"})
            for item in case["lines"]:
                data = r.render_bytes(item["line"], {})
                await control.write(data + (b"\n" if item.get("newline", True) else b""))
            await control.mark(marker)
            note = await rpc.notification(
                lambda n: (_event_of(n).get("detail") or {}).get("method") == "fuzz/marker",
                STATUS_TIMEOUT_S,
            )
            if note is None:
                raise AssertionError(
                    f"{rpc.context}: the marker server request written after the injected lines did"
                    f" not become an approval.requested event within {STATUS_TIMEOUT_S:g} s"
                    " (codexd's app-server reader is stuck or dropped it)"
                )
            approval_id = (_event_of(note).get("detail") or {}).get("approvalId")
            await rpc.result("approval/respond", {"approvalId": approval_id, "decision": "decline"})
            await control.ack(STATUS_TIMEOUT_S)
            answers = case.get("answers") or []
            if answers:
                listed = await rpc.result("approval/list", {"status": "pending"})
                pending = listed.get("approvals") or []
                for index, answer in enumerate(answers):
                    if not pending:
                        break
                    approval = pending[index % len(pending)]
                    params = {"approvalId": approval["approvalId"], **answer}
                    text = r.json_text(
                        {
                            "jsonrpc": "2.0",
                            "id": "fz-answer",
                            "method": "approval/respond",
                            "params": params,
                        },
                        {},
                    )
                    if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
                        continue  # over the limit: the frames property covers the 1009 close
                    await rpc.send_text(text)
                    if await rpc.answer("fz-answer", or_null_id=True) is None:
                        raise AssertionError(
                            f"{rpc.context}: approval/respond {r.describe(params)} not answered"
                        )
    finally:
        await control.aclose()
