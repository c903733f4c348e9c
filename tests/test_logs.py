from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from codexd._logfiles import RotatingFile
from codexd._store import Store


def test_rotation_keeps_backups(tmp_path: Path) -> None:
    log = RotatingFile(tmp_path / "x.log", max_bytes=100, backups=2)
    for n in range(10):
        log.write(f"{n:02d}".encode() * 20 + b"\n")  # 41 bytes a line
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["x.log", "x.log.1", "x.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert (tmp_path / "x.log").read_bytes().startswith(b"08")
    assert (tmp_path / "x.log.1").read_bytes().startswith(b"06")


async def test_store_rotates_events_jsonl(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, log_max_bytes=2000, log_backups=1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for n in range(100):
                await store.record("rot.test", f"event {n}")
            await store.close_input()
    assert (tmp_path / "events.jsonl.1").exists()
    assert not (tmp_path / "events.jsonl.2").exists()
    last = (tmp_path / "events.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["message"] == "event 99"


async def test_sighup_reopens_logs_for_logrotate(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = dict(
        os.environ,
        CODEXD_STATE_DIR=str(state),
        CODEXD_MODE="exec",
        CODEXD_API__LISTEN="ws://127.0.0.1:0",
    )
    with trio.fail_after(30):
        serve = await trio.lowlevel.open_process(
            [sys.executable, "-m", "codexd", "serve"], env=env, stdout=subprocess.PIPE
        )
        assert serve.stdout is not None
        assert (await serve.stdout.receive_some(4096)).startswith(b"codexd ready")
        # logrotate moves the file away, then signals the daemon.
        (state / "events.jsonl").rename(state / "events.jsonl.rotated")
        serve.send_signal(signal.SIGHUP)
        await trio.sleep(0.3)
        serve.send_signal(signal.SIGTERM)
        assert await serve.wait() == 0
    rotated = (state / "events.jsonl.rotated").read_text()
    fresh = (state / "events.jsonl").read_text()
    assert "daemon.started" in rotated
    assert "daemon.stopped" in fresh and "daemon.stopped" not in rotated
