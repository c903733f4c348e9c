"""Hypothesis strategies for the fuzz suite. Every strategy draws plain JSON data (a *case*).

The value strategies lean on inputs known to hurt JSON and text handling: lone surrogates,
NUL bytes, ``=`` in env keys, ``NaN``/``Infinity``/``1e400`` literals, huge and negative
numbers, nesting 100 000 deep, strings up to 1 MB. See :mod:`._render` for the tokens.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from . import _render as r
from ._api_surface import ALL_PARAM_NAMES, DOC_VALUES, api_methods, params_of

# ---- scalars -----------------------------------------------------------------------------------

NASTY_STRINGS = [
    "",
    " ",
    "\ud800",
    "\udfff",
    "a\ud800b",
    "\udcff",
    "\x00",
    "a\x00b",
    "=",
    "A=B",
    "=x",
    "\u00e9",
    "\uffff",
    "\ufeff",
    "\U0001f600",
    "\u202e",
    "\n",
    "\r\n",
    "\t",
    "\\",
    '"',
    "..",
    "/",
    "../../../../etc/passwd",
    "-",
    "--help",
    "-c",
    "null",
    "NaN",
    "%s%n",
    "@@SESSION@@",
    "2.0",
]

#: Placeholders a case may use for ids the daemon created at start (see _render.substitute).
REF_NAMES = ["SESSION", "SESSION2", "THREAD", "TURN", "RUN", "APPROVAL", "SUBSCRIPTION"]
REFS = [f"@@{name}@@" for name in REF_NAMES]

RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "-0.0",
    "1E2",
    "0e0",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    [["1", 5000]],
    [["0.", 1], ["1", 5000]],
    [["-", 1], ["9", 400]],
]


def any_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text with every code point, lone surrogates included."""
    return st.text(st.characters(exclude_categories=()), max_size=max_size)


def big_strings() -> st.SearchStrategy[Any]:
    return st.builds(
        r.repeat,
        st.sampled_from(["x", "\u00e9", "\ud800", "\x00", "\\", '"', "\U0001f600"]),
        st.sampled_from([1000, 65537, 300_000, 1_000_000]),
    )


def deep_values() -> st.SearchStrategy[Any]:
    return st.builds(
        r.nest,
        st.sampled_from(["array", "object"]),
        st.sampled_from([2, 64, 500, 1000, 5000, 100_000]),
        st.sampled_from([1, "x", None, [], {}]),
    )


def strings() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(NASTY_STRINGS),
        st.sampled_from(DOC_VALUES),
        st.sampled_from(REFS),
        any_text(),
        st.text(max_size=20),
    )


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.builds(r.raw, st.sampled_from(RAW_NUMBERS)),
    )


def leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        numbers(),
        strings(),
        strings(),
    )


def json_values(max_leaves: int = 10, nasty_big: bool = True) -> st.SearchStrategy[Any]:
    """JSON-ish values, shallow, with deep and huge ones mixed in as tokens."""
    tree = st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(strings(), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )
    if not nasty_big:
        return tree
    return st.one_of(tree, tree, tree, tree, deep_values(), big_strings())


# ---- API params (property c) -------------------------------------------------------------------


def _env_dicts() -> st.SearchStrategy[Any]:
    key = st.one_of(
        st.sampled_from(["A=B", "=", "", "\x00", "K\x00", "\ud800", "FZ_OK", "PATH=x"]),
        any_text(10),
    )
    value = st.one_of(st.sampled_from(["", "\x00", "\ud800", "v=1", "x"]), any_text(20), numbers())
    return st.dictionaries(key, value, max_size=4)


def _input_items() -> st.SearchStrategy[Any]:
    item = st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": strings()}),
        st.fixed_dictionaries({"type": strings(), "text": json_values(4)}),
        st.dictionaries(strings(), json_values(4), max_size=3),
        json_values(4),
    )
    return st.lists(item, max_size=3)


def plausible(name: str) -> st.SearchStrategy[Any]:
    """Values that get past the type checks for a documented parameter (plus edge cases)."""
    ids = {
        "sessionId": ["@@SESSION@@", "@@SESSION2@@"],
        "runId": ["@@RUN@@"],
        "turnId": ["@@TURN@@"],
        "expectedTurnId": ["@@TURN@@"],
        "approvalId": ["@@APPROVAL@@"],
        "threadId": ["@@THREAD@@"],
        "subscriptionId": ["@@SUBSCRIPTION@@"],
    }
    if name in ids:
        return st.one_of(st.sampled_from(ids[name]), strings())
    if name == "timeoutS":
        return st.one_of(
            st.floats(0, 2),
            st.sampled_from([0, 1, -1, -0.0, 1e-9]),
            st.builds(r.raw, st.sampled_from(["NaN", "1e400", "-1e400", "Infinity", "1e308"])),
        )
    if name in ("since", "after", "limit"):
        return st.one_of(
            st.integers(-5, 10**6),
            st.sampled_from([0, 1, 5000, 5001, 2**63, -(2**63)]),
            numbers(),
        )
    if name == "input":
        return st.one_of(strings(), big_strings(), _input_items())
    if name == "env":
        return _env_dicts()
    if name == "config":
        return st.one_of(
            st.lists(
                st.one_of(strings(), st.builds("{}={}".format, strings(), strings())), max_size=4
            ),
            st.dictionaries(strings(), json_values(6), max_size=4),
        )
    if name in ("images", "addDirs"):
        return st.lists(strings(), max_size=3)
    if name in ("metadata", "outputSchema", "sandboxPolicy", "collaborationMode", "answers"):
        return st.one_of(st.dictionaries(strings(), json_values(6), max_size=4), deep_values())
    if name == "skipGitRepoCheck":
        return st.booleans()
    if name == "approvalPolicy":
        return st.one_of(strings(), st.dictionaries(strings(), json_values(4), max_size=3))
    return st.one_of(strings(), strings(), numbers(), big_strings())


def param_values(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(plausible(name), plausible(name), plausible(name), json_values())


@st.composite
def api_params(draw: st.DrawFn, method: str) -> Any:
    """A params object for ``method``: documented keys (mostly), plus strays, random values."""
    names = params_of(method) or ALL_PARAM_NAMES
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(st.one_of(st.none(), json_values(), st.lists(json_values(4), max_size=3)))
    params: dict[str, Any] = {}
    if names:
        chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
        for name in chosen:
            params[name] = draw(param_values(name))
    for _ in range(draw(st.integers(0, 2 if shape < 4 else 0))):
        key = draw(st.one_of(st.sampled_from(ALL_PARAM_NAMES), strings()))
        params[key] = draw(json_values())
    return params


@st.composite
def api_cases(draw: st.DrawFn, method: str) -> dict[str, Any]:
    return {
        "method": method,
        "params": draw(api_params(method)),
        "ascii": draw(st.booleans()),
    }


# ---- frames (property b) -----------------------------------------------------------------------


def request_ids() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-(2**70), 2**70),
        strings(),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.builds(r.raw, st.sampled_from(RAW_NUMBERS)),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


@st.composite
def rpc_objects(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        obj["jsonrpc"] = "2.0"
    elif draw(st.booleans()):
        obj["jsonrpc"] = draw(json_values(3, nasty_big=False))
    if draw(st.integers(0, 5)):
        obj["id"] = draw(request_ids())
    method_kind = draw(st.integers(0, 5))
    if method_kind < 4:
        method = draw(st.sampled_from(api_methods()))
        obj["method"] = method
        if draw(st.booleans()):
            obj["params"] = draw(api_params(method))
    elif method_kind == 4:
        obj["method"] = draw(json_values(4))
        if draw(st.booleans()):
            obj["params"] = draw(json_values())
    else:
        for key in draw(st.lists(st.sampled_from(["result", "error"]), max_size=2, unique=True)):
            obj[key] = draw(json_values(4))
    for _ in range(draw(st.integers(0, 1))):
        obj[draw(strings())] = draw(json_values(3))
    return obj


def frame_payloads() -> st.SearchStrategy[dict[str, Any]]:
    text = st.one_of(
        st.builds(r.as_json, rpc_objects(), ascii_only=st.booleans()),
        st.builds(r.as_json, rpc_objects(), ascii_only=st.booleans()),
        st.builds(r.as_json, json_values(), ascii_only=st.booleans()),
        st.builds(r.as_json, st.lists(rpc_objects(), min_size=0, max_size=3)),
        any_text(200),
        st.builds(
            r.repeat,
            st.sampled_from(["[", "{", '{"a":', "[1,", '"', "\\"]),
            st.sampled_from([1, 1000, 200_000, 1_000_000]),
        ),
        st.builds(
            r.concat,
            st.just('{"jsonrpc":"2.0","id":1,"method":"daemon/status","params":'),
            st.builds(r.as_json, deep_values()),
            st.just("}"),
        ),
    )
    return st.one_of(
        st.fixed_dictionaries({"binary": st.just(False), "payload": text}),
        st.fixed_dictionaries({"binary": st.just(False), "payload": text}),
        st.fixed_dictionaries(
            {
                "binary": st.just(True),
                "payload": st.one_of(
                    st.builds(r.as_bytes, st.binary(max_size=200)),
                    text,
                    st.builds(
                        lambda t, enc: r.as_bytes(t.encode(enc, "surrogatepass")),
                        st.just('{"jsonrpc":"2.0","id":"b","method":"daemon/status","params":{}}'),
                        st.sampled_from(["utf-16", "utf-32", "utf-8-sig", "utf-16-le"]),
                    ),
                ),
            }
        ),
    )


def frame_cases() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"frames": st.lists(frame_payloads(), min_size=1, max_size=3)})


# ---- handshakes (property a) -------------------------------------------------------------------

VALID_HEADERS = [
    ("Host", "127.0.0.1"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
    ("Authorization", "Bearer @@TOKEN@@"),
]

HEADER_NAMES = [
    *(name for name, _ in VALID_HEADERS),
    "Origin",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Content-Length",
    "Transfer-Encoding",
    "Cookie",
    "authorization",
    "AUTHORIZATION",
    "Authorization ",
    " Authorization",
    "X-\u00e9",
    "",
    "Bad Name",
    "a:b",
]

HEADER_VALUES = [
    "Bearer @@TOKEN@@",
    "Bearer \u00e9",
    "Bearer @@TOKEN@@\u00e9",
    "Bearer \u00e9@@TOKEN@@",
    "bearer @@TOKEN@@",
    "Bearer  @@TOKEN@@ ",
    "Bearer",
    "Bearer ",
    "Basic Zm9vOmJhcg==",
    "\x00",
    "\xff\xfe",
    "\u00e9",
    "http://localhost:3000",
    "null",
    "https://evil.example",
    "websocket",
    "Upgrade",
    "13",
    "-1",
    "999999999999999999999",
    "chunked",
    "permessage-deflate; client_max_window_bits",
]

latin1_text = st.text(st.characters(max_codepoint=255, exclude_categories=()), max_size=30)


def header_pairs() -> st.SearchStrategy[list[str]]:
    name = st.one_of(st.sampled_from(HEADER_NAMES), latin1_text)
    value = st.one_of(
        st.sampled_from(HEADER_VALUES),
        latin1_text,
        st.builds(
            lambda c, n: c * n,
            st.sampled_from(["A", "\u00e9", " "]),
            st.sampled_from([100, 70_000]),
        ),
    )
    return st.lists(st.tuples(name, value).map(list), max_size=4)


@st.composite
def handshake_cases(draw: st.DrawFn) -> dict[str, Any]:
    headers: list[list[str]] = []
    if draw(st.integers(0, 3)):
        for header_name, header_value in VALID_HEADERS:
            choice = draw(st.integers(0, 9))
            if choice == 0:
                continue  # dropped
            if choice == 1:
                header_value = draw(st.one_of(st.sampled_from(HEADER_VALUES), latin1_text))
            headers.append([header_name, header_value])
            if choice == 2:
                headers.append([header_name, header_value])  # duplicated
    extra = draw(header_pairs())
    for pair in extra:
        headers.insert(draw(st.integers(0, len(headers))), pair)
    request = {
        "method": draw(
            st.one_of(st.sampled_from(["GET", "GET", "POST", "get", "", "\u00e9"]), latin1_text)
        ),
        "target": draw(
            st.one_of(
                st.sampled_from(["/", "/", "*", "//", "/?a=\u00e9", "/" + "a" * 9000]), latin1_text
            )
        ),
        "version": draw(
            st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""])
        ),
        "headers": headers,
        "eol": draw(st.sampled_from(["\r\n", "\r\n", "\n"])),
    }
    return {
        "request": request,
        "truncate": draw(st.one_of(st.none(), st.none(), st.integers(0, 400))),
        "after": draw(
            st.one_of(st.just(""), st.builds(lambda b: b.decode("latin-1"), st.binary(max_size=64)))
        ),
        "mode": draw(st.sampled_from(["eof", "hold", "hold", "silent"])),
        "count": draw(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 8, 70])),
    }


# ---- config (property d) ----------------------------------------------------------------------


def toml_strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [s for s in NASTY_STRINGS if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]
        ),
        st.text(max_size=30),
        st.sampled_from(
            [
                "app-server",
                "exec",
                "spawn",
                "external",
                "never",
                "on-failure",
                "always",
                "ask",
                "accept",
                "decline",
                "cancel",
                "ws://127.0.0.1:0",
                "unix:///tmp/x",
                "ws://",
                "http://x",
                "true",
                "1",
                "-1",
                "0.5",
                "nan",
                "inf",
            ]
        ),
    )


TOML_RAW = [
    "nan",
    "+nan",
    "-nan",
    "inf",
    "-inf",
    "+inf",
    "1e400",
    "-1e400",
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "0x7fffffffffffffff",
    "0o777",
    "0b1",
    "1_000",
    "-0",
    "-0.0",
    "9223372036854775808",
    "99999999999999999999999999",
]


def toml_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        toml_strings(),
        st.integers(-(2**64), 2**64),
        st.sampled_from([0, -1, 1, 2**31, 10**9]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, -0.0, 1e-300, 1e300, 0.001]),
        st.booleans(),
        st.builds(r.raw, st.sampled_from(TOML_RAW)),
    )
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(max_size=8), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


def env_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        toml_strings(),
        any_text(30),
        st.sampled_from(
            [
                "[]",
                "{}",
                "[1,2]",
                '["a",',
                '{"A":1}',
                '{"A":"\\ud800"}',
                "a,b,,c",
                "NaN",
                "nan",
                "1e400",
                "-0",
                " 5 ",
                "0x10",
                "yes",
                "off",
            ]
        ),
        st.builds(json.dumps, toml_values(4).filter(lambda v: not _has_token(v))),
        st.builds(
            r.repeat,
            st.sampled_from(["[", "{", '{"a":', "[1,"]),
            st.sampled_from([10, 5000, 100_000]),
        ),
    )


def _has_token(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k.startswith("$fz:") for k in value) or any(
            _has_token(v) for v in value.values()
        )
    if isinstance(value, list):
        return any(_has_token(v) for v in value)
    return False


# ---- child output (property e) -----------------------------------------------------------------

NOTIFICATIONS = [
    "turn/started",
    "turn/completed",
    "item/started",
    "item/completed",
    "item/agentMessage/delta",
    "thread/started",
    "thread/status/changed",
    "thread/closed",
    "error",
    "warning",
    "serverRequest/resolved",
    "thread/tokenUsage/updated",
    "account/rateLimits/updated",
    "remoteControl/status/changed",
]

SERVER_REQUESTS = [
    "item/commandExecution/requestApproval",
    "item/fileChange/requestApproval",
    "item/permissions/requestApproval",
    "item/tool/requestUserInput",
    "item/tool/call",
    "mcpServer/elicitation/request",
    "account/chatgptAuthTokens/refresh",
    "attestation/generate",
    "applyPatchApproval",
    "execCommandApproval",
]


def _child_ids() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(["@@THREAD@@", "@@TURN@@"]), strings(), json_values(3, nasty_big=False)
    )


@st.composite
def child_params(draw: st.DrawFn) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        params["threadId"] = draw(st.one_of(st.just("@@THREAD@@"), _child_ids()))
    if draw(st.booleans()):
        params["turnId"] = draw(st.one_of(st.just("@@TURN@@"), _child_ids()))
    if draw(st.booleans()):
        params["turn"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "id": st.one_of(st.just("@@TURN@@"), _child_ids()),
                        "status": st.one_of(
                            st.sampled_from(["completed", "failed", "interrupted", "inProgress"]),
                            strings(),
                        ),
                        "items": st.lists(json_values(4), max_size=2),
                        "error": json_values(4),
                    }
                ),
                json_values(4),
            )
        )
    keys = [
        "itemId",
        "delta",
        "willRetry",
        "error",
        "requestId",
        "status",
        "item",
        "message",
        "availableDecisions",
        "command",
        "cwd",
        "questions",
        "serverName",
        "reason",
    ]
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        params[key] = draw(json_values(5))
    for _ in range(draw(st.integers(0, 1))):
        params[draw(strings())] = draw(json_values(4))
    return params


@st.composite
def child_messages(draw: st.DrawFn) -> Any:
    kind = draw(st.integers(0, 3))
    if kind <= 1:  # notification
        msg: dict[str, Any] = {
            "method": draw(st.one_of(st.sampled_from(NOTIFICATIONS), strings(), json_values(2))),
        }
        if draw(st.integers(0, 5)):
            msg["params"] = draw(st.one_of(child_params(), child_params(), json_values(4)))
        if draw(st.booleans()):
            msg["emittedAtMs"] = draw(numbers())
    elif kind == 2:  # server request
        msg = {
            "id": draw(
                request_ids().filter(
                    lambda v: not (isinstance(v, str) and v.startswith("fuzz-mark-"))
                )
            ),
            "method": draw(st.one_of(st.sampled_from(SERVER_REQUESTS), strings())),
            "params": draw(st.one_of(child_params(), json_values(4))),
        }
    else:  # a response (nothing of the daemon's is likely pending under these ids)
        msg = {"id": draw(request_ids())}
        msg[draw(st.sampled_from(["result", "error"]))] = draw(json_values(4))
    if draw(st.integers(0, 9)) == 0:
        msg["jsonrpc"] = draw(json_values(2, nasty_big=False))
    return msg


@st.composite
def child_lines(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.integers(0, 9))
    if kind <= 4:
        node: Any = r.as_json(draw(child_messages()), ascii_only=draw(st.booleans()))
    elif kind == 5:  # a message cut short
        text = r.json_text(draw(child_messages()), {}, ascii_only=draw(st.booleans()))
        node = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif kind == 6:
        node = r.as_bytes(draw(st.binary(max_size=120)))
    elif kind == 7:
        node = draw(any_text(80))
    elif kind == 8:
        node = r.as_json(
            {
                "method": "item/agentMessage/delta",
                "params": {
                    "threadId": "@@THREAD@@",
                    "turnId": "@@TURN@@",
                    "delta": draw(st.one_of(big_strings(), deep_values())),
                },
            }
        )
    else:
        node = draw(
            st.builds(
                r.repeat,
                st.sampled_from(["[", "{", "x", '{"a":', "\ud800"]),
                st.sampled_from([10, 100_000, 1_000_000]),
            )
        )
    return {"line": node, "newline": draw(st.integers(0, 7)) > 0}


def approval_answers() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "decision": st.one_of(
                st.sampled_from(["accept", "acceptForSession", "decline", "cancel"]), strings()
            )
        },
        optional={
            "answers": st.one_of(
                st.dictionaries(strings(), st.lists(strings(), max_size=2), max_size=2),
                json_values(4),
            ),
            "content": json_values(4),
        },
    )


@st.composite
def child_cases(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "turn_first": draw(st.booleans()),
        "lines": draw(st.lists(child_lines(), min_size=1, max_size=6)),
        "answers": draw(st.lists(approval_answers(), max_size=2)),
    }
