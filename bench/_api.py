"""Bench part 2: the API: latency to 10 WebSocket subscribers and WebSocket fan-out, the
subscribers in another process (``_subscribers.py``)."""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from codexd import (
    ApiConfig,
    Config,
    StopConfig,
    _api_server,
    open_daemon,
)
from codexd._gc import tune_gc

HERE = Path(__file__).parent


class _Subscribers:
    """``_subscribers.py`` in its own process: started, ready (all subscribed), then its report."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None
        self._process = process
        self._stdout = process.stdout
        self._buffer = b""

    @classmethod
    async def start(cls, mode: str, state_dir: Path, subscribers: int, total: int) -> _Subscribers:
        """Start the helper and wait until every subscriber is subscribed."""
        argv = [sys.executable, str(HERE / "_subscribers.py"), mode, str(state_dir)]
        process = await trio.lowlevel.open_process(
            [*argv, str(subscribers), str(total)], stdout=subprocess.PIPE
        )
        helper = cls(process)
        while b"ready\n" not in helper._buffer:
            helper._buffer += await helper._stdout.receive_some(4096)
        return helper

    async def report(self) -> dict[str, Any]:
        """The JSON line the helper prints once it has every event (it then exits)."""
        while chunk := await self._stdout.receive_some(4096):
            self._buffer += chunk
        await self._process.wait()
        report: dict[str, Any] = json.loads(self._buffer.split(b"ready\n", 1)[1])
        return report


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
    gc_pauses: list[tuple[int, float]] = []
    commits: list[float] = []
    #: Commits during which SQLite checkpointed its WAL into the database file: in WAL mode
    #: only a checkpoint writes that file, so its modification time says which commits did.
    checkpoints: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1000))

    async with open_daemon(config) as daemon:
        tune_gc()
        files = daemon.store._files
        write = files.write
        database = state_dir / "state.sqlite3"
        modified = [database.stat().st_mtime_ns]

        def timed_write(prepared: Any) -> None:
            started = time.perf_counter()
            write(prepared)
            took = (time.perf_counter() - started) * 1000
            commits.append(took)
            if (mtime := database.stat().st_mtime_ns) != modified[0]:
                modified[0] = mtime
                checkpoints.append(took)

        files.write = timed_write  # type: ignore[method-assign]
        helper = await _Subscribers.start("latency", state_dir, subscribers, total)
        start = trio.current_time()
        gc.callbacks.append(on_gc)
        try:
            for n in range(total):
                await trio.sleep_until(start + n / rate)
                await daemon.store.emit("bench.latency", "tick", detail={"t": time.monotonic()})
        finally:
            gc.callbacks.remove(on_gc)
        report = await helper.report()
    stats: dict[str, Any] = report
    commits.sort()
    stats.update(
        {
            "events": total,
            "subscribers": subscribers,
            "rate_per_s": rate,
            "gc_pauses_ms_by_generation": {
                str(g): sorted(round(ms, 2) for gen, ms in gc_pauses if gen == g)[-5:]
                for g in (0, 1, 2)
            },
            "gc_collections_by_generation": {
                str(g): sum(1 for gen, _ in gc_pauses if gen == g) for g in (0, 1, 2)
            },
            "commits": len(commits),
            "commit_p50_ms": commits[len(commits) // 2] if commits else None,
            "commit_p99_ms": commits[int(len(commits) * 0.99)] if commits else None,
            "commit_slowest_ms": [round(c, 2) for c in commits[-5:]],
            "wal_checkpoints": len(checkpoints),
            "wal_checkpoint_commit_ms": sorted(round(c, 2) for c in checkpoints),
        }
    )
    return stats


# ---- 2b. WebSocket fan-out -------------------------------------------------------------------


async def _emit_flood(daemon: Any, total: int) -> float:
    """``total`` bench.fanout events through the store, 100 per submission (a chunk's worth);
    returns the events/s at which the store committed them."""
    started = time.perf_counter()
    for base in range(0, total, 100):
        await daemon.store.emit_events(
            [
                ("info", "bench.fanout", "tick", {"n": n, "pad": "x" * 40}, None, None)
                for n in range(base, min(total, base + 100))
            ]
        )
    await daemon.store.record("bench.fanout.end", "end")
    return total / (time.perf_counter() - started)


async def api_fanout(state_dir: Path, *, subscribers: int, total: int) -> dict[str, Any]:
    """Events/s each of N bare WebSocket subscribers in ANOTHER process receives (all events,
    from the flood's start to its own last event), while the daemon commits events as fast as
    it can; the baseline is the same flood with no subscriber (the store's own rate), measured
    first on the same daemon."""
    config = Config(
        mode="exec",
        state_dir=str(state_dir),
        stop=StopConfig(grace_s=1.0),
        api=ApiConfig(listen="ws://127.0.0.1:0", subscriber_buffer=total + 1000),
    )
    async with open_daemon(config) as daemon:
        tune_gc()
        alone = await _emit_flood(daemon, total)
        helper = await _Subscribers.start("fanout", state_dir, subscribers, total)
        flood_started = time.monotonic()
        watched = await _emit_flood(daemon, total)
        report = await helper.report()
    finished = report["finished_monotonic"]
    rates = [total / (end - flood_started) for end in finished]
    return {
        "subscribers": subscribers,
        "events": total,
        "per_subscriber_ev_s_median": statistics.median(rates),
        "per_subscriber_ev_s_min": min(rates),
        "store_alone_ev_s": alone,
        "store_while_streaming_ev_s": watched,
        "one_write_per_batch": hasattr(_api_server, "event_frames"),
    }
