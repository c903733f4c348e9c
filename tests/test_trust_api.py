"""Trust: one input on the API (handshake, frame, params) never stops, wedges or corrupts it."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any, get_args, get_origin

import attrs
import pytest
import trio
import trio_websocket

from codexd import ApiConfig, Config, Daemon, open_daemon
from codexd._methods import METHODS
from codexd.client import ApiError, CallTimeout, open_client, read_api_info


@asynccontextmanager
async def api_daemon(base_config: Config, **api: Any) -> AsyncIterator[Daemon]:
    config = attrs.evolve(base_config, mode="exec", api=ApiConfig(listen="ws://127.0.0.1:0", **api))
    async with open_daemon(config) as daemon:
        yield daemon


async def raw_handshake(url: str, header_lines: list[bytes]) -> bytes:
    """Send a WebSocket upgrade with exactly these header lines; return the status line."""
    host, port = url.removeprefix("ws://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + b"".join(line + b"\r\n" for line in header_lines)
        + b"\r\n"
    )
    try:
        await stream.send_all(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            answer += chunk
        return answer.split(b"\r\n", 1)[0]
    finally:
        await stream.aclose()


async def assert_serving(state: Path) -> None:
    with trio.fail_after(10):
        async with open_client(state) as client:
            status = await client.call("daemon/status")
            assert status["daemon"]["status"] in ("running", "degraded")


def stored_seqs(state: Path) -> list[int]:
    with sqlite3.connect(state / "state.sqlite3") as conn:
        return [seq for (seq,) in conn.execute("SELECT seq FROM events ORDER BY seq")]


async def test_non_ascii_authorization_is_refused_and_the_daemon_serves_on(
    base_config: Config,
) -> None:
    with trio.fail_after(30):
        async with api_daemon(base_config):
            state = Path(base_config.state_dir)
            url, _token = read_api_info(state)
            for header in (
                b"Authorization: Bearer \xe9",
                b"Authorization: \xff\xfe",
                b"Origin: http://\xe9.example",
                b"Authorization: Bearer " + bytes(range(128, 256)),
            ):
                status = await raw_handshake(url, [header])
                assert status.split(b" ")[1] in (b"400", b"401", b"403"), status
                await assert_serving(state)
    seqs = stored_seqs(Path(base_config.state_dir))
    assert seqs == list(range(1, len(seqs) + 1))


async def test_duplicated_origin_header_is_refused(base_config: Config) -> None:
    with trio.fail_after(20):
        async with api_daemon(base_config, allowed_origins=["http://localhost:3000"]):
            url, token = read_api_info(Path(base_config.state_dir))
            auth = b"Authorization: Bearer " + token.encode()
            ok = await raw_handshake(url, [auth, b"Origin: http://localhost:3000"])
            assert b" 101 " in ok + b" "
            twice = await raw_handshake(
                url, [auth, b"Origin: https://evil.example", b"Origin: http://localhost:3000"]
            )
            assert twice.split(b" ")[1] == b"400", twice


def _string_paths(cls: type) -> list[tuple[str, Any]]:
    """For each field of a params record that holds text: (wire name, a value with "\\ud800")."""
    from codexd._records import to_camel

    out: list[tuple[str, Any]] = []
    for field in attrs.fields(cls):
        name = to_camel(field.name)
        kinds = {get_origin(t) or t for t in (get_args(field.type) or (field.type,))}
        text = str(field.type)
        if "dict" in text:
            out.append((name, {"k": "\ud800"}))
            out.append((name, {"\ud800": "v"}))
        elif "list" in text:
            out.append((name, ["\ud800"]))
        if "str" in text or str in kinds or "Literal" in text:
            out.append((name, "\ud800"))
    return out


async def test_a_lone_surrogate_in_any_string_param_of_any_method_is_refused(
    base_config: Config,
) -> None:
    checked = 0
    with trio.fail_after(120):
        async with api_daemon(base_config):
            state = Path(base_config.state_dir)
            url, token = read_api_info(state)
            headers = [(b"Authorization", f"Bearer {token}".encode())]
            async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
                for method in METHODS.values():
                    for name, value in _string_paths(method.params):
                        # json.dumps writes the lone surrogate as the escape "\ud800".
                        frame = json.dumps(
                            {"jsonrpc": "2.0", "id": checked, "method": method.name,
                             "params": {name: value}}
                        )  # fmt: skip
                        assert "\\ud800" in frame
                        await ws.send_message(frame)
                        answer = json.loads(await ws.get_message())
                        assert answer["id"] == checked
                        assert answer["error"]["code"] == -32602, (method.name, name, answer)
                        assert answer["error"]["data"]["field"].startswith(name), answer
                        checked += 1
                await ws.send_message(
                    json.dumps({"jsonrpc": "2.0", "id": "s", "method": "daemon/status"})
                )
                assert json.loads(await ws.get_message())["result"]["daemon"]["mode"] == "exec"
    assert checked > 60
    seqs = stored_seqs(Path(base_config.state_dir))
    assert seqs == list(range(1, len(seqs) + 1))


async def _ask(ws: trio_websocket.WebSocketConnection, frame: str) -> dict[str, Any]:
    await ws.send_message(frame)
    answer: dict[str, Any] = json.loads(await ws.get_message())
    return answer


async def test_poison_frames_get_errors_and_the_connection_lives(base_config: Config) -> None:
    def call(method: str, params: str, rid: str = "1") -> str:
        return f'{{"jsonrpc":"2.0","id":{rid},"method":"{method}","params":{params}}}'

    cases: list[tuple[str, int, str | None]] = [
        ("[" * 200_000, -32700, None),
        (call("session/list", "[1, 2]"), -32602, None),
        (call("daemon/status", "{}", rid='"\\ud800"'), -32600, None),
        (call("events/list", '{"after": ' + "[" * 100_000 + "]" * 100_000 + "}"), -32700, None),
        (call("events/list", '{"after": ' + "[" * 40 + "]" * 40 + "}"), -32602, "after"),
        (call("turn/wait", '{"sessionId": "s", "timeoutS": NaN}'), -32602, "timeoutS"),
        (call("turn/wait", '{"sessionId": "s", "timeoutS": 1e400}'), -32602, "timeoutS"),
        (call("run/wait", '{"runId": "r", "timeoutS": -1}'), -32602, "timeoutS"),
        (call("run/create", '{"prompt": "p", "model": "a\\u0000b"}'), -32602, "model"),
        (call("run/create", '{"prompt": "p", "env": {"A=B": "x"}}'), -32602, "env.A=B"),
        (call("run/create", '{"prompt": "p", "env": {"A": "x\\u0000"}}'), -32602, "env.A"),
        (call("run/create", '{"prompt": "p", "config": ["a=\\u0000"]}'), -32602, "config"),
        (call("run/create", '{"prompt": "p", "timeoutS": NaN}'), -32602, "timeoutS"),
        (call("run/create", '{"prompt": "p", "timeoutS": 1e400}'), -32602, "timeoutS"),
        (call("run/create", '{"prompt": "p", "timeoutS": 0}'), -32602, "timeoutS"),
        (call("session/list", '{"status": "bogus"}'), -32602, "status"),
    ]  # fmt: skip
    with trio.fail_after(60):
        async with api_daemon(base_config) as daemon:
            url, token = read_api_info(Path(base_config.state_dir))
            headers = [(b"Authorization", f"Bearer {token}".encode())]
            async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
                for frame, code, field in cases:
                    answer = await _ask(ws, frame)
                    assert answer["error"]["code"] == code, (frame[:80], answer)
                    if field is not None:
                        assert answer["error"]["data"]["field"].startswith(field), answer
                    if code == -32600:
                        assert answer["id"] is None
                ok = await _ask(ws, call("daemon/status", "{}", rid='"ok"'))
                assert ok["id"] == "ok" and ok["result"]["runs"] == {}
            assert daemon.list_runs() == [], "nothing poisoned was queued"


def masked_text_frame(text: str) -> bytes:
    """A client-to-server WebSocket text frame (clients must mask their payload)."""
    import os
    import struct

    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


async def test_a_client_that_never_reads_is_cut_off_and_memory_stays_flat(
    base_config: Config,
) -> None:
    """Requests keep coming, answers are never read: the daemon cuts that client off (4009)."""
    with trio.fail_after(120):
        async with api_daemon(base_config) as daemon:
            for n in range(1500):
                await daemon.store.emit("big", f"{n}", detail={"pad": "x" * 8000})
            await daemon.store.record("big", "done")
            state = Path(base_config.state_dir)
            url, token = read_api_info(state)
            host, port = url.removeprefix("ws://").split(":")
            before = _rss_mib()
            stream = await trio.open_tcp_stream(host, int(port))
            try:
                await stream.send_all(
                    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer "
                    + token.encode()
                    + b"\r\n\r\n"
                )
                request = masked_text_frame(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "events/list",
                            "params": {"limit": 5000},
                        }
                    )
                )
                # Each answer is megabytes: 400 unread ones would be gigabytes if unbounded.
                with trio.move_on_after(10):
                    for _ in range(400):
                        await stream.send_all(request)
                assert daemon.api is not None
                # The daemon cuts off the connection it cannot write to ...
                while daemon.api.open_connections > 0:
                    await trio.sleep(0.05)
                grown = _rss_mib() - before
                assert grown < 200, f"RSS grew {grown:.0f} MiB"
                # ... and serves everyone else meanwhile.
                await assert_serving(state)
            finally:
                await stream.aclose()


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_half_open_handshakes_time_out_and_do_not_block_clients(
    base_config: Config,
) -> None:
    with trio.fail_after(60):
        async with api_daemon(base_config):
            state = Path(base_config.state_dir)
            url, _ = read_api_info(state)
            host, port = url.removeprefix("ws://").split(":")
            idle = [await trio.open_tcp_stream(host, int(port)) for _ in range(300)]
            try:
                await assert_serving(state)
                # The daemon closes each silent connection after its handshake timeout.
                with trio.fail_after(20):
                    for stream in idle:
                        assert await stream.receive_some(100) == b""
            finally:
                for stream in idle:
                    await stream.aclose()


@pytest.mark.parametrize(
    ("content", "mode", "why"),
    [("x\n", 0o600, "shorter than 32 bytes"), ("y" * 43 + "\n", 0o644, "readable by other")],
)
async def test_unsafe_tokens_are_rotated(
    base_config: Config, content: str, mode: int, why: str
) -> None:
    state = Path(base_config.state_dir)
    state.mkdir(parents=True)
    (state / "api-token").write_text(content)
    (state / "api-token").chmod(mode)
    with trio.fail_after(20):
        async with api_daemon(base_config) as daemon:
            _url, token = read_api_info(state)
            assert token != content.strip() and len(token) >= 32
            assert stat.S_IMODE((state / "api-token").stat().st_mode) == 0o600
            rotated = [e for e in daemon.store.recent_events if e.type == "api.token.rotated"]
            assert rotated and why in rotated[0].message
            await assert_serving(state)


async def test_subscribers_with_since_miss_nothing_200_times_under_load(
    base_config: Config,
) -> None:
    """Reply before streaming: every subscription starts exactly after its since."""
    import subprocess
    import sys

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with trio.fail_after(240):
            async with api_daemon(base_config) as daemon, trio.open_nursery() as nursery:
                stop = trio.Event()

                async def produce() -> None:
                    n = 0
                    while not stop.is_set():
                        await daemon.store.emit("load.tick", f"{n}")
                        n += 1
                        if n % 20 == 0:
                            await trio.sleep(0.002)  # a steady stream, a few thousand a second

                nursery.start_soon(produce)
                state = Path(base_config.state_dir)
                async with open_client(state) as client:
                    for _ in range(200):
                        since = daemon.store.last_seq
                        expected = since + 1
                        async with aclosing(client.subscribe(since=since)) as stream:
                            async for event in stream:
                                assert event["seq"] == expected, (since, event["seq"])
                                expected += 1
                                if expected > since + 20:
                                    break
                stop.set()
    finally:
        burner.kill()
        burner.wait()


async def test_client_survives_leaving_a_busy_subscription_and_calls_time_out(
    base_config: Config,
) -> None:
    with trio.fail_after(60):
        async with api_daemon(base_config) as daemon, trio.open_nursery() as nursery:

            async def produce() -> None:
                for n in range(20_000):
                    await daemon.store.emit("flow", f"{n}")

            state = Path(base_config.state_dir)
            async with open_client(state) as client:
                nursery.start_soon(produce)
                for _ in range(40):  # more than a connection may hold: each one ends
                    async with aclosing(client.subscribe(since=0)) as stream:
                        async for _event in stream:
                            break  # leave while events keep flowing
                assert (await client.call("daemon/status"))["daemonId"] == daemon.store.daemon_id
                with pytest.raises((CallTimeout, ApiError)) as info:
                    await client.call("run/wait", {"runId": "nope"}, timeout=0.000001)
                assert info.value.code in (CallTimeout.code, -32004)
            async with open_client(state, default_timeout=0.5) as client:
                # turn/wait on a daemon in exec mode answers at once; a long wait is the
                # caller's own timeoutS, which the client adds to its default.
                with pytest.raises(ApiError):
                    await client.call("session/get", {"sessionId": "x"})


async def test_events_without_follow_end_after_the_stored_ones(base_config: Config) -> None:
    """`codexd events --type X` ends even when the last stored event does not match X."""
    import sys

    with trio.fail_after(60):
        async with api_daemon(base_config) as daemon:
            for n in range(3):
                await daemon.store.record("wanted.kind", f"wanted {n}")
            await daemon.store.record("other.kind", "the last one does not match")
            done = await trio.run_process(
                [sys.executable, "-m", "codexd", "--state-dir", base_config.state_dir,
                 "events", "--type", "wanted.", "--json"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )  # fmt: skip
    assert done.returncode == 0, done.stderr
    types = [json.loads(line)["type"] for line in done.stdout.decode().splitlines()]
    assert types == ["wanted.kind"] * 3
