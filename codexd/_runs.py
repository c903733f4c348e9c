"""The run queue: one-shot ``codex exec --json`` jobs, FIFO, at most ``runs.concurrency`` at once.

A run is validated and stored ``queued`` before :meth:`RunQueue.create_run` returns. The queue
task starts runs in creation order; each runs ``codex exec --json ... -`` in its own process
group, with the prompt written to stdin and stdin CLOSED (an open stdin pipe makes exec wait
forever). Its JSONL events become ``run.item`` events while it runs. Success is judged by
``turn.completed`` and exit code 0, never by ``error`` lines (exec prints those for retries and
warnings). Every transition is stored before it is reported.

Timeouts and cancellation stop the process group (SIGTERM, ``stop.grace_s``, SIGKILL). On start,
runs a previous daemon left ``running`` become ``interrupted`` and ``queued`` ones run again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from . import _binary, _time
from ._config import Config
from ._errors import ChildSpawnError, InvalidRequest, NotFound
from ._framing import LineFramer
from ._jsoncheck import needs_scrub, scrub
from ._messages import ProtocolIssue
from ._params import RunCreateParams, RunOptions, parse
from ._process import (
    Tail,
    preview,
    register_owned,
    spawn,
    stop_process_group,
    unregister_owned,
)
from ._records import FINAL_RUN_STATUSES, Run, RunStatus, to_wire
from ._states import RUN
from ._store import Store, new_id

#: Longest exec JSONL line kept; longer ones are reported and skipped.
MAX_LINE_BYTES = 16 * 1024 * 1024


@attrs.define
class _Outcome:
    """What the exec process told us while it ran."""

    thread_id: str | None = None
    last_message: str | None = None
    usage: dict[str, Any] | None = None
    turn_completed: bool = False
    turn_failed: str | None = None
    last_error: str | None = None
    stderr_tail: Tail = attrs.field(factory=Tail)


def _check_paths(cwd: str | None, images: list[str], add_dirs: list[str]) -> None:
    """Blocking file checks of ``create_run`` (run in a worker thread)."""
    if cwd is not None and not os.path.isdir(cwd):
        raise InvalidRequest(f"cwd {cwd!r} is not an existing directory", field="cwd")
    for image in images:
        if not os.path.isfile(image):
            raise InvalidRequest(f"image {image!r} does not exist", field="images")
    for directory in add_dirs:
        if not os.path.isdir(directory):
            raise InvalidRequest(f"directory {directory!r} does not exist", field="addDirs")


def _stderr_cause(stderr_tail: str) -> str:
    """The line of a failed exec's stderr that names the cause (its last ``Error:`` line).

    Codex prints a backtrace or echoes the prompt after the cause in some failures, so the
    last line alone is often noise (``9: <unknown>``).
    """
    lines = [line.strip() for line in stderr_tail.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error:") or line.startswith("error:"):
            return line.split(":", 1)[1].strip()[:2000]
    return lines[-1][:2000] if lines else ""


class RunQueue:
    """The run-queue task and its API (create, cancel, wait, list)."""

    def __init__(
        self,
        store: Store,
        config: Config,
    ) -> None:
        self.store = store
        self.config = config
        self._queue: deque[str] = deque()
        self._wake = trio.Event()
        self._done: dict[str, trio.Event] = {}
        self._running: dict[str, trio.CancelScope] = {}
        self._cancel_reason: dict[str, str] = {}
        self._limit = trio.Semaphore(config.runs.concurrency)
        self.live_processes = 0
        self.max_live_processes = 0
        self._stopping = False
        self._recovered = False
        #: ``run.started`` is recorded in queue order: each run waits for the one before it
        #: (spawns run in worker threads and may finish out of order).
        self._gates: dict[str, tuple[trio.Event, trio.Event]] = {}
        self._last_gate = trio.Event()
        self._last_gate.set()

    # ---- API -----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        run = self.store.get_run(run_id)
        if run is None:
            raise NotFound(f"unknown run {run_id!r}", field="runId")
        return run

    def list_runs(self, *, status: str | None = None, session_id: str | None = None) -> list[Run]:
        return [
            r
            for r in self.store.list_runs()
            if (status is None or r.status == status)
            and (session_id is None or r.session_id == session_id)
        ]

    async def create_run(self, params: RunCreateParams) -> Run:
        """Validate, store the run as ``queued`` (event ``run.queued``) and return it at once.

        Raises :class:`InvalidRequest` naming the field for bad input; nothing is queued then.
        """
        purpose = (params.purpose or "fallback-worker").strip()
        options = params.options()
        await self._check(purpose, options)
        session_id = params.session_id
        if session_id is not None and self.store.get_session(session_id) is None:
            raise NotFound(f"unknown session {session_id!r}", field="sessionId")
        prompt = params.prompt
        cwd = options.cwd
        now = _time.now_iso()
        run = Run(
            run_id=new_id("run"),
            session_id=session_id,
            status="queued",
            prompt=prompt,
            purpose=purpose,
            cwd=cwd,
            created_at=now,
            updated_at=now,
            metadata=dict(params.metadata),
            options=to_wire(options),
        )
        await self.store.record(
            "run.queued",
            f"Queued run {run.run_id}.",
            detail={"runId": run.run_id, "purpose": purpose, "cwd": cwd, "sessionId": session_id},
            run_id=run.run_id,
            session_id=session_id,
            records=[run],
        )
        self._enqueue(run.run_id)
        return run

    async def _check(self, purpose: str, options: RunOptions) -> None:
        """What the params record cannot know: the configured purposes, the file system."""
        if purpose not in self.config.runs.purposes:
            allowed = ", ".join(self.config.runs.purposes)
            raise InvalidRequest(
                f"unknown purpose {purpose!r}; allowed: {allowed}", field="purpose"
            )
        await trio.to_thread.run_sync(_check_paths, options.cwd, options.images, options.add_dirs)

    async def cancel_run(self, run_id: str) -> Run:
        """Cancel: a queued run never starts; a running one is stopped. Idempotent."""
        run = self.get_run(run_id)
        if run.status in FINAL_RUN_STATUSES:
            return run
        if run.status == "queued" and run_id not in self._running:
            with contextlib.suppress(ValueError):
                self._queue.remove(run_id)
            await self._finish(run, "cancelled", error="cancelled before it started")
            return self.get_run(run_id)
        self._cancel_reason[run_id] = "cancelled"
        scope = self._running.get(run_id)
        if scope is not None:
            scope.cancel()
        await self.wait_run(run_id, self.config.stop.grace_s + 10)
        return self.get_run(run_id)

    async def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """Until the run is final, or ``timeout`` seconds pass (then its current state)."""
        run = self.get_run(run_id)
        if run.status in FINAL_RUN_STATUSES:
            return run
        done = self._done.setdefault(run_id, trio.Event())
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            await self.store.wait(done)
        return self.get_run(run_id)

    # ---- the queue task ------------------------------------------------------------------

    def _enqueue(self, run_id: str) -> None:
        self._queue.append(run_id)
        self._done.setdefault(run_id, trio.Event())
        self._wake.set()

    async def recover(self) -> None:
        """Runs left ``running`` by a previous daemon become ``interrupted``; queued run again."""
        for run in sorted(self.store.list_runs(), key=lambda r: r.created_at):
            if run.status == "running":
                await self._finish(
                    run,
                    "interrupted",
                    error="codexd stopped while the run was running",
                    event_type="run.interrupted",
                )
            elif run.status == "queued":
                # Validated again: the run was stored by an older codexd, or the config changed.
                try:
                    options = parse(RunOptions, run.options)
                    await self._check(run.purpose, options)
                except InvalidRequest as exc:
                    await self._finish(
                        run,
                        "failed",
                        error=f"no longer valid after a restart: {exc.message}",
                        event_type="run.invalid",
                    )
                    continue
                await self.store.record(
                    "run.requeued",
                    f"Run {run.run_id} queued again after a restart.",
                    detail={"runId": run.run_id},
                    run_id=run.run_id,
                )
                self._enqueue(run.run_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start queued runs in FIFO order, ``runs.concurrency`` at a time, until cancelled.

        On cancellation (shutdown) running runs are stopped and marked ``interrupted``;
        queued runs stay queued for the next start.
        """
        if not self._recovered:  # once: a restarted queue task keeps its queue
            self._recovered = True
            await self.recover()
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                while not self._queue:
                    self._wake = trio.Event()
                    await self._wake.wait()
                await self._limit.acquire()
                if not self._queue:
                    self._limit.release()
                    continue
                run_id = self._queue.popleft()
                scope = trio.CancelScope()
                self._running[run_id] = scope
                gate = trio.Event()
                self._gates[run_id] = (self._last_gate, gate)
                self._last_gate = gate
                nursery.start_soon(self._execute, run_id, scope)

    async def _execute(self, run_id: str, scope: trio.CancelScope) -> None:
        try:
            run = self.get_run(run_id)
            if run.status != "queued":
                return
            await self._run_one(run, scope)
        finally:
            _, gate = self._gates.pop(run_id, (None, trio.Event()))
            gate.set()
            self._running.pop(run_id, None)
            self._limit.release()
            if self.get_run(run_id).status in FINAL_RUN_STATUSES:
                event = self._done.pop(run_id, None)
                if event is not None:
                    event.set()

    def _command(self) -> str:
        """``runs.command``, else ``child.command``, else the bundled Codex."""
        return self.config.runs.command or self.config.child.command or _binary.bundled_codex()

    def _base_env(self) -> dict[str, str]:
        """The daemon's environment plus ``runs.env`` (unset: ``child.env``).

        One place configures Codex: a ``child.env`` pointing at a provider applies to runs too.
        The bundled binary's helper folder goes on ``PATH`` when the bundled binary is used.
        """
        bundled = not (self.config.runs.command or self.config.child.command)
        env = _binary.with_codex_path(os.environ) if bundled else dict(os.environ)
        extra = self.config.runs.env
        env.update(self.config.child.env if extra is None else extra)
        return env

    def _argv(self, run: Run, options: RunOptions, last_message: Path) -> list[str]:
        o = options
        argv = [self._command(), "exec", "--json"]
        if o.skip_git_repo_check:
            argv.append("--skip-git-repo-check")
        if run.cwd:
            argv += ["-C", run.cwd]
        if o.sandbox:
            argv += ["-s", o.sandbox]
        if o.model:
            argv += ["-m", o.model]
        if o.profile:
            argv += ["-p", o.profile]
        for item in o.config:
            argv += ["-c", item]
        for image in o.images:
            argv += ["-i", image]
        for directory in o.add_dirs:
            argv += ["--add-dir", directory]
        argv += ["--output-last-message", str(last_message), "-"]
        return argv

    async def _run_one(self, run: Run, scope: trio.CancelScope) -> None:
        run_dir = self.store.state_dir / "runs" / run.run_id
        await trio.to_thread.run_sync(lambda: run_dir.mkdir(parents=True, exist_ok=True))
        last_message = run_dir / "last-message.txt"
        try:
            options = parse(RunOptions, run.options)
        except InvalidRequest as exc:
            await self._finish(run, "failed", error=f"invalid run options: {exc.message}")
            return
        env = {**self._base_env(), **options.env}
        env["CODEXD_DAEMON_ID"] = self.store.daemon_id
        argv = self._argv(run, options, last_message)
        timeout_s = options.timeout_s or self.config.runs.default_timeout_s
        try:
            process = await spawn(argv, cwd=run.cwd, env=env)
        except ChildSpawnError as exc:
            await self._finish(run, "failed", error=f"could not start codex exec: {exc.message}")
            return
        register_owned(self.store, process.pid, "exec", argv[0])
        self.live_processes += 1
        self.max_live_processes = max(self.max_live_processes, self.live_processes)
        started = attrs.evolve(
            run,
            status=RUN.move(run.status, "running"),
            started_at=_time.now_iso(),
            updated_at=_time.now_iso(),
        )
        outcome = _Outcome()
        timed_out = False
        try:
            before, gate = self._gates.get(run.run_id, (None, None))
            if before is not None:
                await before.wait()
            await self.store.record(
                "run.started",
                f"Started run {run.run_id} (pid {process.pid}).",
                detail={"runId": run.run_id, "pid": process.pid, "argv": argv[1:-1]},
                run_id=run.run_id,
                session_id=run.session_id,
                records=[started],
            )
            if gate is not None:
                gate.set()
            with scope:
                with trio.move_on_after(timeout_s) as deadline:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._feed_prompt, process, run.prompt)
                        nursery.start_soon(self._read_stderr, process, outcome)
                        await self._read_stdout(process, run, outcome)
                        await process.wait()
                timed_out = deadline.cancelled_caught
        finally:
            with trio.CancelScope(shield=True):
                await stop_process_group(process, self.config.stop.grace_s)
                self.live_processes -= 1
                unregister_owned(self.store, process.pid)
                await self._settle(started, process, outcome, timed_out, last_message)

    async def _feed_prompt(self, process: trio.Process, prompt: str) -> None:
        assert process.stdin is not None
        try:
            await process.stdin.send_all(prompt.encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await process.stdin.aclose()

    async def _read_stderr(self, process: trio.Process, outcome: _Outcome) -> None:
        assert process.stderr is not None
        async for chunk in process.stderr:
            outcome.stderr_tail.add(chunk)

    async def _read_stdout(self, process: trio.Process, run: Run, outcome: _Outcome) -> None:
        assert process.stdout is not None
        framer = LineFramer(MAX_LINE_BYTES)
        async for chunk in process.stdout:
            await self._lines(run, framer.feed(chunk), outcome)
        await self._lines(run, framer.feed(b"\n"), outcome)  # a last line without newline

    async def _lines(
        self, run: Run, lines: Sequence[bytes | ProtocolIssue], outcome: _Outcome
    ) -> None:
        for line in lines:
            if isinstance(line, ProtocolIssue):  # oversize: discarded as it arrived
                await self._garbage(run, f"(line over {MAX_LINE_BYTES} bytes discarded)".encode())
            elif line.strip():
                await self._exec_event(run, line, outcome)

    async def _garbage(self, run: Run, line: bytes) -> None:
        await self.store.emit(
            "run.output.invalid",
            f"codex exec printed a line that is not a JSON event: {preview(line, 100)}",
            level="warn",
            detail={"runId": run.run_id, "preview": preview(line, 200), "size": len(line)},
            run_id=run.run_id,
            session_id=run.session_id,
        )

    async def _exec_event(self, run: Run, line: bytes, outcome: _Outcome) -> None:
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            await self._garbage(run, line)
            return
        if needs_scrub(line):
            event, _changed = scrub(event)  # storable: no lone surrogate, NaN or deep nesting
        if not isinstance(event, dict):
            await self._garbage(run, line)
            return
        etype = event.get("type")
        raw_item = event.get("item")
        item: dict[str, Any] = raw_item if isinstance(raw_item, dict) else {}
        if etype == "thread.started":
            outcome.thread_id = event.get("thread_id")
        elif etype == "item.completed" and item.get("type") == "agent_message":
            text = item.get("text")
            if isinstance(text, str):
                outcome.last_message = text
        elif etype == "turn.completed":
            outcome.turn_completed = True
            usage = event.get("usage")
            outcome.usage = usage if isinstance(usage, dict) else None
        elif etype == "turn.failed":
            raw_error = event.get("error")
            error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
            outcome.turn_failed = str(error.get("message") or "turn failed")
        elif etype == "error":
            outcome.last_error = str(event.get("message") or "")
        await self.store.emit(
            "run.item",
            f"run {run.run_id}: {etype}",
            detail=event,
            run_id=run.run_id,
            session_id=run.session_id,
        )

    async def _settle(
        self,
        run: Run,
        process: trio.Process,
        outcome: _Outcome,
        timed_out: bool,
        last_message_file: Path,
    ) -> None:
        code = process.returncode
        stderr_tail = outcome.stderr_tail.text()
        summary = outcome.last_message
        if summary is None:
            try:
                text = await trio.to_thread.run_sync(last_message_file.read_text)
                summary = text.strip() or None
            except OSError:
                summary = None
        result = {
            "exitCode": code,
            "usage": outcome.usage,
            "threadId": outcome.thread_id,
            "stderrTail": stderr_tail[-2000:],
            "lastMessageFile": str(last_message_file),
        }
        reason = self._cancel_reason.pop(run.run_id, None)
        status: RunStatus
        if reason == "cancelled":
            status, error = "cancelled", "cancelled while running"
        elif timed_out:
            timeout_s = run.options.get("timeoutS") or self.config.runs.default_timeout_s
            status, error = "timed_out", f"timed out after {timeout_s:g}s"
        elif outcome.turn_completed and code == 0:
            status, error = "completed", None
        elif self._stopping:
            status, error = "interrupted", "codexd stopped while the run was running"
        else:
            status = "failed"
            last_line = _stderr_cause(stderr_tail)
            error = (
                outcome.turn_failed
                or outcome.last_error
                or f"codex exec exited with code {code}" + (f": {last_line}" if last_line else "")
            )
        await self._finish(run, status, error=error, summary=summary, result=result)

    async def _finish(
        self,
        run: Run,
        status: RunStatus,
        *,
        error: str | None = None,
        summary: str | None = None,
        result: dict[str, Any] | None = None,
        event_type: str | None = None,
    ) -> None:
        current = self.store.get_run(run.run_id) or run
        if not RUN.allows(current.status, status):
            return  # already final (a cancel and an exit crossed): it ends once
        now = _time.now_iso()
        final = attrs.evolve(
            current,
            status=RUN.move(current.status, status),
            updated_at=now,
            finished_at=now,
            error=error,
            summary=summary if summary is not None else run.summary,
            result=result if result is not None else run.result,
        )
        await self.store.record(
            event_type or f"run.{status}",
            f"Run {run.run_id} {status}" + (f": {error}" if error else "."),
            level="info" if status == "completed" else ("warn" if status != "failed" else "error"),
            detail={
                "runId": run.run_id,
                "status": status,
                "error": error,
                "exitCode": (result or {}).get("exitCode"),
            },
            run_id=run.run_id,
            session_id=run.session_id,
            records=[final],
        )
        done = self._done.pop(run.run_id, None)  # waiters hold the event; the table forgets it
        if done is not None:
            done.set()

    def stopping(self) -> None:
        """The daemon is shutting down: runs stopped from now on are ``interrupted``."""
        self._stopping = True
