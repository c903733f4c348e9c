"""One supervised child process: spawn, pump its output, watch its exit, stop it as a group.

The child runs in its own session and process group (``start_new_session=True``) so that a stop
reaches everything it started: SIGTERM to the group, ``grace_s`` to exit, then SIGKILL to the
group, and always a wait for the exit status, so no zombie is left. Its stdout and stderr are read
for its whole life (an undrained pipe blocks a child), in chunks, with no line-length limit here
(framing and bounds are the protocol layer's job). Its pid and start time are recorded in the
store while it runs, so that if the daemon is killed outright the next boot can reap it
(:func:`reap_leftovers`). A ``codex app-server`` child also exits by itself when its stdin closes,
which is what happens when the daemon dies, however it dies.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import attrs
import trio

from . import _time
from ._errors import ChildSpawnError
from ._records import ChildState
from ._store import Store

#: Bytes shown of one output chunk in a ``child.stdout``/``child.stderr`` event message.
PREVIEW_CHARS = 160

OnOutput = Callable[[bytes], Awaitable[None]]

#: Spawn failures that may go away by themselves (resources freed): retried, never fatal.
_TRANSIENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})

#: After the child exits, how long the pumps wait for more output before giving up.
DRAIN_IDLE_S = 0.25


@attrs.frozen
class ChildSpec:
    """What to run and how to stop it."""

    argv: tuple[str, ...]
    cwd: str | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    grace_s: float = 5.0
    #: Bytes of recent stderr kept for diagnostics.
    stderr_tail_bytes: int = 8192
    #: The process kind recorded in the store (``app-server``, ``smoke``, ``exec``).
    kind: str = "child"


@attrs.frozen
class ChildExit:
    """How a child ended."""

    code: int | None
    signal: str | None
    requested: bool
    stderr_tail: str

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by {self.signal}"
        return f"exited with code {self.code}"


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


def _signal_name(returncode: int) -> str | None:
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


class ManagedChild:
    """One incarnation of a child process, driven by :meth:`run` inside a nursery.

    ``on_stdout`` receives stdout chunks (the protocol stream of an app-server child); without it
    stdout is logged to ``child-stdout.log`` and reported as ``child.stdout`` events, like stderr.
    """

    def __init__(
        self,
        spec: ChildSpec,
        store: Store,
        *,
        on_stdout: OnOutput | None = None,
        restart_count: int = 0,
    ) -> None:
        self.spec = spec
        self.store = store
        self.on_stdout = on_stdout
        self.restart_count = restart_count
        self.process: trio.Process | None = None
        self.exited = trio.Event()
        #: Set once the exit is recorded in the store and :attr:`exit` is filled in.
        self.finished = trio.Event()
        self.exit: ChildExit | None = None
        self._stderr_tail = bytearray()
        self._stop_requested = False
        self._exited_by_itself = False
        self._stop_now = trio.Event()
        self._drain_scope: trio.CancelScope | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def stderr_tail(self) -> str:
        return bytes(self._stderr_tail).decode("utf-8", "replace")

    async def send(self, data: bytes) -> None:
        """Write to the child's stdin (raises ``trio.BrokenResourceError`` once it is gone)."""
        assert self.process is not None and self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def close_stdin(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            await self.process.stdin.aclose()

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop the child gracefully (TERM, grace, KILL) and return."""
        self._stop_requested = True
        self._stop_now.set()

    async def _spawn(self) -> trio.Process:
        await self.store.save(ChildState(status="starting", restart_count=self.restart_count))
        try:
            return await trio.lowlevel.open_process(
                list(self.spec.argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.spec.cwd,
                env=dict(self.spec.env),
                start_new_session=True,
            )
        except OSError as exc:
            message = f"could not start {self.spec.argv[0]!r}: {exc.strerror or exc}"
            now = _time.now_iso()
            await self.store.record(
                "child.spawn.failed",
                message,
                level="error",
                detail={"argv": list(self.spec.argv), "errno": exc.errno},
                records=[
                    ChildState(
                        status="failed",
                        exited_at=now,
                        last_error=message,
                        restart_count=self.restart_count,
                    )
                ],
            )
            transient = exc.errno in _TRANSIENT_ERRNOS
            raise ChildSpawnError(message, transient=transient) from exc

    async def run(
        self, *, task_status: trio.TaskStatus[ManagedChild] = trio.TASK_STATUS_IGNORED
    ) -> ChildExit:
        """Spawn the child, pump it until it exits, record the exit; returns how it ended.

        ``task_status.started(self)`` is called once the child runs. Raises
        :class:`ChildSpawnError` (after recording a failed child state) if it cannot start.
        If cancelled, the child is still stopped (TERM, grace, KILL) and its exit recorded, in a
        shielded scope, before the cancellation propagates.
        """
        process = await self._spawn()
        self.process = process
        started_at = _time.now_iso()
        register_owned(self.store, process.pid, self.spec.kind, self.spec.argv[0])
        await self.store.record(
            "child.started",
            f"Started {self.spec.kind} child process {process.pid}.",
            detail={"pid": process.pid, "argv": list(self.spec.argv), "kind": self.spec.kind},
            records=[
                ChildState(
                    status="running",
                    pid=process.pid,
                    started_at=started_at,
                    restart_count=self.restart_count,
                )
            ],
        )
        try:
            async with trio.open_nursery() as nursery:
                assert process.stdout is not None and process.stderr is not None
                nursery.start_soon(self._pump, process.stdout, "stdout")
                nursery.start_soon(self._pump, process.stderr, "stderr")
                nursery.start_soon(self._watch_stop_request)
                task_status.started(self)
                await process.wait()
                self._exited_by_itself = not self._stop_requested
                self.exited.set()
                # The leader is gone: whatever is left in its group is orphaned and may hold the
                # pipes open, which would delay the pumps' EOF. Stop it now.
                kill_group(process.pid, signal.SIGKILL)
                # Let the pumps drain what the child wrote last, but not forever: a process in
                # another session (a helper of the child) may hold the pipes open. Each chunk
                # read extends the deadline, so trailing output is never cut while it flows.
                self._drain_scope = nursery.cancel_scope
                nursery.cancel_scope.deadline = trio.current_time() + DRAIN_IDLE_S
        finally:
            with trio.CancelScope(shield=True):
                await self._terminate()
                child_exit = await self._record_exit(started_at)
        return child_exit

    async def _watch_stop_request(self) -> None:
        await self._stop_now.wait()
        await self._terminate()

    async def _terminate(self) -> None:
        if self.process is not None:
            await stop_process_group(self.process, self.spec.grace_s)

    async def _record_exit(self, started_at: str) -> ChildExit:
        process = self.process
        assert process is not None
        returncode = process.returncode
        assert returncode is not None
        code = returncode if returncode >= 0 else None
        sig = _signal_name(returncode)
        requested = not self._exited_by_itself
        child_exit = ChildExit(code, sig, requested, self.stderr_tail)
        self.exit = child_exit
        self.exited.set()
        ok = requested or code == 0
        status: Literal["stopped", "failed"] = "stopped" if ok else "failed"
        error = None if ok else f"child {child_exit.describe()}"
        unregister_owned(self.store, process.pid)
        await self.store.record(
            "child.exited",
            f"{self.spec.kind} child {process.pid} {child_exit.describe()}.",
            level="info" if ok else "error",
            detail={
                "pid": process.pid,
                "code": code,
                "signal": sig,
                "requested": requested,
                "stderrTail": child_exit.stderr_tail[-2000:] if not ok else None,
            },
            records=[
                ChildState(
                    status=status,
                    pid=None,
                    started_at=started_at,
                    exited_at=_time.now_iso(),
                    exit_code=code,
                    signal=sig,
                    last_error=error,
                    restart_count=self.restart_count,
                )
            ],
        )
        self.finished.set()
        return child_exit

    async def _pump(
        self, stream: trio.abc.ReceiveStream, name: Literal["stdout", "stderr"]
    ) -> None:
        protocol = name == "stdout" and self.on_stdout is not None
        while True:
            try:
                chunk = bytes(await stream.receive_some(65536))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                chunk = b""
            if not chunk:
                break
            if self._drain_scope is not None:
                self._drain_scope.deadline = trio.current_time() + DRAIN_IDLE_S
            if protocol:
                assert self.on_stdout is not None
                await self.on_stdout(chunk)
                continue
            if name == "stderr":
                self._stderr_tail += chunk
                overflow = len(self._stderr_tail) - self.spec.stderr_tail_bytes
                if overflow > 0:
                    del self._stderr_tail[:overflow]
            await self.store.append_output(name, chunk)
            await self.store.emit(
                f"child.{name}",
                f"{name}: {preview(chunk)}",
                level="warn" if name == "stderr" else "info",
                detail={"bytes": len(chunk), "stream": name},
            )
        if protocol:
            assert self.on_stdout is not None
            await self.on_stdout(b"")


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


def signal_name(returncode: int | None) -> str | None:
    """Public helper: the signal name for a negative return code (``-9`` -> ``SIGKILL``)."""
    return None if returncode is None else _signal_name(returncode)


def build_env(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ``base`` overlaid with ``extra``."""
    env = dict(base)
    env.update(extra)
    return env


__all__ = [
    "ChildExit",
    "ChildSpec",
    "ManagedChild",
    "build_env",
    "kill_group",
    "preview",
    "process_start_ticks",
    "reap_leftovers",
    "register_owned",
    "signal_name",
    "stop_process_group",
    "unregister_owned",
]
