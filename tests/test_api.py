"""The local API: authentication, origins, errors, malformed frames, subscriptions."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_websocket

from codexd import ApiConfig, Config, Daemon, open_daemon
from codexd.client import ApiError, open_client, read_api_info


@asynccontextmanager
async def api_daemon(base_config: Config, **api: Any) -> AsyncIterator[Daemon]:
    config = attrs.evolve(base_config, mode="exec", api=ApiConfig(listen="ws://127.0.0.1:0", **api))
    async with open_daemon(config) as daemon:
        yield daemon


async def test_api_json_and_token_file(base_config: Config) -> None:
    with trio.fail_after(20):
        async with api_daemon(base_config) as daemon:
            state = Path(base_config.state_dir)
            url, token = read_api_info(state)
            assert url == daemon.info.api_url
            assert url.startswith("ws://127.0.0.1:")
            mode = stat.S_IMODE(os.stat(state / "api-token").st_mode)
            assert mode == 0o600
            info = json.loads((state / "api.json").read_text())
            assert info["pid"] == os.getpid()
            assert info["daemonId"] == daemon.store.daemon_id
        assert not (state / "api.json").exists()
        # The token is kept across restarts.
        async with api_daemon(base_config):
            assert read_api_info(state)[1] == token


async def _handshake_status(url: str, headers: list[tuple[bytes, bytes]]) -> int | None:
    try:
        async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
            await ws.send_message(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "daemon/status", "params": {}})
            )
            await ws.get_message()
            return None
    except trio_websocket.ConnectionRejected as exc:
        return int(exc.status_code)


async def test_no_token_wrong_token_foreign_origin_refused(base_config: Config) -> None:
    with trio.fail_after(20):
        async with api_daemon(base_config) as daemon:
            url, token = read_api_info(Path(base_config.state_dir))
            assert daemon.info.api_url == url
            good = [(b"Authorization", f"Bearer {token}".encode())]
            assert await _handshake_status(url, []) == 401
            assert await _handshake_status(url, [(b"Authorization", b"Bearer nope")]) == 401
            assert await _handshake_status(url, [(b"Authorization", token.encode())]) == 401
            assert (
                await _handshake_status(url, [*good, (b"Origin", b"https://evil.example")]) == 403
            )
            assert await _handshake_status(url, good) is None


async def test_allowed_origin_is_accepted(base_config: Config) -> None:
    with trio.fail_after(20):
        async with api_daemon(base_config, allowed_origins=["http://localhost:3000"]):
            url, token = read_api_info(Path(base_config.state_dir))
            headers = [
                (b"Authorization", f"Bearer {token}".encode()),
                (b"Origin", b"http://localhost:3000"),
            ]
            assert await _handshake_status(url, headers) is None


async def test_errors_name_the_field(base_config: Config) -> None:
    with trio.fail_after(20):
        async with api_daemon(base_config), open_client(Path(base_config.state_dir)) as client:
            status = await client.call("daemon/status")
            assert status["daemon"]["mode"] == "exec"
            with pytest.raises(ApiError) as info:
                await client.call("session/get", {"sessionId": "nope"})
            assert info.value.code == -32004 and info.value.field == "sessionId"
            with pytest.raises(ApiError) as info:
                await client.call("session/get", {})
            assert info.value.code == -32602 and info.value.field == "sessionId"
            with pytest.raises(ApiError) as info:
                await client.call("session/get", {"sessionId": 5})
            assert info.value.code == -32602 and "must be a string" in info.value.message
            with pytest.raises(ApiError) as info:
                await client.call("session/list", {"bogus": 1})
            assert info.value.field == "bogus"
            with pytest.raises(ApiError) as info:
                await client.call("no/such")
            assert info.value.code == -32601
            with pytest.raises(ApiError) as info:
                await client.call("session/create", {"purpose": "x"})
            assert info.value.code == -32006  # wrong mode: sessions need app-server mode


async def test_thousand_malformed_frames_then_valid_request(base_config: Config) -> None:
    rng = random.Random(1234)
    garbage: list[str | bytes] = []
    for n in range(1000):
        kind = n % 8
        if kind == 0:
            garbage.append("not json {" + "x" * rng.randint(0, 50))
        elif kind == 1:
            garbage.append(json.dumps([1, 2, 3]))
        elif kind == 2:
            garbage.append(json.dumps({"jsonrpc": "2.0", "id": n, "method": 42}))
        elif kind == 3:
            garbage.append(
                json.dumps({"jsonrpc": "2.0", "id": n, "method": "nope/nope", "params": {}})
            )
        elif kind == 4:
            garbage.append(json.dumps({"id": n, "method": "daemon/status"}))  # no jsonrpc
        elif kind == 5:
            garbage.append(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "session/get",
                        "params": {"sessionId": ["x"] * 1000},
                    }
                )
            )
        elif kind == 6:
            garbage.append(
                json.dumps({"jsonrpc": "2.0", "id": n, "method": "run/get", "params": "oops"})
            )
        else:
            garbage.append(bytes(rng.getrandbits(8) for _ in range(64)))
    with trio.fail_after(60):
        async with api_daemon(base_config) as daemon:
            url, token = read_api_info(Path(base_config.state_dir))
            headers = [(b"Authorization", f"Bearer {token}".encode())]
            errors = 0
            async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
                for frame in garbage:
                    await ws.send_message(frame)
                    answer = json.loads(await ws.get_message())
                    assert "error" in answer, answer
                    assert answer["error"]["code"] in (-32700, -32600, -32601, -32602)
                    errors += 1
                await ws.send_message(
                    json.dumps(
                        {"jsonrpc": "2.0", "id": "ok", "method": "daemon/status", "params": {}}
                    )
                )
                answer = json.loads(await ws.get_message())
                assert answer["id"] == "ok" and answer["result"]["daemon"]["mode"] == "exec"
            assert errors == 1000
            # A frame over the size limit closes that connection cleanly; the daemon serves on.
            async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
                with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                    await ws.send_message("x" * (5 * 1024 * 1024))
                    await ws.get_message()
                assert closed.value.reason is not None and closed.value.reason.code == 1009
            async with open_client(Path(base_config.state_dir)) as client:
                assert (await client.call("daemon/status"))["daemonId"] == daemon.store.daemon_id


async def test_subscribe_since_zero_sees_every_event_in_order(base_config: Config) -> None:
    with trio.fail_after(30):
        async with api_daemon(base_config) as daemon:
            for n in range(20):
                await daemon.store.record("test.before", f"before {n}")
            async with open_client(Path(base_config.state_dir)) as client:
                seqs: list[int] = []

                async def produce() -> None:
                    for n in range(200):
                        await daemon.store.emit("test.live", f"live {n}")
                    await daemon.store.record("test.end", "end")

                async with trio.open_nursery() as nursery:
                    async for event in client.subscribe(since=0):
                        seqs.append(event["seq"])
                        if len(seqs) == 1:
                            nursery.start_soon(produce)
                        if event["type"] == "test.end":
                            break
            assert seqs == list(range(1, len(seqs) + 1))
            assert len(seqs) >= 221


async def test_subscriber_that_never_reads_is_dropped(base_config: Config) -> None:
    with trio.fail_after(60):
        async with api_daemon(base_config, subscriber_buffer=50) as daemon:
            url, token = read_api_info(Path(base_config.state_dir))
            headers = [(b"Authorization", f"Bearer {token}".encode())]
            async with trio_websocket.open_websocket_url(
                url, extra_headers=headers, message_queue_size=1
            ) as ws:
                await ws.send_message(
                    json.dumps(
                        {"jsonrpc": "2.0", "id": 1, "method": "events/subscribe", "params": {}}
                    )
                )
                assert "result" in json.loads(await ws.get_message())
                # Never read again while a flood goes by; the daemon must not block on us.
                for n in range(5000):
                    await daemon.store.emit("flood", f"{n}", detail={"pad": "y" * 200})
                await daemon.store.record("flood", "done")
                assert daemon.store.subscriber_count == 0
                closed = False
                try:
                    while True:
                        await ws.get_message()
                except trio_websocket.ConnectionClosed as exc:
                    closed = True
                    assert exc.reason is not None and exc.reason.code == 4008
                assert closed


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


NEVER_READS = """
import sys, trio, trio_websocket, json
async def main(url, token):
    headers = [(b"Authorization", ("Bearer " + token).encode())]
    async with trio_websocket.open_websocket_url(url, extra_headers=headers,
                                                 message_queue_size=1) as ws:
        await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": 1,
                                          "method": "events/subscribe", "params": {}}))
        await ws.get_message()
        print("subscribed", flush=True)
        await trio.sleep(120)  # never read again
trio.run(main, sys.argv[1], sys.argv[2])
"""


async def test_rss_flat_while_100k_events_pass_a_subscriber_that_never_reads(
    base_config: Config,
) -> None:
    with trio.fail_after(120):
        async with api_daemon(base_config) as daemon:
            url, token = read_api_info(Path(base_config.state_dir))
            proc = await trio.lowlevel.open_process(
                [sys.executable, "-c", NEVER_READS, url, token], stdout=subprocess.PIPE
            )
            try:
                assert proc.stdout is not None
                assert (await proc.stdout.receive_some(100)).startswith(b"subscribed")
                await trio.sleep(0.2)
                assert daemon.store.subscriber_count == 1
                for n in range(5_000):  # warm up: allocator, caches
                    await daemon.store.emit("flood", f"{n}", detail={"pad": "y" * 300})
                before = _rss_mib()
                for n in range(100_000):
                    await daemon.store.emit("flood", f"{n}", detail={"pad": "y" * 300})
                await daemon.store.record("flood", "done")
                after = _rss_mib()
                print(f"RSS before {before:.1f} MiB, after 100k events {after:.1f} MiB")
                assert daemon.store.subscriber_count == 0, "the lagging subscriber was dropped"
                assert after - before < 40, f"RSS grew {after - before:.1f} MiB over 100k events"
            finally:
                proc.kill()
                await proc.wait()
