"""The sans-IO JSON-RPC core: bytes in, events out, no I/O and no Trio."""

from __future__ import annotations

import json
import random
import tracemalloc
from typing import Any

import attrs
import pytest

from codexd import Event
from codexd._errors import LocalProtocolError
from codexd._framing import LineFramer
from codexd._jsonrpc import FORGOTTEN_REMEMBERED, Connection
from codexd._messages import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    NEED_DATA,
    PARSE_ERROR,
    SERVER_OVERLOADED,
    ErrorResponse,
    LateResponse,
    Notification,
    ProtocolIssue,
    Request,
    Response,
    classify,
    rejection,
)


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def feed(conn: Connection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return conn.events()


def drain(conn: Connection) -> list[Event]:
    """Every ready event, through next_event (the h11-style loop)."""
    out: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)


def issue_kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events if isinstance(e, ProtocolIssue)]


# ---- outgoing --------------------------------------------------------------------------------


def test_request_ids_start_at_one_and_increase_and_params_are_always_sent() -> None:
    conn = Connection()
    id1, data1 = conn.send_request("initialize", {"clientInfo": {"name": "t"}})
    id2, data2 = conn.send_request("thread/start")
    id3, data3 = conn.send_request("turn/interrupt", None)
    assert (id1, id2, id3) == (1, 2, 3)
    for data in (data1, data2, data3):
        assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data1) == {
        "id": 1,
        "method": "initialize",
        "params": {"clientInfo": {"name": "t"}},
    }
    assert json.loads(data2) == {"id": 2, "method": "thread/start", "params": {}}
    assert json.loads(data3)["params"] == {}
    assert dict(conn.pending) == {1: "initialize", 2: "thread/start", 3: "turn/interrupt"}
    assert json.loads(conn.send_notification("initialized")) == {
        "method": "initialized",
        "params": {},
    }
    assert "jsonrpc" not in json.loads(data1)


def test_emit_jsonrpc_field_and_frames() -> None:
    conn = Connection(emit_jsonrpc_field=True)
    request_id, text = conn.send_request_frame("daemon/status", {})
    assert request_id == 1 and isinstance(text, str) and "\n" not in text
    assert json.loads(text) == {"jsonrpc": "2.0", "id": 1, "method": "daemon/status", "params": {}}
    assert json.loads(conn.send_response_frame("a", {"ok": True})) == {
        "jsonrpc": "2.0",
        "id": "a",
        "result": {"ok": True},
    }
    assert json.loads(conn.send_error_frame(None, INVALID_REQUEST, "bad", {"field": "x"})) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "bad", "data": {"field": "x"}},
    }
    assert json.loads(conn.send_notification_frame("event", {"seq": 1}))["params"] == {"seq": 1}
    # Non-ASCII text is sent as UTF-8, not escaped.
    data = conn.send_response(7, {"text": "héllo ✓"})
    assert "héllo ✓".encode() in data


def test_send_error_omits_null_data() -> None:
    conn = Connection()
    assert json.loads(conn.send_error(5, SERVER_OVERLOADED, "busy")) == {
        "id": 5,
        "error": {"code": -32001, "message": "busy"},
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.send_request("", {}),
        lambda c: c.send_request("m", [1, 2]),
        lambda c: c.send_notification("m", "params"),
        lambda c: c.send_response(True, {}),
        lambda c: c.send_response(None, {}),
        lambda c: c.send_response(1.5, {}),
        lambda c: c.send_error([1], -1, "x"),
        lambda c: c.send_response(1, {"x": float("nan")}),
        lambda c: c.send_response(1, {"x": object()}),
        lambda c: c.send_response(1, "lone \ud800 surrogate"),
        lambda c: c.send_response_frame(1, "lone \ud800 surrogate"),
    ],
)
def test_local_misuse_raises_local_protocol_error(call: Any) -> None:
    with pytest.raises(LocalProtocolError):
        call(Connection())


# ---- request/response matching ---------------------------------------------------------------


def test_responses_match_pending_requests_with_their_method() -> None:
    conn = Connection()
    id1, _ = conn.send_request("thread/start", {"cwd": "/"})
    id2, _ = conn.send_request("turn/start", {})
    events = feed(
        conn,
        line({"id": id2, "result": {"turn": {"id": "t1"}}})
        + line({"id": id1, "error": {"code": -32600, "message": "Not initialized", "data": [1]}}),
    )
    assert events == [
        Response(id2, {"turn": {"id": "t1"}}, "turn/start"),
        ErrorResponse(id1, -32600, "Not initialized", [1], "thread/start"),
    ]
    assert dict(conn.pending) == {}


def test_a_response_is_matched_once() -> None:
    conn = Connection()
    rid, _ = conn.send_request("a", {})
    events = feed(conn, line({"id": rid, "result": 1}) + line({"id": rid, "result": 2}))
    assert events[0] == Response(rid, 1, "a")
    assert isinstance(events[1], ProtocolIssue) and events[1].kind == "unknown-response"


def test_null_result_is_a_response() -> None:
    conn = Connection()
    rid, _ = conn.send_request("turn/interrupt", {})
    assert feed(conn, b'{"id":1,"result":null}\n') == [Response(rid, None, "turn/interrupt")]


def test_notifications_with_emitted_at_ms() -> None:
    conn = Connection()
    data = line(
        {
            "method": "item/agentMessage/delta",
            "params": {"threadId": "th", "turnId": "tu", "itemId": "i", "delta": "hel"},
            "emittedAtMs": 1732400000000,
        }
    ) + line({"method": "remoteControl/status/changed", "emittedAtMs": 1})
    assert drain_after(conn, data) == [
        Notification(
            "item/agentMessage/delta",
            {"threadId": "th", "turnId": "tu", "itemId": "i", "delta": "hel"},
        ),
        Notification("remoteControl/status/changed", {}),
    ]


def drain_after(conn: Connection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return drain(conn)


def test_server_requests_are_requests_and_can_be_answered() -> None:
    conn = Connection()
    params = {"threadId": "th", "command": "echo hi", "availableDecisions": ["accept", "decline"]}
    events = feed(
        conn,
        line({"id": 0, "method": "item/commandExecution/requestApproval", "params": params})
        + line({"id": "s-1", "method": "item/tool/requestUserInput", "params": {}}),
    )
    assert events == [
        Request(0, "item/commandExecution/requestApproval", params),
        Request("s-1", "item/tool/requestUserInput", {}),
    ]
    assert json.loads(conn.send_response(0, {"decision": "accept"})) == {
        "id": 0,
        "result": {"decision": "accept"},
    }
    assert dict(conn.pending) == {}  # answering a server request touches nothing of ours


def test_unknown_response() -> None:
    conn = Connection()
    conn.send_request("a", {})
    events = feed(
        conn,
        line({"id": 99, "result": {}}) + line({"id": "x", "error": {"code": 1, "message": ""}}),
    )
    assert issue_kinds(events) == ["unknown-response", "unknown-response"]
    first = events[0]
    assert isinstance(first, ProtocolIssue)
    assert first.line_no == 1 and first.request_id == 99 and first.preview.startswith('{"id": 99')
    assert rejection(first) is None  # a server never answers a response
    assert dict(conn.pending) == {1: "a"}


def test_error_with_null_id_is_passed_through_unmatched() -> None:
    conn = Connection()
    conn.send_request("a", {})
    events = feed(conn, line({"id": None, "error": {"code": -32700, "message": "Parse error"}}))
    assert events == [ErrorResponse(None, -32700, "Parse error", None, None)]
    assert dict(conn.pending) == {1: "a"}


def test_forget_turns_a_late_answer_into_late_response() -> None:
    conn = Connection()
    rid, _ = conn.send_request("turn/interrupt", {})
    conn.forget(rid)
    conn.forget(rid)  # twice: harmless
    conn.forget(12345)  # never sent: harmless
    assert dict(conn.pending) == {}
    events = feed(conn, line({"id": rid, "result": {}}) + line({"id": rid, "result": {}}))
    assert events[0] == LateResponse(Response(rid, {}, "turn/interrupt"))
    assert isinstance(events[1], ProtocolIssue) and events[1].kind == "unknown-response"
    rid2, _ = conn.send_request("thread/start", {})
    conn.forget(rid2)
    events = feed(conn, line({"id": rid2, "error": {"code": -32001, "message": "busy"}}))
    assert events == [
        LateResponse(ErrorResponse(rid2, SERVER_OVERLOADED, "busy", None, "thread/start"))
    ]


def test_forgotten_ids_are_remembered_boundedly() -> None:
    conn = Connection()
    ids = [conn.send_request("m", {})[0] for _ in range(FORGOTTEN_REMEMBERED + 1)]
    for rid in ids:
        conn.forget(rid)
    events = feed(conn, line({"id": ids[0], "result": 1}) + line({"id": ids[-1], "result": 2}))
    assert isinstance(events[0], ProtocolIssue) and events[0].kind == "unknown-response"
    assert isinstance(events[1], LateResponse)


def test_close_pending_and_trailing_bytes_on_eof() -> None:
    conn = Connection()
    conn.send_request("initialize", {})
    conn.send_request("thread/start", {})
    events = feed(conn, line({"id": 1, "result": {}}) + b'{"method":"turn/comp')
    assert events == [Response(1, {}, "initialize")]
    trailing = conn.receive_eof()
    assert trailing is not None and trailing.kind == "trailing"
    assert trailing.size == len(b'{"method":"turn/comp')
    assert trailing.preview == '{"method":"turn/comp'
    assert trailing.line_no == 2
    assert conn.receive_eof() is None  # idempotent
    assert conn.close_pending() == [(2, "thread/start")]
    assert conn.close_pending() == []
    assert dict(conn.pending) == {}
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"{}\n")


def test_clean_eof_has_no_trailing_issue() -> None:
    conn = Connection()
    feed(conn, b'{"method":"x"}\n')
    assert conn.receive_eof() is None


# ---- framing ---------------------------------------------------------------------------------


def test_lines_split_across_feeds_byte_by_byte() -> None:
    conn = Connection()
    rid, _ = conn.send_request("thread/start", {})
    data = line({"method": "warning", "params": {"message": "é✓"}}) + line(
        {"id": rid, "result": {"thread": {"id": "t"}}}
    )
    events: list[Event] = []
    for i in range(len(data)):
        events += feed(conn, data[i : i + 1])
    assert events == [
        Notification("warning", {"message": "é✓"}),
        Response(rid, {"thread": {"id": "t"}}, "thread/start"),
    ]
    assert conn.buffered == 0


def test_many_lines_in_one_feed() -> None:
    conn = Connection()
    data = b"".join(line({"method": "n", "params": {"i": i}}) for i in range(1000))
    events = feed(conn, data)
    assert events == [Notification("n", {"i": i}) for i in range(1000)]
    assert conn.line_no == 1000


def test_crlf_and_blank_lines() -> None:
    conn = Connection()
    data = b'{"method":"a"}\r\n\r\n\n   \n{"method":"b","params":{}}\r\n'
    assert feed(conn, data) == [Notification("a", {}), Notification("b", {})]
    # A \r\n split between feeds.
    assert feed(conn, b'{"method":"c"}\r') == []
    assert feed(conn, b'\n{"method":"d"}\r\n') == [Notification("c", {}), Notification("d", {})]
    # Blank lines count: the bad line below is line 8.
    events = feed(conn, b"nope\r\n")
    assert isinstance(events[0], ProtocolIssue) and events[0].line_no == 8
    assert events[0].preview == "nope"


def test_garbage_lines_are_issues_and_the_next_line_parses() -> None:
    conn = Connection()
    garbage = [
        (b"not json {", "undecodable"),
        (b'{"method":"x","params":{"s":"\xff\xfe"}}', "undecodable"),
        (b"[1,2,3]", "invalid"),
        (b"42", "invalid"),
        (b'"a string"', "invalid"),
        (b"null", "invalid"),
        (b'{"params":{}}', "invalid"),
        (b'{"method":42}', "invalid"),
        (b'{"method":""}', "invalid"),
        (b'{"method":"x","params":"oops"}', "invalid"),
        (b'{"method":"x","params":[1]}', "invalid"),
        (b'{"id":true,"method":"x"}', "invalid"),
        (b'{"id":1.5,"method":"x"}', "invalid"),
        (b'{"id":null,"method":"x"}', "invalid"),
        (b'{"id":1,"result":1,"error":{"code":1,"message":"m"}}', "invalid"),
        (b'{"id":1,"error":"boom"}', "invalid"),
        (b'{"id":1,"error":{"code":"x","message":"m"}}', "invalid"),
        (b'{"id":1}', "invalid"),
        (b"[" * 100_000, "undecodable"),
        (b'{"a":1} {"b":2}', "undecodable"),
        (b"\xef\xbb\xbf{}", "undecodable"),
    ]
    for n, (bad, kind) in enumerate(garbage, 1):
        events = feed(conn, bad + b"\n" + b'{"method":"ok","params":{"n":1}}\n')
        assert len(events) == 2, bad
        issue, good = events
        assert isinstance(issue, ProtocolIssue), bad
        assert issue.kind == kind, (bad, issue)
        assert issue.line_no == 2 * n - 1
        assert issue.size == len(bad)
        assert len(issue.preview) <= 120
        assert good == Notification("ok", {"n": 1})
    assert conn.line_no == 2 * len(garbage)


def test_bad_utf8_preview_shows_the_bytes() -> None:
    conn = Connection()
    (issue,) = feed(conn, b"abc\xffdef\n")
    assert isinstance(issue, ProtocolIssue) and issue.kind == "undecodable"
    assert issue.preview == "abc\\xffdef"
    assert "UTF-8" in issue.detail


def test_oversize_line_reported_once_then_framing_resumes() -> None:
    conn = Connection(max_line_bytes=100)
    big = b'{"method":"x","params":{"s":"' + b"y" * 500 + b'"}}'
    events: list[Event] = []
    for i in range(0, len(big), 7):
        events += feed(conn, big[i : i + 7])
    assert issue_kinds(events) == ["oversize"]
    issue = events[0]
    assert isinstance(issue, ProtocolIssue)
    assert issue.line_no == 1 and issue.size > 100 and issue.preview.startswith('{"method":"x"')
    assert issue.error_code == INVALID_REQUEST
    events = feed(conn, b'yyy"}}\n{"method":"after"}\n')
    assert events == [Notification("after", {})]
    (bad,) = feed(conn, b"nope\n")
    assert isinstance(bad, ProtocolIssue) and bad.line_no == 3


def test_oversize_complete_line_in_one_chunk() -> None:
    conn = Connection(max_line_bytes=100)
    data = b'{"method":"a"}\n' + b"z" * 300 + b'\n{"method":"b"}\n'
    events = feed(conn, data)
    assert events[0] == Notification("a", {})
    assert isinstance(events[1], ProtocolIssue) and events[1].kind == "oversize"
    assert events[1].size == 300 and events[1].line_no == 2
    assert events[2] == Notification("b", {})


def test_line_at_the_limit_is_accepted_with_crlf_split() -> None:
    msg = b'{"method":"m","params":{"s":"' + b"q" * 60 + b'"}}'
    conn = Connection(max_line_bytes=len(msg))
    assert feed(conn, msg + b"\r") == []
    assert conn.buffered == len(msg) + 1
    assert feed(conn, b"\n") == [Notification("m", {"s": "q" * 60})]
    assert feed(conn, msg + b"x\n")[0] == ProtocolIssue(
        "oversize",
        f"line of {len(msg) + 1} bytes is over the limit of {len(msg)}; discarded",
        2,
        len(msg) + 1,
        (msg + b"x").decode()[:120],
        error_code=INVALID_REQUEST,
    )


def test_oversize_line_memory_stays_bounded() -> None:
    """A 50 MB line fed in 64 KiB chunks: the buffer never exceeds limit + chunk, it is
    reported once, and the next line parses."""
    limit = 1024 * 1024
    chunk_size = 64 * 1024
    total = 50 * 1024 * 1024
    conn = Connection(max_line_bytes=limit)
    chunk = b"x" * chunk_size
    events: list[Event] = list(feed(conn, b'{"method":"before"}\n{"method":"huge","params":"'))
    tracemalloc.start()
    try:
        fed = 0
        peak_buffer = 0
        while fed < total:
            conn.receive_data(chunk)
            events += conn.events()
            fed += chunk_size
            peak_buffer = max(peak_buffer, conn.buffered)
            assert conn.buffered <= limit + chunk_size
        _, peak_alloc = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_buffer <= limit
    assert peak_alloc < 3 * limit  # nothing near the 50 MB that went through
    events += feed(conn, b'"}\n{"method":"after"}\n')
    assert events[0] == Notification("before", {})
    assert issue_kinds(events) == ["oversize"]
    assert events[-1] == Notification("after", {})
    assert conn.line_no == 3


def test_eof_inside_an_oversize_line() -> None:
    conn = Connection(max_line_bytes=10)
    feed(conn, b"a" * 25)
    feed(conn, b"b" * 5)
    trailing = conn.receive_eof()
    assert trailing is not None and trailing.kind == "trailing" and trailing.size == 30
    assert trailing.preview == "a" * 11  # what any chunking had seen at the limit (10 + 1)


def test_line_framer_directly() -> None:
    framer = LineFramer(max_line_bytes=8)
    assert list(framer.feed(b"ab\ncd")) == [b"ab"]
    assert framer.buffered == 2
    out = list(framer.feed(b"ef\r\n0123456789\nok\n"))
    assert out[0] == b"cdef" and out[2] == b"ok"
    assert isinstance(out[1], ProtocolIssue) and out[1].kind == "oversize"
    assert framer.line_no == 4
    assert framer.close() is None
    assert list(framer.feed(bytearray(b"x\n"))) == [b"x"]
    with pytest.raises(ValueError):
        LineFramer(0)


# ---- strict mode and the server role ---------------------------------------------------------


def test_strict_mode_requires_jsonrpc_2() -> None:
    conn = Connection(strict=True)
    events = feed(
        conn,
        b'{"id":1,"method":"daemon/status","params":{}}\n'
        b'{"jsonrpc":"1.0","id":2,"method":"daemon/status","params":{}}\n'
        b'{"jsonrpc":"2.0","id":3,"method":"daemon/status","params":{}}\n'
        b'{"jsonrpc":"2.0","method":"note"}\n'
        b'{"jsonrpc":"2.0","id":4,"method":"x","params":null}\n',
    )
    assert issue_kinds(events) == ["invalid", "invalid", "invalid"]
    assert events[2] == Request(3, "daemon/status", {})
    assert events[3] == Notification("note", {})
    first = events[0]
    assert isinstance(first, ProtocolIssue)
    assert first.request_id == 1 and "jsonrpc" in first.detail


def test_non_strict_accepts_jsonrpc_field_and_null_params() -> None:
    conn = Connection()
    events = feed(conn, b'{"jsonrpc":"2.0","method":"a","params":null}\n')
    assert events == [Notification("a", {})]


def test_rejection_gives_the_proper_error_object() -> None:
    conn = Connection(strict=True, emit_jsonrpc_field=True)
    frames = [
        "not json",
        "[1, 2]",
        json.dumps({"jsonrpc": "2.0", "id": 7, "method": 42}),
        json.dumps({"jsonrpc": "2.0", "id": "p", "method": "run/get", "params": [1]}),
        json.dumps({"jsonrpc": "2.0", "id": 8, "method": "run/get", "params": "oops"}),
        json.dumps({"id": 9, "method": "daemon/status"}),
        json.dumps({"jsonrpc": "2.0", "id": 10, "result": {}}),  # a response: not answered
        "",
    ]
    answers: list[dict[str, Any] | None] = []
    for frame in frames:
        conn.receive_message_text(frame)
        (issue,) = conn.events()
        assert isinstance(issue, ProtocolIssue)
        answers.append(rejection(issue))
    codes = [None if a is None else (a["id"], a["error"]["code"]) for a in answers]
    assert codes == [
        (None, PARSE_ERROR),
        (None, INVALID_REQUEST),
        (7, INVALID_REQUEST),
        ("p", INVALID_PARAMS),
        (8, INVALID_REQUEST),
        (9, INVALID_REQUEST),
        None,
        (None, PARSE_ERROR),
    ]
    assert all(a is None or a["jsonrpc"] == "2.0" for a in answers)
    assert answers[0] is not None and answers[0]["error"]["message"].startswith("Parse error")
    # The same answer, encoded by the connection.
    first = answers[0]
    text = conn.send_error_frame(first["id"], first["error"]["code"], first["error"]["message"])
    assert json.loads(text) == first


def test_frame_mode() -> None:
    conn = Connection(max_line_bytes=64)
    rid, _ = conn.send_request_frame("thread/start", {})
    conn.receive_message_text('{"method":"a",\n"params":{"x":1}}')
    conn.receive_message_text(b'{"id":1,"result":{}}')
    conn.receive_message_text("x" * 65)
    conn.receive_message_text("✓" * 30)  # 30 characters, 90 bytes: over the limit
    conn.receive_message_text(b"\xff")
    events = drain(conn)
    assert events[:2] == [Notification("a", {"x": 1}), Response(rid, {}, "thread/start")]
    assert issue_kinds(events) == ["oversize", "oversize", "undecodable"]
    assert [e.line_no for e in events if isinstance(e, ProtocolIssue)] == [3, 4, 5]
    over = events[3]
    assert isinstance(over, ProtocolIssue) and over.size == 90


def test_classify_is_pure() -> None:
    assert classify({"method": "m", "params": {"a": 1}, "emittedAtMs": 5}) == Notification(
        "m", {"a": 1}
    )
    assert classify({"id": 3, "method": "m"}) == Request(3, "m", {})
    assert classify({"id": 3, "result": [1]}) == Response(3, [1], None)
    assert classify({"id": 3, "error": {"code": -1, "message": "m"}}) == ErrorResponse(
        3, -1, "m", None, None
    )
    assert classify({"method": "m"}, strict=True) == ProtocolIssue(
        "invalid", 'missing "jsonrpc": "2.0"', error_code=INVALID_REQUEST
    )
    assert isinstance(classify("x"), ProtocolIssue)
    assert isinstance(classify({"id": [1], "result": 1}), ProtocolIssue)


# ---- chunking does not matter ----------------------------------------------------------------


def _random_stream(rng: random.Random) -> bytes:
    parts: list[bytes] = []
    for n in range(300):
        kind = rng.randrange(10)
        if kind <= 3:
            delta = "".join(rng.choice('ab ✓é\\"😀') for _ in range(rng.randrange(30)))
            body = {"method": "item/agentMessage/delta", "params": {"delta": delta, "n": n}}
            parts.append(json.dumps(body, ensure_ascii=rng.random() < 0.5).encode())
        elif kind == 4:
            parts.append(json.dumps({"id": rng.randrange(1, 40), "result": {"n": n}}).encode())
        elif kind == 5:
            parts.append(json.dumps({"id": n, "method": "item/tool/call", "params": {}}).encode())
        elif kind == 6:
            parts.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 20))))
        elif kind == 7:
            parts.append(b"x" * rng.randrange(150, 400))  # over the limit below
        elif kind == 8:
            parts.append(b"")
        else:
            parts.append(b"[" + b"1," * rng.randrange(5) + b"1]")
        parts.append(b"\r\n" if rng.random() < 0.3 else b"\n")
    parts.append(b'{"method":"unterminated"')
    return b"".join(parts).replace(b"\n\n\n", b"\n\n")


def _run(data: bytes, cuts: list[int]) -> list[Event]:
    conn = Connection(max_line_bytes=128)
    for _ in range(40):
        conn.send_request("m", {})
    events: list[Event] = []
    start = 0
    for cut in [*cuts, len(data)]:
        conn.receive_data(data[start:cut])
        events += conn.events()
        start = cut
    trailing = conn.receive_eof()
    if trailing is not None:
        events.append(trailing)
    return [_normalize(e) for e in events]


def _normalize(event: Event) -> Event:
    # An oversize line is reported when the limit is crossed: how many bytes had been seen by
    # then (size, and so detail) depends on the chunking. Everything else must not.
    if isinstance(event, ProtocolIssue) and event.kind == "oversize":
        return attrs.evolve(event, size=0, detail="")
    return event


def test_random_chunking_gives_the_same_events() -> None:
    rng = random.Random(20241124)
    for _ in range(12):
        data = _random_stream(rng)
        expected = _run(data, [])
        assert any(isinstance(e, Notification) for e in expected)
        assert {"undecodable", "oversize", "trailing"} <= set(issue_kinds(expected))
        for _ in range(6):
            max_chunk = rng.choice([1, 2, 3, 7, 64, 129, 1000, 5000])
            cuts: list[int] = []
            position = 0
            while position < len(data):
                position += rng.randint(0, max_chunk)
                cuts.append(min(position, len(data)))
            assert _run(data, cuts) == expected


def test_random_chunking_line_framer_yields_the_same_lines() -> None:
    rng = random.Random(7)
    for _ in range(50):
        lines = [
            bytes(rng.choice(b"ab{}\r\xff\xe2") for _ in range(rng.randrange(0, 40)))
            for _ in range(rng.randrange(1, 60))
        ]
        # A line whose content ends with \r needs a \r\n terminator to keep that \r.
        data = b"".join(
            ln + (b"\r\n" if ln.endswith(b"\r") else rng.choice([b"\n", b"\r\n"])) for ln in lines
        )
        framer = LineFramer(max_line_bytes=1000)
        got: list[bytes | ProtocolIssue] = []
        position = 0
        while position < len(data):
            step = rng.randint(1, 17)
            got += framer.feed(data[position : position + step])
            position += step
        assert got == lines
        assert framer.close() is None


# ---- the orjson fast path keeps the standard library's answers -------------------------------


def test_fast_path_reads_long_integers_exactly_and_repairs_what_it_must() -> None:
    conn = Connection()
    big = 2**70
    events = feed(
        conn,
        b'{"method":"a","params":{"n":%d,"m":18446744073709551615}}\n' % big
        + b'{"method":"b","params":{"x":NaN}}\n'
        + b'{"method":"c","params":{"s":"\\ud800"}}\n'
        + b'{"method":"d","params":{"ok":"\\ud83d\\ude00","f":1.5}}\n',
    )
    notes = [e for e in events if isinstance(e, Notification)]
    assert notes[0].params == {"n": big, "m": 2**64 - 1}
    assert isinstance(notes[0].params["n"], int)
    assert notes[1].params == {"x": None}
    assert notes[2].params == {"s": "\ufffd"}
    assert notes[3].params == {"ok": "\U0001f600", "f": 1.5}
    assert issue_kinds(events) == ["repaired", "repaired"]


def test_outgoing_encoding_keeps_json_errors_and_values() -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError):
        conn.send_notification("m", {"x": float("nan")})
    with pytest.raises(LocalProtocolError):
        conn.send_notification_frame("m", {"x": "\ud800"})
    with pytest.raises(LocalProtocolError):
        conn.send_notification("m", {"x": object()})
    big = conn.send_notification("m", {"n": 2**70, "k": {1: None}})
    assert json.loads(big) == {"method": "m", "params": {"n": 2**70, "k": {"1": None}}}
    text = conn.send_response_frame(1, {"s": "é\u2028", "none": None})
    assert json.loads(text) == {"id": 1, "result": {"s": "é\u2028", "none": None}}
