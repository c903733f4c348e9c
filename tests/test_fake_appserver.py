"""The scriptable fake app-server, spoken to directly over its pipes (no codexd client code)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from codexd.testing.fake_appserver import (
    _DEFAULTS,
    FakeAppServerScript,
    FakeTurn,
    fake_records,
    load_script,
)

JSON = dict[str, Any]
TEXT = [{"type": "text", "text": "hi"}]


class Peer:
    """A tiny JSON-lines client of one fake child."""

    def __init__(self, proc: trio.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.buf = bytearray()
        self.stderr = bytearray()
        self.seen: list[JSON] = []  # everything read that was not the awaited message
        self.next_id = 0

    async def line(self) -> bytes | None:
        """The next stdout line without its newline; None at EOF (a partial tail is kept)."""
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 1]
                return line
            chunk = await self.stdout.receive_some(1 << 16)
            if not chunk:
                return None
            self.buf += chunk

    async def message(self) -> JSON:
        line = await self.line()
        assert line is not None, f"EOF from the fake; tail {bytes(self.buf)!r}"
        msg = json.loads(line)
        assert isinstance(msg, dict)
        return msg

    async def send(self, msg: JSON | bytes) -> None:
        data = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        await self.stdin.send_all(data + b"\n")

    async def until(self, predicate: Callable[[JSON], bool]) -> JSON:
        while True:
            msg = await self.message()
            if predicate(msg):
                return msg
            self.seen.append(msg)

    async def call(self, method: str, params: JSON | None = None) -> JSON:
        """Send a request and return its whole response (``result`` or ``error``)."""
        self.next_id += 1
        request_id = self.next_id
        await self.send({"id": request_id, "method": method, "params": params or {}})
        return await self.until(lambda m: m.get("id") == request_id and "method" not in m)

    async def result(self, method: str, params: JSON | None = None) -> JSON:
        response = await self.call(method, params)
        assert "result" in response, response
        result: JSON = response["result"]
        return result

    async def notification(self, method: str) -> JSON:
        return await self.until(lambda m: m.get("method") == method and "id" not in m)

    async def initialize(self) -> JSON:
        result = await self.result("initialize", {"clientInfo": {"name": "t", "version": "1"}})
        await self.send({"method": "initialized"})
        return result

    async def thread(self) -> str:
        result = await self.result("thread/start", {"cwd": "/tmp"})
        thread_id: str = result["thread"]["id"]
        return thread_id


@asynccontextmanager
async def fake(script: FakeAppServerScript | None = None) -> AsyncIterator[Peer]:
    """Spawn the fake, drain its stderr for its whole life, and always reap it."""
    proc = await trio.lowlevel.open_process(
        (script or FakeAppServerScript()).command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peer = Peer(proc)

    async def drain() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.receive_some(1 << 16):
            peer.stderr += chunk

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            try:
                yield peer
            finally:
                with trio.CancelScope(shield=True):
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
    finally:
        with trio.CancelScope(shield=True):
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    await stream.aclose()


async def start_turn(peer: Peer, thread_id: str) -> str:
    result = await peer.result("turn/start", {"threadId": thread_id, "input": TEXT})
    assert result["turn"]["status"] == "inProgress"
    turn_id: str = result["turn"]["id"]
    return turn_id


# -- script and start-up --------------------------------------------------------------------------


def test_parent_defaults_match_the_child() -> None:
    assert json.loads(json.dumps(attrs.asdict(FakeAppServerScript()))) == _DEFAULTS
    assert FakeAppServerScript().to_json() == "{}"
    script = FakeAppServerScript(
        garbage_lines=["a"], known_turns=[FakeTurn("t", "u", text="x")], exit_after_messages=3
    )
    opts = load_script(script.to_json())
    assert opts["garbage_lines"] == ["a"]
    assert opts["known_turns"] == [
        {"thread_id": "t", "turn_id": "u", "status": "completed", "text": "x"}
    ]
    assert opts["exit_after_messages"] == 3
    assert opts["delta_count"] == 3
    with pytest.raises(ValueError, match="unknown script option 'nope'"):
        load_script('{"nope": 1}')
    with pytest.raises(ValueError, match="wrong type"):
        load_script('{"delta_count": true}')


async def test_bad_script_exits_2_naming_the_key() -> None:
    command = [*FakeAppServerScript().command()[:-1], '{"delta_cuont": 2}']
    with trio.fail_after(10):
        done = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    assert done.returncode == 2
    assert b"delta_cuont" in done.stderr


async def test_command_runs_stand_alone_and_fast() -> None:
    command = FakeAppServerScript().command()
    assert command[0] == sys.executable and "--script" in command
    with trio.fail_after(10):
        async with fake() as peer:
            started = trio.current_time()
            await peer.initialize()
            elapsed = trio.current_time() - started
    print(f"\nfake app-server: spawn -> initialize answer {elapsed * 1000:.1f} ms")
    assert elapsed < 2.0


async def test_script_file_and_module_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text('{"exit_immediately": true, "exit_code": 7}')
    file = FakeAppServerScript().command()[3]
    module = [sys.executable, "-m", "codexd.testing.fake_appserver"]
    with trio.fail_after(10):
        done = await trio.run_process(
            [sys.executable, file, "--script-file", str(path)], check=False
        )
        assert done.returncode == 7
        done = await trio.run_process([*module, "--script", path.read_text()], check=False)
        assert done.returncode == 7


# -- healthy behaviour ---------------------------------------------------------------------------


async def test_initialize_rules_missing_params_and_unknown_method() -> None:
    with trio.fail_after(10):
        async with fake() as peer:
            early = await peer.call("thread/start", {})
            assert early["error"] == {"code": -32600, "message": "Not initialized"}
            await peer.send({"id": "x", "method": "initialize"})
            missing = await peer.until(lambda m: m.get("id") == "x")
            assert missing["error"]["message"] == "Invalid request: missing field `params`"
            no_info = await peer.call("initialize", {})
            assert no_info["error"]["message"] == "Invalid request: missing field `clientInfo`"
            info = await peer.initialize()
            assert set(info) == {"userAgent", "codexHome", "platformFamily", "platformOs"}
            again = await peer.call("initialize", {"clientInfo": {"name": "t"}})
            assert again["error"] == {"code": -32600, "message": "Already initialized"}
            unknown = await peer.call("bogus/method", {})
            assert unknown["error"]["code"] == -32600
            assert "unknown variant `bogus/method`" in unknown["error"]["message"]
            await peer.send({"id": 99, "method": "turn/start", "params": None})
            null = await peer.until(lambda m: m.get("id") == 99)
            assert null["error"]["message"] == "Invalid request: missing field `params`"
            no_input = await peer.call("turn/start", {"threadId": await peer.thread()})
            assert no_input["error"]["message"] == "Invalid request: missing field `input`"


async def test_healthy_turn_sequence() -> None:
    script = FakeAppServerScript(reply_text="one two three four", delta_count=4)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            started = await peer.result("thread/start", {"cwd": "/tmp"})
            thread_id = started["thread"]["id"]
            assert started["thread"]["status"] == {"type": "idle"}
            assert {"model", "modelProvider", "cwd", "sandbox"} <= set(started)
            assert (await peer.notification("thread/started"))["params"]["thread"][
                "id"
            ] == thread_id
            turn_id = await start_turn(peer, thread_id)
            completed = await peer.notification("turn/completed")
            seen = peer.seen
            methods = [m["method"] for m in seen]
            assert methods == [
                "thread/status/changed",
                "turn/started",
                "item/started",  # userMessage
                "item/completed",
                "item/started",  # agentMessage
                *["item/agentMessage/delta"] * 4,
                "item/completed",
                "thread/status/changed",
            ]
            assert all(isinstance(m["emittedAtMs"], int) for m in [*seen, completed])
            deltas = [m["params"] for m in seen if m["method"] == "item/agentMessage/delta"]
            assert "".join(d["delta"] for d in deltas) == "one two three four"
            assert {d["turnId"] for d in deltas} == {turn_id}
            agent = seen[4]["params"]["item"]
            assert agent["type"] == "agentMessage" and deltas[0]["itemId"] == agent["id"]
            params = completed["params"]
            assert params["threadId"] == thread_id
            assert params["turn"]["id"] == turn_id
            assert params["turn"]["status"] == "completed"
            assert params["turn"]["error"] is None
            items = params["turn"]["items"]
            assert [(i["type"], i["id"], i["text"]) for i in items] == [
                ("agentMessage", agent["id"], "one two three four")
            ]
            read = await peer.result("thread/read", {"threadId": thread_id, "includeTurns": True})
            assert [t["status"] for t in read["thread"]["turns"]] == ["completed"]


async def test_turn_duration_spreads_the_deltas() -> None:
    script = FakeAppServerScript(delta_count=5, turn_duration_s=0.5)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            started = trio.current_time()
            await start_turn(peer, thread_id)
            await peer.notification("turn/completed")
            assert trio.current_time() - started >= 0.45


async def test_steer_and_interrupt() -> None:
    script = FakeAppServerScript(delta_count=50, turn_duration_s=5.0)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            none = await peer.call("turn/steer", {"threadId": thread_id, "expectedTurnId": "t"})
            assert none["error"]["message"] == "Invalid request: missing field `input`"
            steer = {"threadId": thread_id, "expectedTurnId": "t", "input": TEXT}
            idle = await peer.call("turn/steer", steer)
            assert idle["error"] == {"code": -32600, "message": "no active turn to steer"}
            turn_id = await start_turn(peer, thread_id)
            await peer.notification("item/agentMessage/delta")
            wrong = await peer.call("turn/steer", steer)
            expected = f"expected active turn id `t` but found `{turn_id}`"
            assert wrong["error"] == {"code": -32600, "message": expected}
            steered = await peer.result("turn/steer", {**steer, "expectedTurnId": turn_id})
            assert steered == {"turnId": turn_id}
            user = await peer.until(
                lambda m: (
                    m.get("method") == "item/started"
                    and m["params"]["item"]["type"] == "userMessage"
                )
            )
            assert user["params"]["item"]["content"] == TEXT
            bad = await peer.call("turn/interrupt", {"threadId": thread_id, "turnId": "t"})
            assert bad["error"]["message"] == f"expected active turn id t but found {turn_id}"
            answer = await peer.result("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            assert answer == {}
            done = await peer.notification("turn/completed")
            assert done["params"]["turn"]["status"] == "interrupted"
            read = await peer.result("thread/read", {"threadId": thread_id, "includeTurns": True})
            assert read["thread"]["turns"][0]["status"] == "interrupted"
            assert read["thread"]["status"] == {"type": "idle"}
            later = await peer.call("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            assert later["error"]["message"] == "no active turn to interrupt"
    steers = fake_records(peer.stderr, "steer")
    assert [r["turnId"] for r in steers] == [turn_id]


async def test_thread_read_resume_and_a_restarted_fake() -> None:
    with trio.fail_after(10):
        async with fake() as peer:
            await peer.initialize()
            unknown = "01a20b40-c307-7d53-898a-3aca3a6f1ce0"
            resume = await peer.call("thread/resume", {"threadId": unknown})
            assert resume["error"] == {
                "code": -32600,
                "message": f"no rollout found for thread id {unknown}",
            }
            read = await peer.call("thread/read", {"threadId": unknown})
            assert read["error"]["message"] == f"thread not loaded: {unknown}"
            turn = await peer.call("turn/start", {"threadId": unknown, "input": TEXT})
            assert turn["error"]["message"] == f"thread not found: {unknown}"
            thread_id = await peer.thread()
            empty = await peer.call("thread/read", {"threadId": thread_id, "includeTurns": True})
            assert empty["error"] == {"code": -32601, "message": "list_turns is not supported yet"}
            turn_id = await start_turn(peer, thread_id)
            await peer.notification("turn/completed")
            resumed = await peer.result("thread/resume", {"threadId": thread_id})
            assert [t["id"] for t in resumed["thread"]["turns"]] == [turn_id]

    restarted = FakeAppServerScript(
        known_threads=["thread-a"],
        known_turns=[
            FakeTurn("thread-b", "turn-1", "completed", text="done"),
            FakeTurn("thread-b", "turn-2", "inProgress"),
        ],
    )
    with trio.fail_after(10):
        async with fake(restarted) as peer:
            await peer.initialize()
            cold = await peer.call("turn/start", {"threadId": "thread-b", "input": TEXT})
            assert cold["error"]["message"] == "thread not found: thread-b"
            read = await peer.result("thread/read", {"threadId": "thread-b", "includeTurns": True})
            turns = read["thread"]["turns"]
            assert [(t["id"], t["status"]) for t in turns] == [
                ("turn-1", "completed"),
                ("turn-2", "inProgress"),
            ]
            assert turns[0]["items"][0]["text"] == "done"
            assert read["thread"]["status"] == {"type": "notLoaded"}
            listed = await peer.result("thread/turns/list", {"threadId": "thread-b"})
            assert [t["id"] for t in listed["data"]] == ["turn-2", "turn-1"]
            a = await peer.result("thread/resume", {"threadId": "thread-a", "excludeTurns": True})
            assert a["thread"]["id"] == "thread-a" and a["thread"]["status"] == {"type": "idle"}
            await start_turn(peer, "thread-a")
            await peer.notification("turn/completed")


async def test_extra_results_and_stdin_eof_exits_zero() -> None:
    script = FakeAppServerScript(extra_results={"thread/unsubscribe": {"status": "ok"}})
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            assert await peer.result("thread/unsubscribe", {}) == {"status": "ok"}
            await peer.stdin.aclose()
            assert await peer.proc.wait() == 0


async def test_sigterm_exits_zero_mid_turn_without_turn_completed() -> None:
    with trio.fail_after(10):
        async with fake(FakeAppServerScript(turn_duration_s=5.0)) as peer:
            await peer.initialize()
            await start_turn(peer, await peer.thread())
            peer.proc.send_signal(signal.SIGTERM)
            assert await peer.proc.wait() == 0
            while (line := await peer.line()) is not None:
                assert b"turn/completed" not in line


async def test_malformed_line_is_dropped_silently() -> None:
    with trio.fail_after(10):
        async with fake() as peer:
            await peer.send(b"this is { not json")
            await peer.send(b"[1, 2]")
            await peer.initialize()
            assert peer.seen == []
            await peer.stdin.aclose()
            await peer.proc.wait()
    lines = [r["line"] for r in fake_records(peer.stderr, "malformedLine")]
    assert lines == ["this is { not json", "[1, 2]"]


# -- faults --------------------------------------------------------------------------------------


async def test_garbage_lines_at_start_and_after_initialize() -> None:
    garbage = ["not json at all", '{"half": ', "\x1b[31mcolour\x1b[0m"]
    with trio.fail_after(10):
        async with fake(FakeAppServerScript(garbage_lines=garbage)) as peer:
            lines = [await peer.line() for _ in garbage]
            assert lines == [g.encode() for g in garbage]
            await peer.initialize()
        script = FakeAppServerScript(garbage_lines=["junk"], garbage_after_initialize=True)
        async with fake(script) as peer:
            await peer.send({"id": 1, "method": "initialize", "params": {"clientInfo": {}}})
            assert json.loads(await peer.line() or b"")["id"] == 1
            assert await peer.line() == b"junk"
            await peer.thread()


async def test_oversize_line() -> None:
    size = 3 * 1024 * 1024
    with trio.fail_after(10):
        async with fake(FakeAppServerScript(oversize_line_bytes=size)) as peer:
            await peer.send({"id": 1, "method": "initialize", "params": {"clientInfo": {}}})
            assert json.loads(await peer.line() or b"")["id"] == 1
            big = await peer.line()
            assert big is not None and len(big) == size
            assert json.loads(big)["method"] == "fake/oversize"
            await peer.thread()


async def test_truncated_line_then_exit() -> None:
    script = FakeAppServerScript(truncated_line_then_exit=True, exit_code=3)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.send({"id": 1, "method": "initialize", "params": {"clientInfo": {}}})
            assert json.loads(await peer.line() or b"")["id"] == 1
            assert await peer.line() is None
            assert peer.buf.startswith(b'{"method":"warning"') and b"\n" not in peer.buf
            assert await peer.proc.wait() == 3


async def test_exit_after_messages_leaves_the_last_request_unanswered() -> None:
    script = FakeAppServerScript(exit_after_messages=3, exit_code=5)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()  # messages 1 and 2
            await peer.send({"id": 7, "method": "thread/start", "params": {}})
            assert await peer.line() is None
            assert await peer.proc.wait() == 5


async def test_exit_on_turn_start_dies_mid_turn() -> None:
    script = FakeAppServerScript(exit_on_turn_start=True, exit_code=101)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            await start_turn(peer, thread_id)
            rest: list[str] = []
            while (line := await peer.line()) is not None:
                rest.append(json.loads(line)["method"])
            methods = [m.get("method") for m in peer.seen] + rest
            assert "turn/started" in methods
            assert methods.count("item/agentMessage/delta") == 1
            assert "turn/completed" not in methods
            assert await peer.proc.wait() == 101


async def test_swallow_turn_completed_but_thread_read_settles_it() -> None:
    script = FakeAppServerScript(swallow_turn_completed=True, reply_text="final words")
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            turn_id = await start_turn(peer, thread_id)
            item = await peer.until(
                lambda m: (
                    m.get("method") == "item/completed"
                    and m["params"]["item"]["type"] == "agentMessage"
                )
            )
            assert item["params"]["item"]["text"] == "final words"
            with trio.move_on_after(0.3) as quiet:
                await peer.notification("turn/completed")
            assert quiet.cancelled_caught
            read = await peer.result("thread/read", {"threadId": thread_id, "includeTurns": True})
            (turn,) = read["thread"]["turns"]
            assert (turn["id"], turn["status"]) == (turn_id, "completed")
            assert turn["items"][-1] == item["params"]["item"]
            assert all(m.get("method") != "turn/completed" for m in peer.seen)


async def test_stalled_method_is_never_answered() -> None:
    script = FakeAppServerScript(stall_methods=["thread/start"])
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            await peer.send({"id": "stuck", "method": "thread/start", "params": {}})
            with trio.move_on_after(0.3) as quiet:
                await peer.until(lambda m: m.get("id") == "stuck")
            assert quiet.cancelled_caught
            bad = await peer.call("thread/read", {"threadId": "x"})  # others still answered
            assert bad["error"]["message"] == "thread not loaded: x"


async def test_exit_immediately_crash_loop() -> None:
    script = FakeAppServerScript(exit_immediately=True, exit_code=42)
    with trio.fail_after(10):
        done = await trio.run_process(
            script.command(), stdin=b"", capture_stdout=True, capture_stderr=True, check=False
        )
    assert (done.returncode, done.stdout) == (42, b"")


async def test_startup_delay() -> None:
    with trio.fail_after(10):
        async with fake(FakeAppServerScript(startup_delay_s=0.4)) as peer:
            started = trio.current_time()
            await peer.initialize()
            assert trio.current_time() - started >= 0.35


async def test_ignore_sigterm_then_sigkill() -> None:
    with trio.fail_after(10):
        async with fake(FakeAppServerScript(ignore_sigterm=True)) as peer:
            await peer.initialize()
            peer.proc.send_signal(signal.SIGTERM)
            await trio.sleep(0.3)
            assert peer.proc.poll() is None
            await peer.thread()  # still serving
            peer.proc.kill()
            assert await peer.proc.wait() == -signal.SIGKILL


async def test_server_request_flood_answers_recorded() -> None:
    count = 50
    script = FakeAppServerScript(server_request_flood=count)
    decisions = ["accept", "decline"]
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            turn_id = await start_turn(peer, thread_id)
            requests: list[JSON] = []
            while len(requests) < count:
                msg = await peer.until(lambda m: "id" in m and "method" in m)
                requests.append(msg)
            assert [r["id"] for r in requests] == [f"req-{i}" for i in range(1, count + 1)]
            params = requests[0]["params"]
            assert requests[0]["method"] == "item/commandExecution/requestApproval"
            assert (params["threadId"], params["turnId"]) == (thread_id, turn_id)
            assert params["availableDecisions"] == ["accept", "decline", "cancel"]
            assert {"itemId", "command", "cwd"} <= set(params)
            for i, request in enumerate(requests[:-1]):
                await peer.send({"id": request["id"], "result": {"decision": decisions[i % 2]}})
            with trio.move_on_after(0.3) as quiet:
                await peer.notification("turn/completed")
            assert quiet.cancelled_caught  # one answer still missing
            await peer.send({"id": requests[-1]["id"], "error": {"code": -1, "message": "no"}})
            done = await peer.notification("turn/completed")
            assert done["params"]["turn"]["status"] == "completed"
            resolved = [m for m in peer.seen if m.get("method") == "serverRequest/resolved"]
            assert len(resolved) == count
            await peer.stdin.aclose()
            await peer.proc.wait()
    answers = fake_records(peer.stderr, "serverRequestAnswer")
    assert [a["id"] for a in answers] == [r["id"] for r in requests]
    assert answers[0]["result"] == {"decision": "accept"}
    assert answers[1]["result"] == {"decision": "decline"}
    assert answers[-1]["error"] == {"code": -1, "message": "no"}


async def test_approval_requests_one_at_a_time_and_cancel_interrupts() -> None:
    script = FakeAppServerScript(approval_requests=2)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            await start_turn(peer, thread_id)
            first = await peer.until(lambda m: "id" in m and "method" in m)
            assert first["id"] == "req-1"
            with trio.move_on_after(0.2) as quiet:
                await peer.until(lambda m: "id" in m and "method" in m)
            assert quiet.cancelled_caught  # the second waits for the first answer
            await peer.send({"id": "req-1", "result": {"decision": "accept"}})
            second = await peer.until(lambda m: "id" in m and "method" in m)
            assert second["id"] == "req-2"
            await peer.send({"id": "req-2", "result": {"decision": "cancel"}})
            done = await peer.notification("turn/completed")
            assert done["params"]["turn"]["status"] == "interrupted"


async def test_notification_flood_after_initialized_and_on_request() -> None:
    with trio.fail_after(10):
        async with fake(FakeAppServerScript(notification_flood=10_000)) as peer:
            await peer.initialize()
            done = await peer.notification("fake/floodDone")
            assert done["params"] == {"count": 10_000}
            deltas = [m for m in peer.seen if m["method"] == "item/agentMessage/delta"]
            assert [d["params"]["delta"] for d in deltas] == [str(i) for i in range(10_000)]
            assert all("emittedAtMs" in d for d in deltas)
            peer.seen.clear()
            assert await peer.result("fake/flood", {"count": 123}) == {"count": 123}
            done = await peer.notification("fake/floodDone")
            assert done["params"] == {"count": 123} and len(peer.seen) == 123


async def test_stderr_spew_keeps_the_protocol_responsive() -> None:
    script = FakeAppServerScript(stderr_spew_bytes_per_s=4_000_000, stderr_line_bytes=4096)
    with trio.fail_after(10):
        async with fake(script) as peer:
            await peer.initialize()
            thread_id = await peer.thread()
            started = trio.current_time()
            for _ in range(5):
                await start_turn(peer, thread_id)
                await peer.notification("turn/completed")
            elapsed = trio.current_time() - started
            await trio.sleep(0.3)
            assert len(peer.stderr) > 200_000
    lines = bytes(peer.stderr).splitlines()
    assert all(len(line) == 4095 for line in lines[:-1] if line.startswith(b"spew"))
    assert elapsed < 2.0


@pytest.mark.real_codex
async def test_shapes_match_the_real_binarys_schema(tmp_path: Path) -> None:
    """Every message the fake sends validates against ``codex app-server generate-json-schema``."""
    import codex_cli_bin
    import jsonschema

    schema_dir = tmp_path / "schema"
    env = {**os.environ, "HOME": str(tmp_path), "CODEX_HOME": str(tmp_path)}
    codex = str(codex_cli_bin.bundled_codex_path())
    with trio.fail_after(30):
        await trio.run_process(
            [codex, "app-server", "generate-json-schema", "--out", str(schema_dir)],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
        )

    def validator(name: str) -> Any:
        schema = json.loads((schema_dir / name).read_text())
        return jsonschema.Draft7Validator(schema)

    results = {
        "initialize": validator("v1/InitializeResponse.json"),
        "thread/start": validator("v2/ThreadStartResponse.json"),
        "thread/resume": validator("v2/ThreadResumeResponse.json"),
        "thread/read": validator("v2/ThreadReadResponse.json"),
        "thread/turns/list": validator("v2/ThreadTurnsListResponse.json"),
        "turn/start": validator("v2/TurnStartResponse.json"),
        "turn/steer": validator("v2/TurnSteerResponse.json"),
        "turn/interrupt": validator("v2/TurnInterruptResponse.json"),
    }
    notifications = validator("ServerNotification.json")
    server_requests = validator("ServerRequest.json")

    script = FakeAppServerScript(delta_count=20, turn_duration_s=0.4, approval_requests=1)
    methods: dict[int, str] = {}
    with trio.fail_after(10):
        async with fake(script) as peer:

            async def call(method: str, params: JSON) -> JSON:
                response = await peer.call(method, params)
                methods[response["id"]] = method
                results[method].validate(response["result"])
                result: JSON = response["result"]
                return result

            await call("initialize", {"clientInfo": {"name": "t", "version": "1"}})
            await peer.send({"method": "initialized"})
            thread_id = (await call("thread/start", {"cwd": "/tmp"}))["thread"]["id"]
            turn_id = (await call("turn/start", {"threadId": thread_id, "input": TEXT}))["turn"][
                "id"
            ]
            request = await peer.until(lambda m: "id" in m and "method" in m)
            server_requests.validate(request)
            await peer.send({"id": request["id"], "result": {"decision": "accept"}})
            await peer.notification("item/agentMessage/delta")
            await call(
                "turn/steer", {"threadId": thread_id, "expectedTurnId": turn_id, "input": TEXT}
            )
            await call("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            await peer.notification("turn/completed")
            await call("turn/start", {"threadId": thread_id, "input": TEXT})
            request = await peer.until(lambda m: "id" in m and "method" in m)
            await peer.send({"id": request["id"], "result": {"decision": "decline"}})
            await peer.notification("turn/completed")
            await call("thread/read", {"threadId": thread_id, "includeTurns": True})
            await call("thread/turns/list", {"threadId": thread_id})
            await call("thread/resume", {"threadId": thread_id})
            sent = [m for m in peer.seen if "method" in m and "id" not in m]
    assert len({m["method"] for m in sent}) >= 7
    for msg in sent:
        notifications.validate(msg)


async def test_notification_flood_rate_200k() -> None:
    """Benchmark: how fast a minimal Trio reader takes 200k flood lines (split + json.loads)."""
    count = 200_000
    with trio.fail_after(60):
        async with fake(FakeAppServerScript(notification_flood=count)) as peer:
            await peer.send({"id": 1, "method": "initialize", "params": {"clientInfo": {}}})
            assert (await peer.message())["id"] == 1
            await peer.send({"method": "initialized"})
            started = trio.current_time()
            lines = 0
            parsed = 0
            tail = b""
            while True:
                chunk = await peer.stdout.receive_some(1 << 16)
                assert chunk, "EOF during the flood"
                *complete, tail = (tail + chunk).split(b"\n")
                for line in complete:
                    msg = json.loads(line)
                    parsed += msg["method"] == "item/agentMessage/delta"
                lines += len(complete)
                if complete and b"fake/floodDone" in complete[-1]:
                    break
            elapsed = trio.current_time() - started
    assert (lines, parsed) == (count + 1, count)
    rate = count / elapsed
    print(f"\nnotification flood: {count} lines in {elapsed:.3f} s = {rate:,.0f} msg/s")
    assert rate > 20_000
