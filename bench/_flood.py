"""Bench part 1: notification throughput: (a) a raw Trio reader, (b) codexd end to end, (c) the
official SDK, all on the same fake app-server flood."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import trio

from codexd import (
    ApiConfig,
    ChildConfig,
    Config,
    StopConfig,
    TurnsConfig,
    open_daemon,
)
from codexd._gc import tune_gc
from codexd.testing import FakeAppServerScript

# ---- 1. notification throughput ---------------------------------------------------------------


async def raw_ceiling(count: int) -> float:
    """(a) A minimal Trio reader: split lines, json.loads each. Returns msg/s."""
    script = FakeAppServerScript()
    proc = await trio.lowlevel.open_process(
        script.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    await proc.stdin.send_all(
        b'{"id":1,"method":"initialize","params":{"clientInfo":{"name":"b","version":"1"}}}\n'
        b'{"method":"initialized","params":{}}\n'
    )
    buffer = b""
    seen = 0
    started = None
    done = False
    while not done:
        chunk = await proc.stdout.receive_some(1 << 16)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if message.get("id") == 1:
                started = time.perf_counter()
                await proc.stdin.send_all(
                    b'{"id":2,"method":"fake/flood","params":{"count":%d}}\n' % count
                )
            elif message.get("method") == "item/agentMessage/delta":
                seen += 1
            elif message.get("method") == "fake/floodDone":
                done = True
    elapsed = time.perf_counter() - (started or time.perf_counter())
    proc.kill()
    await proc.wait()
    assert seen == count, (seen, count)
    return count / elapsed


async def codexd_end_to_end(count: int, state_dir: Path) -> float:
    """(b) pipe -> JSON-RPC -> Event -> store batch committed -> one subscriber. msg/s."""
    argv = FakeAppServerScript().command()
    config = Config(
        state_dir=str(state_dir),
        child=ChildConfig(command=argv[0], args=argv[1:]),
        api=ApiConfig(enabled=False, subscriber_buffer=count + 1000),
        stop=StopConfig(grace_s=1.0),
        turns=TurnsConfig(request_timeout_s=120.0),
    )
    async with open_daemon(config) as daemon:
        tune_gc()
        subscription = daemon.subscribe(type_prefix="app-server.item.agentMessage.delta")
        client = await daemon.client()
        seen = 0
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.request, "fake/flood", {"count": count})
            async for _event in subscription:
                seen += 1
                if seen == count:
                    break
        elapsed = time.perf_counter() - started
    return count / elapsed


def official_sdk(count: int) -> tuple[float | None, str]:
    """(c) The official ``openai-codex`` SDK's notification loop on the same fake server."""
    try:
        from openai_codex.client import CodexClient, CodexConfig
    except ImportError as exc:
        return None, f"openai-codex not installed ({exc})"
    argv = tuple(FakeAppServerScript().command())
    client = CodexClient(CodexConfig(launch_args_override=argv))
    client.start()
    try:
        client.initialize()
        client.register_turn_notifications("fake-flood")
        started = time.perf_counter()
        client._request_raw("fake/flood", {"count": count})
        for _ in range(count):
            client.next_turn_notification("fake-flood")
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return count / elapsed, "openai-codex CodexClient, next_turn_notification loop"
