"""The supervised app-server (or smoke) child: spawn, pump its output, watch its exit, stop it.

Its stdout and stderr are read for its whole life (an undrained pipe blocks a child), in
chunks, with no line-length limit here (framing and bounds are the protocol layer's job). A
``codex app-server`` child also exits by itself when its stdin closes, which is what happens
when the daemon dies, however it dies. Process mechanics (groups, stop, registry, reaping) are
:mod:`codexd._process`'s.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import attrs
import trio

from . import _time
from ._errors import ChildSpawnError
from ._process import (
    TAIL_BYTES,
    Tail,
    kill_group,
    preview,
    register_owned,
    signal_name,
    spawn,
    stop_process_group,
    unregister_owned,
)
from ._records import ChildState, ChildStatus
from ._states import CHILD
from ._store import Store

OnOutput = Callable[[bytes], Awaitable[None]]

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
    stderr_tail_bytes: int = TAIL_BYTES
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
        self._stderr_tail = Tail(spec.stderr_tail_bytes)
        self._stop_requested = False
        self._exited_by_itself = False
        self._stop_now = trio.Event()
        self._drain_scope: trio.CancelScope | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def stderr_tail(self) -> str:
        return self._stderr_tail.text()

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop the child gracefully (TERM, grace, KILL) and return."""
        self._stop_requested = True
        self._stop_now.set()

    def _move(self, status: ChildStatus) -> ChildStatus:
        """The child's next recorded status, checked against the CHILD table."""
        return CHILD.move(self.store.child_state.status, status)

    async def _spawn(self) -> trio.Process:
        await self.store.save(
            ChildState(status=self._move("starting"), restart_count=self.restart_count)
        )
        try:
            return await spawn(list(self.spec.argv), cwd=self.spec.cwd, env=self.spec.env)
        except ChildSpawnError as exc:
            await self.store.record(
                "child.spawn.failed",
                exc.message,
                level="error",
                detail={"argv": list(self.spec.argv), "transient": exc.transient},
                records=[
                    ChildState(
                        status=self._move("failed"),
                        exited_at=_time.now_iso(),
                        last_error=exc.message,
                        restart_count=self.restart_count,
                    )
                ],
            )
            raise

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
                    status=self._move("running"),
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
        sig = signal_name(returncode)
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
                    status=self._move(status),
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
                self._stderr_tail.add(chunk)
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
