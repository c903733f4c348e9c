"""kill -9 of a real `codexd serve` at 20 points of a busy workload; every restart recovers."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from codexd._records import FINAL_RUN_STATUSES
from codexd.client import ApiError, DaemonUnreachable, open_client
from codexd.testing import Reply, open_fake_provider, write_codex_home

KILLS = 20


async def _start(argv: list[str], env: dict[str, str]) -> trio.Process:
    process = await trio.lowlevel.open_process(argv, env=env, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = b""
    while b"\n" not in line:
        chunk = await process.stdout.receive_some(4096)
        assert chunk, "codexd serve exited before it was ready"
        line += chunk
    assert line.startswith(b"codexd ready"), line
    return process


async def _workload(
    state: Path, run_env: dict[str, str], cwd: str, session: dict[str, Any]
) -> None:
    """Turns, runs and approvals, as fast as the daemon takes them, until killed."""
    try:
        async with open_client(state) as client:
            if "id" not in session:
                created = await client.call(
                    "session/create",
                    {"purpose": "kill-test", "cwd": cwd, "approvalPolicy": "untrusted"},
                )
                session["id"] = created["sessionId"]
            n = 0
            while True:
                n += 1
                await client.call("run/create", {"prompt": f"run {n}", "cwd": cwd, "env": run_env})
                # The app-server may be restarting: a refused turn is fine here.
                with contextlib.suppress(ApiError):
                    await client.call(
                        "turn/start", {"sessionId": session["id"], "input": f"turn {n}"}
                    )
                await trio.sleep(0.05)
    except (DaemonUnreachable, ApiError, OSError, trio.BrokenResourceError):
        return  # the daemon was killed under us


async def test_kill9_daemon_at_20_points_recovers_everything(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    script = [
        Reply.shell("true") if i % 3 == 0 else Reply.text(f"answer {i}", delay_s=0.1)
        for i in range(400)
    ]
    async with open_fake_provider(*script, default=Reply.text("ok", delay_s=0.1)) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        state = tmp_path / "state"
        env = dict(os.environ)
        env.update(
            {
                "CODEXD_STATE_DIR": str(state),
                "CODEXD_API__LISTEN": "ws://127.0.0.1:0",
                "CODEXD_APPROVALS__POLICY": "accept",
                "CODEXD_RUNS__CONCURRENCY": "2",
                "CODEXD_STOP__GRACE_S": "1",
                "CODEXD_CHILD__ENV": json.dumps(home.env({})),
            }
        )
        argv = [sys.executable, "-m", "codexd", "serve"]
        session: dict[str, Any] = {}
        with trio.fail_after(600):
            for _ in range(KILLS):
                serve = await _start(argv, env)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_workload, state, home.env({}), str(tmp_path), session)
                    await trio.sleep(rng.uniform(0.05, 1.2))
                    serve.send_signal(signal.SIGKILL)
                    await serve.wait()
                    nursery.cancel_scope.cancel()
            # A last start must settle everything the kills left behind.
            serve = await _start(argv, env)
            try:
                async with open_client(state) as client:
                    with trio.fail_after(120):
                        while True:
                            runs = (await client.call("run/list"))["runs"]
                            sessions = (await client.call("session/list"))["sessions"]
                            if all(r["status"] in FINAL_RUN_STATUSES for r in runs) and all(
                                s["currentTurnId"] is None for s in sessions
                            ):
                                break
                            await trio.sleep(0.2)
            finally:
                serve.send_signal(signal.SIGTERM)
                assert await serve.wait() == 0

    with sqlite3.connect(state / "state.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seqs = [s for (s,) in conn.execute("SELECT seq FROM events ORDER BY rowid")]
        starts = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'daemon.started'")
        runs = [json.loads(d) for (d,) in conn.execute("SELECT data FROM runs")]
        sessions = [json.loads(d) for (d,) in conn.execute("SELECT data FROM sessions")]
    assert len(seqs) == len(set(seqs)), "duplicate seq"
    assert seqs == sorted(seqs)
    assert starts.fetchone() == (KILLS + 1,)
    assert runs, "the workload created runs"
    assert {r["status"] for r in runs} <= FINAL_RUN_STATUSES
    assert any(r["status"] == "interrupted" for r in runs)
    assert any(r["status"] == "completed" for r in runs)
    assert all(s["currentTurnId"] is None for s in sessions)
    assert all(
        s["lastTurnStatus"] in ("completed", "failed", "interrupted", None) for s in sessions
    )
    jsonl = [
        json.loads(line)["seq"]
        for line in (state / "events.jsonl").read_text().splitlines()
        if line.strip()
    ]
    assert len(jsonl) == len(set(jsonl)), "duplicate seq in events.jsonl"
