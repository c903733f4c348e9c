"""Known-bad classes of input, run as explicit ``@example``s before anything is generated.

Each is one representative of a class that once stopped, wedged or corrupted the daemon (or that
the brief named as a class to keep covered). The same inputs, with notes, are in ``corpus/``.
"""

from __future__ import annotations

from typing import Any

from . import _render as r
from ._strategies import VALID_HEADERS

# ---- (a) handshakes ----------------------------------------------------------------------------


def _handshake(headers: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "request": {
            "method": "GET",
            "target": "/",
            "version": "HTTP/1.1",
            "headers": [list(h) for h in headers],
            "eol": "\r\n",
        },
        "truncate": None,
        "after": "",
        "mode": "hold",
        **extra,
    }


def _replace(name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n == name else v) for n, v in VALID_HEADERS]


#: ``Authorization: Bearer \xe9`` (one non-ASCII byte).
NON_ASCII_BEARER = _handshake(_replace("Authorization", "Bearer \u00e9"))
#: The right token with a non-ASCII byte after it.
TOKEN_THEN_NON_ASCII = _handshake(_replace("Authorization", "Bearer @@TOKEN@@\u00e9"))
#: A non-ASCII Origin next to the right token.
NON_ASCII_ORIGIN = _handshake([*VALID_HEADERS, ("Origin", "http://\u00e9vil")])

#: 64 connections that open and close without sending a byte (each holds a handshake slot).
CLOSED_BURST = {
    **_handshake([]),
    "request": {"method": "", "target": "", "version": "", "headers": [], "eol": "\r\n"},
    "mode": "silent",
    "count": 64,
}

HANDSHAKES = [NON_ASCII_BEARER, TOKEN_THEN_NON_ASCII, NON_ASCII_ORIGIN, CLOSED_BURST]

# ---- (b) frames --------------------------------------------------------------------------------


def _text(payload: Any) -> dict[str, Any]:
    return {"frames": [{"binary": False, "payload": payload}]}


#: ``"[" * 200000``: json.loads recursion.
OPEN_BRACKETS = _text(r.repeat("[", 200_000))
#: A request whose params are nested 100 000 deep.
DEEP_PARAMS_FRAME = _text(
    r.concat(
        '{"jsonrpc":"2.0","id":1,"method":"session/list","params":',
        r.as_json(r.nest("object", 100_000, 1)),
        "}",
    )
)
#: A lone surrogate as the request id (echoed back in the answer).
SURROGATE_ID = _text(
    r.as_json({"jsonrpc": "2.0", "id": "\ud800", "method": "daemon/status", "params": {}})
)
#: A lone surrogate as the method name (quoted back in the -32601 message).
SURROGATE_METHOD = _text(r.as_json({"jsonrpc": "2.0", "id": 1, "method": "\ud800", "params": {}}))
#: A lone surrogate in an unknown parameter name (quoted back in the -32602 message).
SURROGATE_KEY = _text(
    r.as_json({"jsonrpc": "2.0", "id": 1, "method": "session/list", "params": {"\ud800": 1}})
)

FRAMES = [OPEN_BRACKETS, DEEP_PARAMS_FRAME, SURROGATE_ID, SURROGATE_METHOD, SURROGATE_KEY]

# ---- (c) API params ----------------------------------------------------------------------------


def _call(method: str, params: Any, ascii_only: bool = True) -> dict[str, Any]:
    return {"method": method, "params": params, "ascii": ascii_only}


PARAMS: dict[str, list[dict[str, Any]]] = {
    "session/create": [
        _call("session/create", {"purpose": "\ud800"}),
        _call("session/create", {"purpose": "general", "metadata": {"k": "\ud800"}}),
        _call("session/create", {"purpose": "general", "metadata": {"\ud800": 1}}),
        _call("session/create", {"metadata": r.nest("object", 100_000, 1)}),
    ],
    "run/create": [
        _call("run/create", {"prompt": "hi", "model": "a\x00b"}),
        _call("run/create", {"prompt": "hi", "env": {"K": "a\x00b"}}),
        _call("run/create", {"prompt": "hi", "config": ["a=b\x00c"]}),
        _call("run/create", {"prompt": "hi", "env": {"A=B": "x"}}),
        _call("run/create", {"prompt": "hi", "timeoutS": r.raw("NaN")}),
        _call("run/create", {"prompt": "hi", "timeoutS": r.raw("1e400")}),
        _call("run/create", {"prompt": "\ud800"}),
    ],
    "turn/wait": [
        _call("turn/wait", {"sessionId": "@@SESSION@@", "timeoutS": r.raw("NaN")}),
    ],
    "run/wait": [
        _call("run/wait", {"runId": "@@RUN@@", "timeoutS": r.raw("NaN")}),
    ],
    "events/list": [
        _call("events/list", {"after": 2**63}),
    ],
    "events/subscribe": [
        _call("events/subscribe", {"since": r.raw("1e400")}),
        _call("events/subscribe", {"type": "\ud800"}),
    ],
}

# ---- (e) child output --------------------------------------------------------------------------

#: A notification whose method and params carry lone surrogates.
SURROGATE_NOTIFICATION = {
    "turn_first": False,
    "lines": [
        {
            "line": r.as_json(
                {
                    "method": "item/agentMessage/\ud800",
                    "params": {"threadId": "@@THREAD@@", "delta": "\ud800"},
                }
            ),
            "newline": True,
        }
    ],
    "answers": [],
}
#: A server request whose method and params carry lone surrogates (becomes an approval record).
SURROGATE_SERVER_REQUEST = {
    "turn_first": False,
    "lines": [
        {
            "line": r.as_json(
                {
                    "id": "\ud800",
                    "method": "item/commandExecution/requestApproval",
                    "params": {"threadId": "@@THREAD@@", "command": "\ud800", "cwd": "\udfff"},
                }
            ),
            "newline": True,
        }
    ],
    "answers": [],
}
#: A line nested 100 000 deep.
DEEP_LINE = {
    "turn_first": False,
    "lines": [{"line": r.repeat("[", 100_000), "newline": True}],
    "answers": [],
}

#: A notification whose params are nested 400 deep (stored as event detail, shown by status).
DEEP_NOTIFICATION = {
    "turn_first": False,
    "lines": [
        {
            "line": r.as_json(
                {
                    "method": "item/agentMessage/delta",
                    "params": {
                        "threadId": "@@THREAD@@",
                        "turnId": "@@TURN@@",
                        "delta": r.nest("object", 400, {}),
                    },
                }
            ),
            "newline": True,
        }
    ],
    "answers": [],
}
#: A notification carrying a number JSON cannot encode back (1e400 parses to infinity).
INFINITE_NOTIFICATION = {
    "turn_first": False,
    "lines": [
        {"line": r.as_json({"method": "fuzz/x", "params": {"v": r.raw("1e400")}}), "newline": True}
    ],
    "answers": [],
}
#: A server request carrying NaN in its params (kept in the approval record).
NAN_SERVER_REQUEST = {
    "turn_first": False,
    "lines": [
        {
            "line": r.as_json(
                {
                    "id": "req-nan",
                    "method": "item/commandExecution/requestApproval",
                    "params": {"threadId": "@@THREAD@@", "command": "x", "v": r.raw("NaN")},
                }
            ),
            "newline": True,
        }
    ],
    "answers": [{"decision": "accept"}],
}

CHILD = [
    SURROGATE_NOTIFICATION,
    SURROGATE_SERVER_REQUEST,
    DEEP_LINE,
    DEEP_NOTIFICATION,
    INFINITE_NOTIFICATION,
    NAN_SERVER_REQUEST,
]

# ---- (d) config --------------------------------------------------------------------------------

CONFIGS = [
    {"toml": {"stop.grace_s": r.raw("nan")}, "env": {}},
    {"toml": {}, "env": {"CODEXD_TURNS__REQUEST_TIMEOUT_S": "nan"}},
    {"toml": {"mode": "exec"}, "env": {}, "tail": r.as_bytes(b"# \xff\xfe\n")},
    {"toml": {}, "env": {"CODEXD_CHILD__ENV": '{"A": 1}'}},
    {"toml": {}, "env": {"CODEXD_RUNS__PURPOSES": r.repeat("[", 5000)}},
]
