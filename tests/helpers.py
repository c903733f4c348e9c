"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import trio

from codexd.testing import events_of, wait_event

__all__ = ["events_of", "wait_event"]


async def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_listening(port: int, timeout: float = 20.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port``."""
    with trio.fail_after(timeout):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


class Serve:
    """A ``codexd serve`` subprocess, started by :func:`start_serve`."""

    def __init__(self, process: trio.Process, ready: dict[str, Any], stderr: bytearray) -> None:
        self.process = process
        self.ready = ready
        self.stderr = stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self, sig: int = 15, timeout: float = 30.0) -> int:
        """Signal it (SIGTERM by default) and wait for its exit code (bounded)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        with trio.move_on_after(timeout):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"codexd serve did not exit within {timeout}s of signal {sig}")
        return self.process.returncode


async def run_codexd(
    nursery: trio.Nursery,
    args: list[str],
    env: dict[str, str] | None = None,
    preexec_fn: Any = None,
) -> tuple[trio.Process, bytearray, bytearray]:
    """Start ``python -m codexd ARGS`` with its output collected in the background."""
    import os
    import subprocess
    import sys

    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "codexd", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec_fn,
    )
    out, err = bytearray(), bytearray()

    async def pump(stream: Any, into: bytearray) -> None:
        async for chunk in stream:
            into += chunk

    nursery.start_soon(pump, process.stdout, out)
    nursery.start_soon(pump, process.stderr, err)
    return process, out, err


async def start_serve(
    nursery: trio.Nursery,
    args: list[str],
    env: dict[str, str] | None = None,
    preexec_fn: Any = None,
) -> Serve:
    """Start ``codexd ... serve`` and wait for its ready line (fails if it exits first)."""
    import json

    process, out, err = await run_codexd(nursery, args, env, preexec_fn)
    with trio.fail_after(60):
        while b"\n" not in out:
            if process.returncode is not None or process.poll() is not None:
                raise AssertionError(f"codexd serve exited before it was ready: {bytes(err)!r}")
            await trio.sleep(0.02)
    line = bytes(out).split(b"\n", 1)[0]
    assert line.startswith(b"codexd ready "), line
    return Serve(process, json.loads(line.split(b" ", 2)[2]), err)
