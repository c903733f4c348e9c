"""Support for the CLI tests: a ``codexd serve`` subprocess, CLI runs, and a pseudo-terminal.

:class:`PtyProcess` runs a command with a pseudo-terminal as its stdin, stdout and stderr (so
the CLI sees a TTY, as a person's shell gives it) and records every byte with the time it
arrived, so a test can say *when* something appeared, not only that it did.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from codexd.testing import FakeModelProvider, Reply, open_fake_provider, write_codex_home

from .helpers import Serve, start_serve
from .served import write_config

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
#: SGR sequences: the ones that colour or style text.
SGR = re.compile(rb"\x1b\[[0-9;]*m")


def plain(data: bytes) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return ANSI.sub(b"", data).replace(b"\r", b"").decode(errors="replace")


async def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """``python -m codexd ARGS`` with stdout and stderr captured (pipes, not a terminal)."""
    with trio.fail_after(timeout):
        return await trio.run_process(
            [sys.executable, "-m", "codexd", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, **(env or {})},
        )


@attrs.define
class Daemon:
    """A running ``codexd serve`` and what a test needs to reach it."""

    serve: Serve
    config: Path
    state_dir: Path
    provider: FakeModelProvider
    env: dict[str, str]

    async def cli(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return await cli("--config", str(self.config), *args, **kwargs)


@asynccontextmanager
async def running_daemon(
    tmp_path: Path, *replies: Reply, mode: str = "app-server", exec_env: bool = False
) -> AsyncIterator[Daemon]:
    """A fake provider in this process and ``codexd serve`` pointed at it (stopped after).

    ``exec_env`` also puts the fake ``CODEX_HOME`` in the daemon's own environment, which is
    where ``codex exec`` runs take theirs from.
    """
    async with open_fake_provider(*replies) as provider, trio.open_nursery() as nursery:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        env = home.env({})
        config = write_config(tmp_path, env, mode=mode)
        serve = await start_serve(
            nursery, ["--config", str(config), "serve"], env=home.env() if exec_env else None
        )
        try:
            yield Daemon(serve, config, tmp_path / "state", provider, env)
        finally:
            await serve.stop()
            nursery.cancel_scope.cancel()


class PtyProcess:
    """A process whose stdin, stdout and stderr are one pseudo-terminal; see the module doc."""

    def __init__(self, process: trio.Process, master: int, started: float) -> None:
        self.process = process
        self.master = master
        self.started = started
        self.output = bytearray()
        #: ``(seconds since start, total bytes so far)`` for every chunk read.
        self.arrivals: list[tuple[float, int]] = []
        self.eof = trio.Event()
        self._changed = trio.Event()

    @property
    def text(self) -> str:
        return plain(bytes(self.output))

    async def _pump(self) -> None:
        stream = trio.lowlevel.FdStream(self.master)
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                self.output += data
                self.arrivals.append((trio.current_time() - self.started, len(self.output)))
                self._changed.set()
                self._changed = trio.Event()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # EIO: every holder of the terminal's other side closed it
        finally:
            self.eof.set()
            self._changed.set()

    def seen_at(self, needle: str) -> float | None:
        """Seconds after start when ``needle`` first appeared in the (plain) output."""
        for when, size in self.arrivals:
            if needle in plain(bytes(self.output[:size])):
                return when
        return None

    async def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Wait until the plain output matches the regex ``pattern``."""
        with trio.fail_after(timeout):
            while True:
                match = re.search(pattern, self.text)
                if match:
                    return match
                if self.eof.is_set():
                    raise AssertionError(f"ended without {pattern!r}: {self.text!r}")
                await self._changed.wait()

    def write(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def wait(self, timeout: float = 60) -> int:
        """The exit code, once the process ended and its output was read to the end."""
        with trio.fail_after(timeout):
            code = await self.process.wait()
            await self.eof.wait()
        return code


def _controlling_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty, as in a shell."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@asynccontextmanager
async def pty_process(
    *args: str, env: dict[str, str] | None = None, columns: int = 120
) -> AsyncIterator[PtyProcess]:
    """Run ``python -m codexd ARGS`` on a fresh pseudo-terminal for the ``async with``."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environment = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    if "NO_COLOR" not in (env or {}):
        environment.pop("NO_COLOR", None)  # colour unless the test asks otherwise
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "codexd", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment,
        preexec_fn=_controlling_terminal,
    )
    os.close(slave)
    pty = PtyProcess(process, master, trio.current_time())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pty._pump)
        try:
            yield pty
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            with trio.move_on_after(5):
                await pty.eof.wait()
            nursery.cancel_scope.cancel()
