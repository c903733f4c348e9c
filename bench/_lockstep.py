"""Bench part 3: real turns against the official SDK, in lockstep (``_turns.py`` and
``_sdk_turns.py`` are the helpers, each in its own process)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import trio

from codexd.testing import Reply, open_fake_provider, write_codex_home

HERE = Path(__file__).parent


# ---- 2c. real turns vs the official SDK ---------------------------------------------------------


def turn_row(started: float, answered: float, first_delta: float, done: float, cpu: float) -> str:
    """The JSON line each helper prints per turn (``time.perf_counter`` marks, and the
    ``time.process_time`` at the start): milliseconds to the ``turn/start`` answer, to the first
    agent-message delta, to the turn's end, and the helper's CPU time for the turn."""
    return json.dumps(
        {
            "start_ms": (answered - started) * 1000,
            "first_delta_ms": (first_delta - started) * 1000,
            "turn_ms": (done - started) * 1000,
            "cpu_ms": (time.process_time() - cpu) * 1000,
        }
    )


class _Lockstep:
    """A turn-bench helper process driven one turn at a time (a line in, a JSON line out)."""

    def __init__(self, process: trio.Process, daemon: trio.Process | None = None) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.daemon = daemon
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._buffer = b""

    async def line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = await self._stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError("a turn-bench helper ended early (its stderr is above)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    async def turn(self) -> dict[str, float]:
        """One turn; with a daemon, the CPU time it spent on the turn too (``daemon_cpu_ms``)."""
        before = _cpu_s(self.daemon.pid) if self.daemon is not None else 0.0
        await self._stdin.send_all(b"go\n")
        row: dict[str, float] = json.loads(await self.line())
        if self.daemon is not None:
            row["daemon_cpu_ms"] = (_cpu_s(self.daemon.pid) - before) * 1000
        return row


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def _process(
    argv: list[str], env: dict[str, str], *, stop: str = "eof"
) -> AsyncIterator[trio.Process]:
    """A process whose stdin and stdout are ours; at the end it is stopped by closing its input
    (``stop="eof"``: the turn helpers) or by SIGTERM (``"sigterm"``: ``codexd serve``), and
    killed if it has not exited 5 s later."""
    process = await trio.lowlevel.open_process(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.stdin is not None:
            await process.stdin.aclose()
        if stop == "sigterm":
            process.terminate()
        with trio.move_on_after(5):
            await process.wait()
        process.kill()
        await process.wait()


async def _serve(
    stack: contextlib.AsyncExitStack, root: Path, env: dict[str, str], durability: str
) -> tuple[trio.Process, Path]:
    """Start ``codexd serve`` (its child on the fake provider); returns its state dir."""
    state = root / f"turns-state-{durability}-{time.monotonic_ns()}"
    serve_env = dict(
        os.environ,
        CODEXD_STATE_DIR=str(state),
        CODEXD_API__LISTEN="ws://127.0.0.1:0",
        CODEXD_CHILD__ENV=json.dumps(env),
        CODEXD_STORE__DURABILITY=durability,
    )
    process = await stack.enter_async_context(
        _process([sys.executable, "-m", "codexd", "serve"], serve_env, stop="sigterm")
    )
    assert process.stdin is not None
    await process.stdin.aclose()  # serve reads no input
    assert process.stdout is not None
    first = await process.stdout.receive_some(4096)
    assert first.startswith(b"codexd ready"), first
    return process, state


async def turn_latency(root: Path, *, warmup: int, turns: int) -> dict[str, Any]:
    """Short real turns (same binary, same fake provider, same prompt) through the official
    SDK, through ``codexd serve`` + its API client in another process, and the same with
    ``store.durability = "normal"``, in lockstep: one turn each in turn (the order rotating),
    so that all three see the same moment of a noisy machine. Overheads are medians of the
    per-turn differences against the SDK's turn of the same round."""
    try:
        import openai_codex  # noqa: F401
    except ImportError as exc:
        return {"note": f"openai-codex not installed ({exc}); not measured"}
    names = ("sdk", "full", "normal")
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    async with open_fake_provider(default=Reply.text("Hello from the fake model.")) as provider:
        home = write_codex_home(root / "turns-codex", base_url=provider.base_url)
        async with contextlib.AsyncExitStack() as stack:
            helpers = {
                "sdk": await stack.enter_async_context(
                    _process([sys.executable, str(HERE / "_sdk_turns.py"), str(root)], home.env())
                )
            }
            daemons = {}
            for durability in ("full", "normal"):
                daemons[durability], state = await _serve(stack, root, home.env({}), durability)
                helpers[durability] = await stack.enter_async_context(
                    _process(
                        [sys.executable, str(HERE / "_turns.py"), str(state), str(root)],
                        dict(os.environ),
                    )
                )
            drivers = {
                name: _Lockstep(process, daemons.get(name)) for name, process in helpers.items()
            }
            for driver in drivers.values():
                assert await driver.line() == b"ready"
            for n in range(warmup + turns):
                for k in range(len(names)):
                    name = names[(n + k) % len(names)]
                    row = await drivers[name].turn()
                    if n >= warmup:
                        rows[name].append(row)

    def med(values: Iterable[float]) -> float:
        return statistics.median(values)

    out: dict[str, Any] = {"turns_each": turns, "warmup": warmup, "lockstep": True}
    for key in ("start_ms", "first_delta_ms", "turn_ms"):
        out[f"sdk_{key}"] = med(r[key] for r in rows["sdk"])
        out[f"codexd_{key}"] = med(r[key] for r in rows["full"])
        out[f"codexd_normal_{key}"] = med(r[key] for r in rows["normal"])
    # CPU per turn: the SDK's process, against codexd's client process + daemon (neither
    # counts the codex child). On 2 cores shared with the child, this is what delays it.
    out["sdk_cpu_ms"] = med(r["cpu_ms"] for r in rows["sdk"])
    out["codexd_client_cpu_ms"] = med(r["cpu_ms"] for r in rows["full"])
    # /proc counts in clock ticks (10 ms): the daemon's figure is a mean, not a median.
    out["codexd_daemon_cpu_ms"] = statistics.mean(r["daemon_cpu_ms"] for r in rows["full"])
    out["codexd_normal_daemon_cpu_ms"] = statistics.mean(r["daemon_cpu_ms"] for r in rows["normal"])
    for name, suffix in (("full", ""), ("normal", "_normal")):
        for key, label in (
            ("turn_ms", "turn"),
            ("first_delta_ms", "first_delta"),
            ("start_ms", "start"),
        ):
            diffs = sorted(
                ours[key] - theirs[key]
                for ours, theirs in zip(rows[name], rows["sdk"], strict=True)
            )
            quartiles = statistics.quantiles(diffs, n=4)
            out[f"{label}_overhead{suffix}_ms"] = med(diffs)
            out[f"{label}_overhead{suffix}_q1_q3_ms"] = [quartiles[0], quartiles[2]]
    return out
