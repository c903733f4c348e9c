"""A tiny stand-in for ``codex app-server`` whose stdout the fuzz suite controls. Stdlib only.

Run as ``python -I -u fuzz_child.py --control /path/to/socket``. On stdin it speaks the app-server
wire format (one JSON object per line, no ``"jsonrpc"`` field, ``emittedAtMs`` on notifications,
-32600 for errors; see /work/shared/docs/real-codex.md) well enough for codexd to initialize it,
open sessions (``thread/start``, ``thread/resume``, ``thread/read``) and start, steer and
interrupt turns. Turns it starts stay ``inProgress`` until the test injects their end.

On the unix socket given by ``--control`` it takes commands from the test, one connection at a
time, each a header line then a payload:

``W <n>\\n`` + n bytes
    write the bytes to stdout verbatim (after replacing ``@@THREAD@@`` / ``@@TURN@@`` with the
    latest thread and turn ids); answers ``ok\\n`` once written.
``M <n>\\n`` + a marker name
    write ``\\n`` and a server request ``{"id": "fuzz-mark-<name>", "method": "fuzz/marker"}``;
    answers ``sent\\n``, then ``ack <answer json>\\n`` when codexd has answered that request
    (which proves codexd's reader and writer both got past everything written before it).

It exits 0 when stdin closes (as the real server does) and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any

CLI_VERSION = "0.163.0"

_out_lock = threading.Lock()
_state_lock = threading.Lock()
_threads: dict[str, dict[str, Any]] = {}
_latest = {"thread": "", "turn": ""}
_markers: dict[str, tuple[threading.Event, list[Any]]] = {}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _write(data: bytes) -> None:
    with _out_lock:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]


def _send(obj: dict[str, Any]) -> None:
    _write(
        json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
        + b"\n"
    )


def _notify(method: str, params: dict[str, Any]) -> None:
    _send({"method": method, "params": params, "emittedAtMs": _now_ms()})


def _thread_json(thread_id: str) -> dict[str, Any]:
    info = _threads.get(thread_id) or {"cwd": "/", "active": None}
    status: dict[str, Any] = (
        {"type": "active", "activeFlags": []} if info.get("active") else {"type": "idle"}
    )
    return {
        "id": thread_id,
        "sessionId": thread_id,
        "forkedFromId": None,
        "parentThreadId": None,
        "preview": "",
        "ephemeral": False,
        "modelProvider": "mock",
        "model": "mock-model",
        "createdAt": int(time.time()),
        "updatedAt": int(time.time()),
        "status": status,
        "path": None,
        "cwd": info.get("cwd", "/"),
        "cliVersion": CLI_VERSION,
        "source": "vscode",
        "turns": [],
    }


def _thread_response(thread_id: str) -> dict[str, Any]:
    return {
        "thread": _thread_json(thread_id),
        "model": "mock-model",
        "modelProvider": "mock",
        "serviceTier": None,
        "cwd": _threads[thread_id]["cwd"],
        "instructionSources": [],
        "approvalPolicy": "on-request",
        "approvalsReviewer": "user",
        "sandbox": {"type": "readOnly", "networkAccess": False},
        "reasoningEffort": None,
    }


def _turn_json(turn_id: str, status: str = "inProgress") -> dict[str, Any]:
    return {
        "id": turn_id,
        "items": [],
        "itemsView": "notLoaded",
        "status": status,
        "error": None,
        "startedAt": int(time.time()),
        "completedAt": None,
        "durationMs": None,
    }


class _Error(Exception):
    pass


def _params_thread(params: dict[str, Any]) -> str:
    thread_id = params.get("threadId")
    if not isinstance(thread_id, str):
        raise _Error("Invalid request: missing field `threadId`")
    return thread_id


def _handle_request(method: str, params: Any) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """(result, notifications to send after it)."""
    if not isinstance(params, dict):
        raise _Error("Invalid request: missing field `params`")
    notes: list[tuple[str, dict[str, Any]]] = []
    if method == "initialize":
        return {
            "userAgent": f"fuzz-child/{CLI_VERSION}",
            "codexHome": os.environ.get("CODEX_HOME", ""),
            "platformFamily": "unix",
            "platformOs": sys.platform,
        }, notes
    if method in ("thread/start", "thread/resume"):
        with _state_lock:
            thread_id = (params.get("threadId") if method == "thread/resume" else None) or str(
                uuid.uuid4()
            )
            if not isinstance(thread_id, str):
                raise _Error("Invalid request: invalid type for `threadId`")
            cwd = params.get("cwd") if isinstance(params.get("cwd"), str) else "/"
            _threads.setdefault(thread_id, {"cwd": cwd, "active": None})
            _latest["thread"] = thread_id
            result = _thread_response(thread_id)
        if method == "thread/start":
            notes.append(("thread/started", {"thread": result["thread"]}))
        return result, notes
    if method == "thread/read":
        thread_id = _params_thread(params)
        with _state_lock:
            return {"thread": _thread_json(thread_id), "readState": None}, notes
    if method == "turn/start":
        thread_id = _params_thread(params)
        with _state_lock:
            info = _threads.setdefault(thread_id, {"cwd": "/", "active": None})
            if info["active"]:
                return {"turn": _turn_json(info["active"])}, notes
            turn_id = str(uuid.uuid4())
            info["active"] = turn_id
            _latest["turn"] = turn_id
        notes.append(("turn/started", {"threadId": thread_id, "turn": _turn_json(turn_id)}))
        return {"turn": _turn_json(turn_id)}, notes
    if method == "turn/steer":
        thread_id = _params_thread(params)
        with _state_lock:
            active = (_threads.get(thread_id) or {}).get("active")
        if not active:
            raise _Error("no active turn to steer")
        return {"turnId": active}, notes
    if method == "turn/interrupt":
        thread_id = _params_thread(params)
        with _state_lock:
            info = _threads.get(thread_id) or {}
            active = info.get("active")
            info["active"] = None
        if active:
            done = _turn_json(active, "interrupted")
            notes.append(("turn/completed", {"threadId": thread_id, "turn": done}))
        return {}, notes
    raise _Error(f"Invalid request: unknown variant `{method}`")


def _on_line(line: bytes) -> None:
    try:
        msg = json.loads(line)
    except ValueError:
        return
    if not isinstance(msg, dict):
        return
    method = msg.get("method")
    if "id" in msg and not isinstance(method, str):
        # An answer to one of our server requests.
        request_id = msg.get("id")
        if isinstance(request_id, str) and request_id.startswith("fuzz-mark-"):
            with _state_lock:
                waiter = _markers.pop(request_id[len("fuzz-mark-") :], None)
            if waiter is not None:
                waiter[1].append(msg)
                waiter[0].set()
        return
    if not isinstance(method, str) or "id" not in msg:
        return  # a notification (initialized) or junk
    try:
        result, notes = _handle_request(method, msg.get("params"))
    except _Error as exc:
        _send({"error": {"code": -32600, "message": str(exc)}, "id": msg["id"]})
        return
    except Exception as exc:  # odd params must not kill the stand-in
        _send({"error": {"code": -32603, "message": repr(exc)}, "id": msg["id"]})
        return
    _send({"id": msg["id"], "result": result})
    for note_method, params in notes:
        _notify(note_method, params)


# ---- the control socket ----------------------------------------------------------------------


def _read_exact(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_header(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _serve_control(conn: socket.socket) -> None:
    with conn:
        try:
            while True:
                command, _, size = _read_header(conn).strip().partition(b" ")
                payload = _read_exact(conn, int(size))
                if command == b"W":
                    with _state_lock:
                        payload = payload.replace(b"@@THREAD@@", _latest["thread"].encode())
                        payload = payload.replace(b"@@TURN@@", _latest["turn"].encode())
                    _write(payload)
                    conn.sendall(b"ok\n")
                elif command == b"M":
                    name = payload.decode()
                    event = threading.Event()
                    box: list[Any] = []
                    with _state_lock:
                        _markers[name] = (event, box)
                    request = {"id": f"fuzz-mark-{name}", "method": "fuzz/marker", "params": {}}
                    _write(b"\n" + json.dumps(request).encode() + b"\n")
                    conn.sendall(b"sent\n")
                    event.wait()
                    conn.sendall(b"ack " + json.dumps(box[0]).encode() + b"\n")
                else:
                    conn.sendall(b"error unknown command\n")
        except (EOFError, OSError, ValueError):
            return


def _listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    return server


def _control_loop(server: socket.socket) -> None:
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve_control, args=(conn,), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--control":
        print("usage: fuzz_child.py --control SOCKET", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Bound before the first line is read, so the socket exists once codexd is initialized.
    server = _listen(argv[1])
    threading.Thread(target=_control_loop, args=(server,), daemon=True).start()
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        _on_line(line)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
