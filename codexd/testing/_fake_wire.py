"""The fake app-server's wire vocabulary and script options (stdlib only; see _fake_child).

Kept apart from the server loop so that each file stays readable; like the child, it imports
only the standard library, so a spawned fake starts in ~30 ms.
"""

from __future__ import annotations

import json
import os
import select
import threading
import time
from collections.abc import Generator
from typing import Any

JSON = dict[str, Any]

CLI_VERSION = "0.163.0"

# The healthy defaults, for the stdlib-only child. FakeAppServerScript mirrors them (a test checks).
_DEFAULTS: JSON = {
    "reply_text": "Hello from the fake app-server.",
    "delta_count": 3,
    "turn_duration_s": 0.0,
    "model": "mock-model",
    "model_provider": "mock",
    "known_threads": [],
    "known_turns": [],
    "extra_results": {},
    "startup_delay_s": 0.0,
    "exit_immediately": False,
    "exit_code": 1,
    "exit_after_messages": None,
    "exit_on_turn_start": False,
    "garbage_lines": [],
    "garbage_after_initialize": False,
    "oversize_line_bytes": 0,
    "truncated_line_then_exit": False,
    "swallow_turn_completed": False,
    "stall_methods": [],
    "ignore_sigterm": False,
    "server_request_flood": 0,
    "approval_requests": 0,
    "notification_flood": 0,
    "stderr_spew_bytes_per_s": 0,
    "stderr_line_bytes": 200,
}

_THREAD_METHODS = ("thread/start", "thread/resume", "thread/read", "thread/turns/list")
_TURN_METHODS = ("turn/start", "turn/steer", "turn/interrupt")
_METHODS = frozenset(("initialize", *_THREAD_METHODS, *_TURN_METHODS, "fake/flood"))
_APPROVAL = "item/commandExecution/requestApproval"
_READ_ONLY: JSON = {"type": "readOnly", "networkAccess": False}
_SANDBOX: dict[str, JSON] = {
    "danger-full-access": {"type": "dangerFullAccess"},
    "workspace-write": {
        "type": "workspaceWrite",
        "writableRoots": [],
        "networkAccess": False,
        "excludeTmpdirEnvVar": False,
        "excludeSlashTmp": False,
    },
}
_FLOOD_BATCH = 4096


class _RpcError(Exception):
    def __init__(self, message: str, code: int = -32600) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_id() -> str:
    """A UUIDv7-shaped id, like the real server's thread, turn and item ids."""
    h = f"{_now_ms():012x}7{os.urandom(8).hex()[:3]}8{os.urandom(8).hex()[:15]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


_stderr_lock = threading.Lock()


def _err(data: bytes) -> None:
    with _stderr_lock:
        _write_all(2, data)


def _record(kind: str, **fields: Any) -> None:
    _err(_dumps({"fake": kind, **fields}))


def _user_item(content: Any) -> JSON:
    return {"type": "userMessage", "id": _new_id(), "clientId": None, "content": content}


def _agent_item(item_id: str, text: str) -> JSON:
    return {
        "type": "agentMessage",
        "id": item_id,
        "text": text,
        "phase": None,
        "memoryCitation": None,
        "delivery": None,
        "questions": None,
    }


class _Turn:
    def __init__(self, turn_id: str, thread: _Thread, status: str = "inProgress") -> None:
        self.id = turn_id
        self.thread = thread
        self.status = status
        self.items: list[JSON] = []
        self.started_ms = _now_ms()
        self.completed_ms: int | None = None
        self.error: JSON | None = None
        self.pending: set[str] = set()
        self.cancelled = False  # an approval answered "cancel"
        self.ended = False
        self.flow: Generator[float | None, None, str] | None = None

    def to_json(self, view: str = "summary") -> JSON:
        end = self.completed_ms
        return {
            "id": self.id,
            "rootTurnId": self.id,
            "items": list(self.items) if view == "summary" else [],
            "itemsView": view,
            "status": self.status,
            "error": self.error,
            "startedAt": self.started_ms // 1000,
            "completedAt": None if end is None else end // 1000,
            "durationMs": None if end is None else end - self.started_ms,
        }


class _Thread:
    def __init__(self, thread_id: str, cwd: str, loaded: bool) -> None:
        self.id = thread_id
        self.cwd = cwd
        self.loaded = loaded
        self.created_at = int(time.time())
        self.turns: list[_Turn] = []
        self.active: _Turn | None = None
        self.preview = ""


def _active(flags: list[str] | None = None) -> JSON:
    return {"type": "active", "activeFlags": flags or []}


def _field(params: JSON, name: str) -> Any:
    if params.get(name) is None:
        raise _RpcError(f"Invalid request: missing field `{name}`")
    return params[name]


def _readable(timeout: float | None) -> bool:
    return bool(select.select([0], [], [], timeout)[0])


def _exit_zero(signum: int, frame: object) -> None:
    os._exit(0)


def load_script(text: str) -> JSON:
    """Merge a script's JSON over the defaults; raise ``ValueError`` naming a bad key."""
    given = json.loads(text)
    if not isinstance(given, dict):
        raise ValueError("the script must be a JSON object")
    opts = dict(_DEFAULTS)
    for key, value in given.items():
        if key not in _DEFAULTS:
            raise ValueError(f"unknown script option {key!r}")
        default = _DEFAULTS[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif default is None:
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(f"script option {key!r} has the wrong type: {value!r}")
        opts[key] = value
    return opts
