"""Child processes, the same way for every kind: spawn in a group, tail, stop, register, reap.

Used by the app-server child (:mod:`codexd._child`) and by ``codex exec`` runs
(:mod:`codexd._runs`). A child runs in its own session and process group
(``start_new_session=True``) so a stop reaches everything it started: SIGTERM to the group,
``grace_s``, SIGKILL to the group, and always a wait, so no zombie is left. While it runs, its
pid and start time are registered in the store; if the daemon is killed outright, the next
boot stops it (:func:`reap_leftovers`), but only if that pid still has the recorded start time,
so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

import trio

from ._errors import ChildSpawnError
from ._store import Store

#: Bytes of recent stderr kept for diagnostics, unless configured otherwise.
TAIL_BYTES = 8192
#: Characters shown of one output chunk in an event message.
PREVIEW_CHARS = 160

#: Spawn failures that may go away by themselves (resources freed): retried, never fatal.
_TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})


class Tail:
    """The last ``limit`` bytes of a stream (a stderr tail for error messages)."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self._data = bytearray()

    def add(self, chunk: bytes | bytearray) -> None:
        self._data += chunk
        overflow = len(self._data) - self.limit
        if overflow > 0:
            del self._data[:overflow]

    def text(self) -> str:
        return bytes(self._data).decode("utf-8", "replace")


async def spawn(argv: list[str], *, cwd: str | None, env: Mapping[str, str]) -> trio.Process:
    """Start ``argv`` in its own process group, stdin/stdout/stderr piped.

    Raises :class:`ChildSpawnError` (``transient`` for EMFILE and the like) naming the command.
    """
    try:
        return await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL in argv or env
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        transient = isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS
        raise ChildSpawnError(
            f"could not start {argv[0]!r}: {reason}", transient=transient
        ) from exc


def preview(data: bytes | str, limit: int = PREVIEW_CHARS) -> str:
    """One line, whitespace folded, at most ``limit`` characters."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def process_start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def signal_name(returncode: int) -> str | None:
    """``-9`` -> ``SIGKILL``; ``None`` for a normal exit."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"SIG{-returncode}"


def register_owned(store: Store, pid: int, kind: str, argv0: str) -> None:
    """Record a process this daemon owns, so a successor can reap it if we die (next batch)."""
    store.register_owned(
        pid, {"startTicks": process_start_ticks(pid), "kind": kind, "argv0": argv0}
    )


def unregister_owned(store: Store, pid: int) -> None:
    """Forget an owned process once it has been waited for."""
    store.unregister_owned(pid)


async def stop_process_group(process: trio.Process, grace_s: float) -> None:
    """SIGTERM the process group, wait up to ``grace_s``, then SIGKILL it; always reap.

    Safe to call on a process that already exited. Call it shielded from cancellation when it
    runs on a cleanup path, or the child may be left running.
    """
    if process.returncode is None:
        kill_group(process.pid, signal.SIGTERM)
        with trio.move_on_after(grace_s):
            await process.wait()
        if process.returncode is None:
            kill_group(process.pid, signal.SIGKILL)
            await process.wait()
    # Anything the process left behind in its group goes with it.
    kill_group(process.pid, signal.SIGKILL)


def kill_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` (falling back to the process itself)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        # Group already gone; fall back to the leader itself in case it left its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


async def reap_leftovers(store: Store, grace_s: float) -> list[dict[str, Any]]:
    """Stop children a previous daemon recorded and never saw exit (it was killed).

    A process is only touched if its pid still runs with the SAME start time as recorded, so a
    reused pid belonging to someone else is never signalled. Returns what was reaped.
    """
    owned = store.owned_processes()
    reaped: list[dict[str, Any]] = []
    for pid_text, info in owned.items():
        pid = int(pid_text)
        ticks = process_start_ticks(pid)
        if ticks is None or ticks != info.get("startTicks"):
            continue
        kill_group(pid, signal.SIGTERM)
        with trio.move_on_after(grace_s):
            while process_start_ticks(pid) == ticks:  # noqa: ASYNC110 - no event to wait on
                await trio.sleep(0.05)
        if process_start_ticks(pid) == ticks:
            kill_group(pid, signal.SIGKILL)
        reaped.append({"pid": pid, **info})
    store.unregister_owned(*owned)
    for entry in reaped:
        await store.record(
            "child.reaped",
            f"Stopped leftover {entry.get('kind', 'child')} process {entry['pid']}"
            " from a previous daemon.",
            level="warn",
            detail=entry,
        )
    return reaped
