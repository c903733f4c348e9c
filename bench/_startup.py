"""Bench part 4: start-up, the store's rate and the daemon's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import trio

from codexd import (
    Session,
)
from codexd._store import Store

# ---- 3. start-up -------------------------------------------------------------------------------


async def serve_ready_s(env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "codexd", "serve"], env=env, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await proc.stdout.receive_some(4096)
    ready = time.perf_counter() - started
    assert line.startswith(b"codexd ready"), line
    proc.terminate()
    await proc.wait()
    return ready


async def child_initialize_s(env: dict[str, str]) -> float:
    """The real binary alone: spawn -> initialize answered (the baseline for 'with child')."""
    from codexd._binary import bundled_codex

    started = time.perf_counter()
    proc = await trio.lowlevel.open_process(
        [bundled_codex(), "app-server"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    await proc.stdin.send_all(
        b'{"id":1,"method":"initialize","params":{"clientInfo":{"name":"b","version":"1"}}}\n'
    )
    buffer = b""
    while b'"id":1' not in buffer:
        buffer += await proc.stdout.receive_some(1 << 16)
    elapsed = time.perf_counter() - started
    proc.kill()
    await proc.wait()
    return elapsed


async def python_baseline_s() -> float:
    started = time.perf_counter()
    await trio.run_process([sys.executable, "-c", "import trio"])
    return time.perf_counter() - started


# ---- 4/5. store and memory ---------------------------------------------------------------------


async def store_rate(events: int, state_dir: Path) -> tuple[float, float]:
    """Events/s the persistence task sustains (emit, batches of up to 2048, fsync per batch);
    and the raw SQLite baseline: the same rows in one executemany, no store."""
    store = await Store.open(state_dir)
    now = "2026-01-01T00:00:00.000Z"
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.save(
            *[
                Session(f"s{n}", "bench", f"t{n}", "active", None, None, now, now)
                for n in range(100)
            ]
        )
        started = time.perf_counter()
        detail = {"threadId": "t1", "turnId": "u1", "itemId": "i1", "delta": "hello"}
        for _ in range(events):
            await store.emit("app-server.item.agentMessage.delta", "delta: hello", detail=detail)
        await store.record("bench.end", "end")
        rate = events / (time.perf_counter() - started)
        await store.close_input()

    def raw() -> float:
        import sqlite3

        path = state_dir / "raw.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, data TEXT)")
        line = json.dumps({"type": "delta", "detail": detail})
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO e VALUES (?, ?)", ((n, line) for n in range(events)))
        conn.execute("COMMIT")
        return events / (time.perf_counter() - started)

    return rate, await trio.to_thread.run_sync(raw)


async def daemon_rss_mib(state_dir: Path) -> float:
    """RSS of `codexd serve` (exec mode) started on a store with 100 sessions and the events."""
    env = dict(
        os.environ,
        CODEXD_STATE_DIR=str(state_dir),
        CODEXD_MODE="exec",
        CODEXD_API__LISTEN="ws://127.0.0.1:0",
    )
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "codexd", "serve"], env=env, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    await proc.stdout.receive_some(4096)
    await trio.sleep(0.5)
    rss_kib = 0
    with open(f"/proc/{proc.pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    proc.terminate()
    await proc.wait()
    return rss_kib / 1024
