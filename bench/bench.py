"""codexd benchmarks: each figure is a ratio against a baseline measured in the same run.

Run with ``nox -s bench`` (or ``python bench/bench.py [--quick]``). Prints a table and writes
``bench/results.json``. Targets are reported as met or not; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from codexd import ApiConfig, ChildConfig, Config, Session, StopConfig, TurnsConfig, open_daemon
from codexd._store import Store
from codexd.testing import FakeAppServerScript, Reply, open_fake_provider, write_codex_home

HERE = Path(__file__).parent


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


# ---- 2. latency --------------------------------------------------------------------------------


async def api_latency(
    state_dir: Path, *, rate: int, seconds: float, subscribers: int
) -> dict[str, Any]:
    """Event submitted -> committed -> received by N WebSocket subscribers in ANOTHER process."""
    config = Config(
        mode="exec",
        state_dir=str(state_dir),
        stop=StopConfig(grace_s=1.0),
        api=ApiConfig(listen="ws://127.0.0.1:0"),
    )
    total = int(rate * seconds)
    async with open_daemon(config) as daemon:
        proc = await trio.lowlevel.open_process(
            [
                sys.executable,
                str(HERE / "_subscribers.py"),
                str(state_dir),
                str(subscribers),
                str(total),
            ],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        buffer = b""
        while b"ready\n" not in buffer:
            buffer += await proc.stdout.receive_some(4096)
        start = trio.current_time()
        for n in range(total):
            await trio.sleep_until(start + n / rate)
            await daemon.store.emit("bench.latency", "tick", detail={"t": time.monotonic()})
        while True:
            chunk = await proc.stdout.receive_some(4096)
            if not chunk:
                break
            buffer += chunk
        await proc.wait()
    stats: dict[str, Any] = json.loads(buffer.split(b"ready\n", 1)[1])
    stats.update({"events": total, "subscribers": subscribers, "rate_per_s": rate})
    return stats


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


# ---- main ---------------------------------------------------------------------------------------


async def main(quick: bool) -> dict[str, Any]:
    flood = 20_000 if quick else 200_000
    stored = 50_000 if quick else 1_000_000
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quick": quick,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = statistics.median([await raw_ceiling(flood) for _ in range(3)])
        b = statistics.median([await codexd_end_to_end(flood, root / f"e2e{i}") for i in range(3)])
        c, c_note = await trio.to_thread.run_sync(official_sdk, flood)
        results["throughput"] = {
            "messages": flood,
            "raw_ceiling_msg_s": a,
            "codexd_msg_s": b,
            "sdk_msg_s": c,
            "sdk_note": c_note,
            "b_over_a": b / a,
            "b_over_c": (b / c) if c else None,
        }

        results["latency"] = await api_latency(
            root / "lat", rate=1000, seconds=3 if quick else 10, subscribers=10
        )

        async with open_fake_provider(default=Reply.text("ok")) as provider:
            home = write_codex_home(root / "codex", base_url=provider.base_url)
            base = dict(os.environ, CODEXD_API__LISTEN="ws://127.0.0.1:0")
            no_child = dict(base, CODEXD_STATE_DIR=str(root / "s1"), CODEXD_MODE="exec")
            with_child = dict(
                base, CODEXD_STATE_DIR=str(root / "s2"), CODEXD_CHILD__ENV=json.dumps(home.env({}))
            )
            py = statistics.median([await python_baseline_s() for _ in range(5)])
            ready_exec = statistics.median([await serve_ready_s(no_child) for _ in range(5)])
            init = statistics.median([await child_initialize_s(home.env()) for _ in range(5)])
            ready_child = statistics.median([await serve_ready_s(with_child) for _ in range(5)])
        results["startup"] = {
            "python_import_trio_s": py,
            "serve_ready_no_child_s": ready_exec,
            "child_initialize_s": init,
            "serve_ready_with_child_s": ready_child,
            "overhead_over_child_s": ready_child - init,
        }

        rate, raw = await store_rate(stored, root / "store")
        results["store"] = {
            "events": stored,
            "events_s": rate,
            "raw_sqlite_rows_s": raw,
            "ratio": rate / raw,
            "batch_max": 2048,
            "fsync": "synchronous=FULL, WAL, one transaction per batch",
        }
        results["memory"] = {
            "rss_mib_100_sessions_stored_events": await daemon_rss_mib(root / "store"),
            "stored_events": stored,
            "bench_process_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    return results


def report(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    t, s, st, m = r["throughput"], r["startup"], r["store"], r["memory"]
    rows = [
        ("throughput (a) raw Trio reader", f"{t['raw_ceiling_msg_s']:,.0f} msg/s", "baseline", ""),
        (
            "throughput (b) codexd end to end",
            f"{t['codexd_msg_s']:,.0f} msg/s",
            f"b/a = {t['b_over_a']:.0%}",
            "met" if t["b_over_a"] >= 0.4 else "NOT met (>= 40%)",
        ),
        (
            "throughput (c) official SDK",
            f"{t['sdk_msg_s']:,.0f} msg/s" if t["sdk_msg_s"] else "not measured",
            f"b/c = {t['b_over_c']:.2f}x" if t["b_over_c"] else t["sdk_note"],
            ("met" if t["b_over_c"] >= 2 else "NOT met (>= 2x)") if t["b_over_c"] else "n/a",
        ),
        (
            "latency submit -> 10 WS subscribers",
            f"p50 {r['latency']['p50_ms']:.2f} ms",
            f"p99 {r['latency']['p99_ms']:.2f} ms at 1k ev/s",
            "met" if r["latency"]["p99_ms"] <= 5 else "NOT met (p99 <= 5 ms)",
        ),
        (
            "serve ready, no child",
            f"{s['serve_ready_no_child_s'] * 1000:.0f} ms",
            f"python+trio import {s['python_import_trio_s'] * 1000:.0f} ms",
            "met" if s["serve_ready_no_child_s"] <= 0.5 else "NOT met (<= 0.5 s)",
        ),
        (
            "serve ready, real child",
            f"{s['serve_ready_with_child_s'] * 1000:.0f} ms",
            f"child initialize alone {s['child_initialize_s'] * 1000:.0f} ms",
            "met" if s["overhead_over_child_s"] <= 0.5 else "NOT met (<= 0.5 s + init)",
        ),
        (
            "store events/s",
            f"{st['events_s']:,.0f}/s",
            f"raw executemany {st['raw_sqlite_rows_s']:,.0f}/s ({st['ratio']:.0%})",
            st["fsync"],
        ),
        (
            "daemon RSS, 100 sessions + stored events",
            f"{m['rss_mib_100_sessions_stored_events']:.1f} MiB",
            f"{m['stored_events']:,} events",
            "met" if m["rss_mib_100_sessions_stored_events"] <= 80 else "NOT met (<= 80 MB)",
        ),
    ]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small counts (for a smoke run)")
    args = parser.parse_args()
    results = trio.run(main, args.quick)
    rows = report(results)
    widths = [
        max(len(r[i]) for r in [("measure", "figure", "baseline", "target"), *rows])
        for i in range(4)
    ]
    for row in [("measure", "figure", "baseline", "target"), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results written to {HERE / 'results.json'}")
