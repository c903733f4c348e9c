"""A scriptable fake of ``codex app-server`` over stdio, for fault injection.

The real binary is what codexd's feature tests run against; this fake exists for the faults that
need control: garbage and oversize lines, truncated output, crashes mid-turn, a ``turn/completed``
that never comes, requests that are never answered, approval floods, notification floods for
benchmarks, stderr spew, a child that ignores SIGTERM, a crash loop.

This file is the child: a plain synchronous program that imports only the standard library
(no codexd, no attrs; its vocabulary is in ``_fake_wire``) so it starts in ~30 ms. It speaks the
wire protocol as codex-cli 0.163.0 does: one JSON object per line, no ``"jsonrpc"`` field,
``emittedAtMs`` on every notification, -32600 for nearly every error. The parent side,
:class:`~codexd.testing.FakeAppServerScript`, lives in ``fake_appserver``; its
:meth:`~codexd.testing.FakeAppServerScript.command` gives the argv to spawn.

The child runs as ``python -I -u <this file> --script '<json>'`` (or ``--script-file PATH``);
``python -m codexd.testing.fake_appserver`` works too but first imports the whole ``codexd``
package. The script JSON uses the attribute names of :class:`FakeAppServerScript`; omitted keys
take the healthy defaults. Records meant for tests (approval answers, steers, malformed lines) are
written to stderr as JSON lines with a ``"fake"`` key; :func:`fake_records` extracts them.
"""

from __future__ import annotations

import heapq
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

if __package__:
    from . import _fake_wire as _wire
else:  # run as a file with ``-I``: its own directory is not on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _fake_wire as _wire  # type: ignore[import-not-found,no-redef]


class _Server:
    def __init__(self, opts: _wire.JSON) -> None:
        self.o = opts
        self.out: list[bytes] = []
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.initialized = False
        self.client_name = "client"
        self.client_version = "0"
        self.messages = 0
        self.requests_sent = 0
        self.pending: dict[str, _wire._Turn] = {}
        self.threads: dict[str, _wire._Thread] = {}
        for tid in opts["known_threads"]:
            self.threads[tid] = _wire._Thread(tid, os.getcwd(), loaded=False)
        for known in opts["known_turns"]:
            tid = known["thread_id"]
            thread = self.threads.setdefault(tid, _wire._Thread(tid, os.getcwd(), loaded=False))
            turn = _wire._Turn(known["turn_id"], thread, known.get("status", "completed"))
            if turn.status != "inProgress":
                turn.completed_ms = turn.started_ms
            if known.get("text"):
                turn.items.append(_wire._agent_item(_wire._new_id(), known["text"]))
            thread.turns.append(turn)

    # -- output ---------------------------------------------------------------------------------

    def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            try:
                _wire._write_all(1, data)
            except OSError:  # the client closed stdout: nobody is listening any more
                os._exit(0)

    def exit(self, code: int) -> None:
        self.flush()
        os._exit(code)

    def notify(self, method: str, params: _wire.JSON) -> None:
        self.out.append(
            _wire._dumps({"method": method, "params": params, "emittedAtMs": _wire._now_ms()})
        )

    def raw(self, line: bytes) -> None:
        self.out.append(line)

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, fn))

    # -- main loop ------------------------------------------------------------------------------

    def run(self) -> int:
        o = self.o
        signal.signal(signal.SIGTERM, signal.SIG_IGN if o["ignore_sigterm"] else _wire._exit_zero)
        signal.signal(signal.SIGINT, _wire._exit_zero)
        if o["stderr_spew_bytes_per_s"] > 0:
            threading.Thread(target=self._spew, daemon=True).start()
        if o["startup_delay_s"] > 0:
            time.sleep(o["startup_delay_s"])
        if o["exit_immediately"]:
            self.exit(o["exit_code"])
        if not o["garbage_after_initialize"]:
            self._garbage()
        buf = b""
        while True:
            self.flush()
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            if _wire._readable(timeout):
                chunk = os.read(0, 1 << 16)
                if not chunk:  # stdin closed: exit 0 at once, like the real server
                    self.exit(0)
                buf += chunk
                if b"\n" in chunk:
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        self._line(line)
            while self.timers and self.timers[0][0] <= time.monotonic():
                heapq.heappop(self.timers)[2]()

    def _spew(self) -> None:
        size = max(8, self.o["stderr_line_bytes"])
        rate = self.o["stderr_spew_bytes_per_s"]
        start = time.monotonic()
        sent = 0
        while True:
            due = int((time.monotonic() - start) * rate / size) - sent
            if due > 0:
                lines = [b"spew %09d " % (sent + i) for i in range(min(due, 1000))]
                _wire._err(b"".join(head.ljust(size - 1, b"x") + b"\n" for head in lines))
                sent += len(lines)
            time.sleep(0.01)

    def _garbage(self) -> None:
        for line in self.o["garbage_lines"]:
            self.raw(line.encode() + b"\n")

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            _wire._record("malformedLine", line=line[:200].decode(errors="replace"))
            return
        self.messages += 1
        limit = self.o["exit_after_messages"]
        if limit is not None and self.messages >= limit:
            self.exit(self.o["exit_code"])
        method = msg.get("method")
        if not isinstance(method, str):
            if "id" in msg:
                self._answer(msg)
            else:
                _wire._record("malformedLine", line=line[:200].decode(errors="replace"))
            return
        if "id" not in msg:
            if method == "initialized" and self.initialized and self.o["notification_flood"]:
                self._flood(self.o["notification_flood"])
            return
        if method in self.o["stall_methods"]:
            return
        try:
            mark = len(self.out)
            result = self._request(method, msg.get("params"))
        except _wire._RpcError as exc:
            self.raw(
                _wire._dumps({"error": {"code": exc.code, "message": exc.message}, "id": msg["id"]})
            )
            return
        except Exception as exc:  # odd params must not kill the fake: answer and log it
            _wire._record("internalError", method=method, error=repr(exc))
            self.raw(
                _wire._dumps({"error": {"code": -32603, "message": repr(exc)}, "id": msg["id"]})
            )
            return
        # The answer goes before the notifications its handler queued, as the real server does.
        self.out.insert(mark, _wire._dumps({"id": msg["id"], "result": result}))
        if method == "initialize":
            self._after_initialize()
        elif method == "thread/start":
            self.notify("thread/started", {"thread": result["thread"]})
        elif method == "fake/flood":
            self._flood(result["count"])

    def _request(self, method: str, params: Any) -> _wire.JSON:
        if method in self.o["extra_results"]:
            result: _wire.JSON = self.o["extra_results"][method]
            return result
        if method not in _wire._METHODS:
            raise _wire._RpcError(f"Invalid request: unknown variant `{method}`")
        if params is None:
            raise _wire._RpcError("Invalid request: missing field `params`")
        if not isinstance(params, dict):
            raise _wire._RpcError("Invalid request: invalid type for `params`, expected a map")
        if method == "initialize":
            return self._initialize(params)
        if not self.initialized:
            raise _wire._RpcError("Not initialized")
        handler: Callable[[_wire.JSON], _wire.JSON] = getattr(self, "_" + method.replace("/", "_"))
        return handler(params)

    # -- requests -------------------------------------------------------------------------------

    def _initialize(self, params: _wire.JSON) -> _wire.JSON:
        info = _wire._field(params, "clientInfo")
        if not isinstance(info, dict):
            raise _wire._RpcError("Invalid request: invalid type for `clientInfo`, expected a map")
        if self.initialized:
            raise _wire._RpcError("Already initialized")
        self.initialized = True
        self.client_name = str(info.get("name", "client"))
        self.client_version = str(info.get("version", "0"))
        home = os.environ.get("CODEX_HOME") or os.path.expanduser("~/.codex")
        return {
            "userAgent": f"{self.client_name}/{_wire.CLI_VERSION} (codexd fake app-server) "
            f"({self.client_name}; {self.client_version})",
            "codexHome": home,
            "platformFamily": "unix" if os.name == "posix" else "windows",
            "platformOs": "macos" if sys.platform == "darwin" else sys.platform,
        }

    def _after_initialize(self) -> None:
        o = self.o
        if o["garbage_after_initialize"]:
            self._garbage()
        size = o["oversize_line_bytes"]
        if size > 0:
            head = b'{"method":"fake/oversize","params":{"data":"'
            tail = b'"},"emittedAtMs":%d}' % _wire._now_ms()
            pad = size - len(head) - len(tail)
            self.raw((head + b"x" * pad + tail if pad >= 0 else b"x" * size) + b"\n")
        if o["truncated_line_then_exit"]:
            line = _wire._dumps(
                {"method": "warning", "params": {"message": "cut"}, "emittedAtMs": 0}
            )
            self.raw(line[: len(line) // 2])
            self.exit(o["exit_code"])

    def _thread_json(self, thread: _wire._Thread, turns: bool = False) -> _wire.JSON:
        if not thread.loaded:
            status: _wire.JSON = {"type": "notLoaded"}
        elif thread.active is None:
            status = {"type": "idle"}
        else:
            flags = ["waitingOnApproval"] if thread.active.pending else []
            status = {"type": "active", "activeFlags": flags}
        return {
            "id": thread.id,
            "sessionId": thread.id,
            "forkedFromId": None,
            "parentThreadId": None,
            "preview": thread.preview,
            "ephemeral": False,
            "projectId": None,
            "historyMode": "paginated",
            "modelProvider": self.o["model_provider"],
            "model": self.o["model"],
            "reasoningEffort": None,
            "createdAt": thread.created_at,
            "updatedAt": int(time.time()),
            "recencyAt": thread.created_at,
            "status": status,
            "path": None,
            "cwd": thread.cwd,
            "cliVersion": _wire.CLI_VERSION,
            "originator": self.client_name,
            "source": "vscode",
            "threadSource": None,
            "agentNickname": None,
            "agentRole": None,
            "gitInfo": None,
            "name": None,
            "turns": [turn.to_json() for turn in thread.turns] if turns else [],
        }

    def _thread_response(
        self, thread: _wire._Thread, params: _wire.JSON, turns: bool = False
    ) -> _wire.JSON:
        sandbox = _wire._SANDBOX.get(str(params.get("sandbox")), _wire._READ_ONLY)
        return {
            "thread": self._thread_json(thread, turns),
            "model": self.o["model"],
            "modelProvider": self.o["model_provider"],
            "serviceTier": None,
            "cwd": thread.cwd,
            "instructionSources": [],
            "approvalPolicy": params.get("approvalPolicy") or "on-request",
            "approvalsReviewer": "user",
            "sandbox": sandbox,
            "reasoningEffort": None,
        }

    def _thread_start(self, params: _wire.JSON) -> _wire.JSON:
        thread = _wire._Thread(_wire._new_id(), str(params.get("cwd") or os.getcwd()), loaded=True)
        self.threads[thread.id] = thread
        return self._thread_response(thread, params)

    def _thread_resume(self, params: _wire.JSON) -> _wire.JSON:
        thread_id = _wire._field(params, "threadId")
        thread = self.threads.get(thread_id)
        if thread is None:
            raise _wire._RpcError(f"no rollout found for thread id {thread_id}")
        thread.loaded = True
        if params.get("cwd"):
            thread.cwd = str(params["cwd"])
        return self._thread_response(thread, params, turns=not params.get("excludeTurns"))

    def _known(self, params: _wire.JSON) -> _wire._Thread:
        thread_id = _wire._field(params, "threadId")
        thread = self.threads.get(thread_id)
        if thread is None:
            raise _wire._RpcError(f"thread not loaded: {thread_id}")
        return thread

    def _thread_read(self, params: _wire.JSON) -> _wire.JSON:
        thread = self._known(params)
        include = bool(params.get("includeTurns"))
        if include and not thread.turns:  # what 0.163.0 says for a thread with no rollout yet
            raise _wire._RpcError("list_turns is not supported yet", -32601)
        return {"thread": self._thread_json(thread, include), "readState": None}

    def _thread_turns_list(self, params: _wire.JSON) -> _wire.JSON:
        turns = [turn.to_json() for turn in self._known(params).turns]
        if params.get("sortDirection") != "asc":
            turns.reverse()
        return {"data": turns, "nextCursor": None, "backwardsCursor": None}

    def _loaded(self, params: _wire.JSON) -> _wire._Thread:
        thread_id = _wire._field(params, "threadId")
        thread = self.threads.get(thread_id)
        if thread is None or not thread.loaded:
            raise _wire._RpcError(f"thread not found: {thread_id}")
        return thread

    def _add_input(self, turn: _wire._Turn, content: Any) -> None:
        item = _wire._user_item(content)
        turn.items.append(item)
        where = {"threadId": turn.thread.id, "turnId": turn.id}
        self.notify("item/started", {"item": item, **where, "startedAtMs": _wire._now_ms()})
        self.notify("item/completed", {"item": item, **where, "completedAtMs": _wire._now_ms()})

    def _turn_start(self, params: _wire.JSON) -> _wire.JSON:
        thread = self._loaded(params)
        content = _wire._field(params, "input")
        active = thread.active
        if active is not None:  # like the real server: the input joins the running turn
            self._add_input(active, content)
            return {"turn": active.to_json("notLoaded")}
        turn = _wire._Turn(_wire._new_id(), thread)
        thread.turns.append(turn)
        thread.active = turn
        if not thread.preview and isinstance(content, list) and content:
            first = content[0]
            thread.preview = str(first.get("text", "")) if isinstance(first, dict) else ""
        response = turn.to_json("notLoaded")
        response["startedAt"] = None
        self.notify("thread/status/changed", {"threadId": thread.id, "status": _wire._active()})
        self.notify("turn/started", {"threadId": thread.id, "turn": turn.to_json("notLoaded")})
        self._add_input(turn, content)
        turn.flow = self._flow(turn)
        self.at(0.0, lambda: self._advance(turn))
        return {"turn": response}

    def _check_active(
        self, thread: _wire._Thread, expected: str, what: str, quote: str
    ) -> _wire._Turn:
        active = thread.active
        if active is None:
            raise _wire._RpcError(f"no active turn to {what}")
        if active.id != expected:
            q = quote
            raise _wire._RpcError(
                f"expected active turn id {q}{expected}{q} but found {q}{active.id}{q}"
            )
        return active

    def _turn_steer(self, params: _wire.JSON) -> _wire.JSON:
        thread = self._loaded(params)
        expected = _wire._field(params, "expectedTurnId")
        content = _wire._field(params, "input")
        if not content:
            raise _wire._RpcError("input must not be empty")
        turn = self._check_active(thread, expected, "steer", "`")
        _wire._record("steer", threadId=thread.id, turnId=turn.id, input=content)
        self._add_input(turn, content)
        return {"turnId": turn.id}

    def _turn_interrupt(self, params: _wire.JSON) -> _wire.JSON:
        thread = self._loaded(params)
        turn = self._check_active(thread, _wire._field(params, "turnId"), "interrupt", "")
        self.at(0.0, lambda: self._finish(turn, "interrupted"))
        return {}

    def _fake_flood(self, params: _wire.JSON) -> _wire.JSON:
        count = params.get("count")
        return {"count": count if isinstance(count, int) else self.o["notification_flood"]}

    # -- turns ----------------------------------------------------------------------------------

    def _advance(self, turn: _wire._Turn) -> None:
        while not turn.ended and turn.flow is not None:
            try:
                wait = next(turn.flow)
            except StopIteration as stop:
                self._finish(turn, stop.value)
                return
            if wait is None:
                if turn.pending:
                    return  # resumed by the last answer
            elif wait > 0:
                self.at(wait, lambda: self._advance(turn))
                return

    def _flow(self, turn: _wire._Turn) -> Generator[float | None, None, str]:
        """One turn's script; yields a delay in seconds, or None to wait for the answers."""
        o = self.o
        if o["server_request_flood"]:
            for _ in range(o["server_request_flood"]):
                self._ask(turn)
            yield None
        for _ in range(o["approval_requests"]):
            self._ask(turn)
            yield None
        if turn.cancelled:
            return "interrupted"
        where = {"threadId": turn.thread.id, "turnId": turn.id}
        item_id = "msg_" + _wire._new_id()
        self.notify(
            "item/started",
            {"item": _wire._agent_item(item_id, ""), **where, "startedAtMs": _wire._now_ms()},
        )
        text: str = o["reply_text"]
        count = max(1, o["delta_count"])
        interval = o["turn_duration_s"] / count
        for i in range(count):
            delta = text[i * len(text) // count : (i + 1) * len(text) // count]
            self.notify("item/agentMessage/delta", {**where, "itemId": item_id, "delta": delta})
            if o["exit_on_turn_start"]:
                self.exit(o["exit_code"])
            if interval > 0:
                yield interval
        item = _wire._agent_item(item_id, text)
        turn.items.append(item)
        self.notify("item/completed", {"item": item, **where, "completedAtMs": _wire._now_ms()})
        return "completed"

    def _ask(self, turn: _wire._Turn) -> None:
        self.requests_sent += 1
        request_id = f"req-{self.requests_sent}"
        turn.pending.add(request_id)
        self.pending[request_id] = turn
        params = {
            "threadId": turn.thread.id,
            "turnId": turn.id,
            "itemId": f"call-{self.requests_sent}",
            "startedAtMs": _wire._now_ms(),
            "command": f"echo {self.requests_sent}",
            "cwd": turn.thread.cwd,
            "availableDecisions": ["accept", "decline", "cancel"],
        }
        self.raw(_wire._dumps({"id": request_id, "method": _wire._APPROVAL, "params": params}))
        if len(turn.pending) == 1:
            status = _wire._active(["waitingOnApproval"])
            self.notify("thread/status/changed", {"threadId": turn.thread.id, "status": status})

    def _answer(self, msg: _wire.JSON) -> None:
        request_id = msg["id"]
        turn = self.pending.pop(request_id, None) if isinstance(request_id, str) else None
        fields = {k: msg[k] for k in ("result", "error") if k in msg}
        _wire._record("serverRequestAnswer", id=request_id, known=turn is not None, **fields)
        if turn is None:
            return
        turn.pending.discard(request_id)
        result = msg.get("result")
        if isinstance(result, dict) and result.get("decision") == "cancel":
            turn.cancelled = True
        self.notify("serverRequest/resolved", {"threadId": turn.thread.id, "requestId": request_id})
        if not turn.pending and not turn.ended:
            self.notify(
                "thread/status/changed", {"threadId": turn.thread.id, "status": _wire._active()}
            )
            self._advance(turn)

    def _finish(self, turn: _wire._Turn, status: str) -> None:
        if turn.ended:
            return
        turn.ended = True
        if turn.flow is not None:
            turn.flow.close()
        for request_id in sorted(turn.pending):
            self.pending.pop(request_id, None)
            self.notify(
                "serverRequest/resolved", {"threadId": turn.thread.id, "requestId": request_id}
            )
        turn.pending.clear()
        turn.status = status
        turn.completed_ms = _wire._now_ms()
        turn.thread.active = None
        if self.o["swallow_turn_completed"]:
            return
        final = [item for item in turn.items if item["type"] == "agentMessage"][-1:]
        done = {**turn.to_json(), "items": final}
        self.notify(
            "thread/status/changed", {"threadId": turn.thread.id, "status": {"type": "idle"}}
        )
        self.notify("turn/completed", {"threadId": turn.thread.id, "turn": done})

    def _flood(self, count: int) -> None:
        """``count`` agentMessage deltas as fast as the pipe takes them, then ``fake/floodDone``."""
        self.flush()
        template = (
            b'{"method":"item/agentMessage/delta","params":{"threadId":"fake-flood",'
            b'"turnId":"fake-flood","itemId":"fake-flood","delta":"%d"},"emittedAtMs":%d}\n'
        )
        for start in range(0, count, _wire._FLOOD_BATCH):
            ms = _wire._now_ms()
            lines = [
                template % (i, ms) for i in range(start, min(start + _wire._FLOOD_BATCH, count))
            ]
            self.raw(b"".join(lines))
            self.flush()
        self.notify("fake/floodDone", {"count": count})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = "{}"
    if len(args) == 2 and args[0] == "--script":
        text = args[1]
    elif len(args) == 2 and args[0] == "--script-file":
        with open(args[1], encoding="utf-8") as f:
            text = f.read()
    elif args:
        _wire._err(b"usage: fake_appserver [--script JSON | --script-file PATH]\n")
        return 2
    try:
        opts = _wire.load_script(text)
    except ValueError as exc:
        _wire._err(f"fake_appserver: {exc}\n".encode())
        return 2
    return _Server(opts).run()


if __name__ == "__main__":
    raise SystemExit(main())
