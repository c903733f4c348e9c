"""The examples in examples/ type-check with mypy --strict and work against a real daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trio

from codexd.testing import Reply

from .served import served

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=dict(os.environ),
    )


async def test_examples_pass_mypy_strict() -> None:
    """Only public names, fully typed: what a user's own bot would be checked with."""
    with trio.fail_after(240):
        done = await _run(
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            str(EXAMPLES / "bot.py"),
            str(EXAMPLES / "asyncio_bot.py"),
        )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


async def test_examples_run_against_the_daemon(tmp_path: Path) -> None:
    marker = tmp_path / "work" / "made-by-bot.txt"
    async with served(
        tmp_path,
        Reply.shell(f"touch {marker}"),
        Reply.text("Done, file created."),
        default=Reply.text("Hello from asyncio."),
        approvals="ask",
    ) as s:
        with trio.fail_after(120):
            bot = await _run(str(EXAMPLES / "bot.py"), str(s.state_dir), str(s.work), "Go.")
            assert bot.returncode == 0, bot.stderr.decode()[-3000:]
            out = bot.stdout.decode()
            assert f"$ /bin/bash -lc 'touch {marker}' -> 0" in out
            assert out.rstrip().endswith("[completed] Done, file created.")
            assert marker.exists()

            aio = await _run(str(EXAMPLES / "asyncio_bot.py"), str(s.state_dir), str(s.work), "Hi.")
            assert aio.returncode == 0, aio.stderr.decode()[-3000:]
            lines = aio.stdout.decode().splitlines()
            assert lines == ["Hello from asyncio.", "[completed] Hello from asyncio."]
