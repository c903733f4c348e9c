"""The daemon: one Trio nursery tree holding the store, the child supervisor and the services.

``async with open_daemon(config) as daemon:`` starts everything and hands back a :class:`Daemon`
facade; leaving the block (normally, by an exception, or by cancellation) stops the children
gracefully, records ``daemon.stopped`` and flushes the store before it returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from . import _binary, _time
from ._approvals import ApprovalBroker
from ._appserver import AppServerClient
from ._child import ChildSpec, ManagedChild
from ._config import Config
from ._errors import ChildSpawnError, NotFound, StoreError, WrongMode
from ._groups import unwrap_single
from ._params import RunCreateParams, SessionCreateParams, TurnStartParams, build
from ._process import reap_leftovers
from ._records import (
    Approval,
    ChildState,
    DaemonInfo,
    Run,
    Session,
    Snapshot,
    TurnAccepted,
    TurnResult,
    to_wire,
)
from ._routes import AppServerRoutes
from ._runs import RunQueue
from ._sessions import SessionManager
from ._store import Store, new_id
from ._subscriptions import EventFilter, Subscription
from ._supervisor import AppServerSupervisor
from ._tasks import TaskHost, describe_failure
from ._threads import ThreadOps
from ._version import __version__


class Daemon:
    """The running daemon. Create it with :func:`open_daemon`, never directly."""

    def __init__(
        self,
        config: Config,
        store: Store,
        nursery: trio.Nursery,
        *,
        plain_child: bool,
    ) -> None:
        self.config = config
        self.store = store
        self._nursery = nursery
        self.tasks = TaskHost(nursery, self._task_failed)
        self.task_failures = 0
        self._plain_child = plain_child
        self.info = DaemonInfo(
            pid=os.getpid(),
            version=__version__,
            mode=config.mode,
            started_at=_time.now_iso(),
            state_dir=str(config.state_path),
        )
        self._plain: ManagedChild | None = None
        self._child_done = trio.Event()
        self._child_done.set()
        self.sessions = SessionManager(store, config, self, self.tasks)
        self.threads = ThreadOps(self.sessions)
        self.approvals = ApprovalBroker(store, config, self.tasks, self.sessions.session_of_thread)
        self.supervisor: AppServerSupervisor | None = None
        self.runs = RunQueue(store, config)
        self._runs_scope = trio.CancelScope()
        self._runs_done = trio.Event()
        self.api: Any = None
        self._api_scope = trio.CancelScope()
        self._api_done = trio.Event()
        self._api_done.set()

    # ---- lifecycle -----------------------------------------------------------------------

    def _child_spec(self) -> ChildSpec:
        cfg = self.config.child
        command = cfg.command or _binary.bundled_codex()
        env = _binary.with_codex_path(os.environ) if cfg.command is None else dict(os.environ)
        env.update(cfg.env)
        env["CODEXD_DAEMON_ID"] = self.store.daemon_id
        env["CODEXD_SERVER_ENDPOINT"] = self.endpoint
        return ChildSpec(
            argv=(command, *cfg.args),
            cwd=cfg.cwd,
            env=env,
            grace_s=self.config.stop.grace_s,
            stderr_tail_bytes=cfg.stderr_tail_bytes,
            kind="smoke" if self._plain_child else "app-server",
        )

    @property
    def child(self) -> ManagedChild | None:
        """The current child process incarnation, if one was spawned."""
        if self.supervisor is not None:
            return self.supervisor.child
        return self._plain

    @property
    def endpoint(self) -> str:
        """The app-server endpoint: ``stdio://`` for a spawned child, else the external URL."""
        return self.config.child.endpoint_url

    async def _start(self) -> None:
        self._set_info(status="starting")
        if self.config.notify.webhooks and not self._plain_child:
            from ._webhooks import WebhookService

            self.webhooks = WebhookService(self.store, self.config.notify)
            await self.tasks.start_service("webhooks", self.webhooks.run)
        await self.store.record(
            "daemon.started",
            f"codexd {__version__} started in {self.config.mode} mode (pid {os.getpid()}).",
            detail={
                "pid": os.getpid(),
                "version": __version__,
                "mode": self.config.mode,
                "strategy": self.config.child.strategy,
                "stateDir": str(self.config.state_path),
                "endpoint": self.endpoint,
            },
        )
        for problem in self.store.load_problems:
            what = "repaired" if problem.repaired else "moved to the quarantine table"
            await self.store.record(
                "store.row.repaired" if problem.repaired else "store.row.invalid",
                f"Unreadable {problem.source} entry {problem.key!r} {what}: {problem.error}",
                level="warn" if problem.repaired else "error",
                detail={"source": problem.source, "key": problem.key, "error": problem.error},
            )
        await reap_leftovers(self.store, self.config.stop.grace_s)
        await self.approvals.recover()
        if self._plain_child:
            await self._start_child()
        elif self.config.mode == "app-server":
            external = self.config.child.strategy == "external"
            if external:
                await self.store.record(
                    "child.external",
                    f"codexd is pointing at external endpoint {self.endpoint}.",
                    records=[ChildState(status="external", started_at=_time.now_iso())],
                )
            self.supervisor = AppServerSupervisor(
                self.store,
                self.config,
                AppServerRoutes(self.store, self.sessions, self.approvals),
                None if external else self._child_spec(),
            )
            self._child_done = trio.Event()
            supervisor = self.supervisor

            async def run_supervisor(
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                self._child_done = trio.Event()
                try:
                    await supervisor.run(task_status=task_status)
                finally:
                    self._child_done.set()

            await self.tasks.start_service("app-server supervisor", run_supervisor)
            with trio.move_on_after(self.config.turns.request_timeout_s + 5):
                await supervisor.wait_settled()
        else:
            await self.store.save(ChildState(status="idle"))
        if not self._plain_child:
            await self.tasks.start_service("run queue", self._run_runs)
        else:
            self._runs_done.set()
        if self.config.api.enabled and not self._plain_child:
            from ._api_server import ApiServer

            self.api = ApiServer(self)
            url = await self.tasks.start_service("api server", self._run_api)
            self._set_info(api_url=url)
        self._set_info(status="running")

    async def _run_api(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        # A fresh scope per incarnation: the service is restarted if it crashes.
        self._api_scope = trio.CancelScope()
        self._api_done = trio.Event()
        try:
            if self.info.status in ("stopping", "stopped"):
                return
            with self._api_scope:
                await self.api.run(task_status=task_status)
        finally:
            self._api_done.set()

    async def _run_runs(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._runs_scope = trio.CancelScope()
        self._runs_done = trio.Event()
        if self.info.status in ("stopping", "stopped"):
            self._runs_done.set()
            return
        try:
            with self._runs_scope:
                await self.runs.run(task_status=task_status)
        finally:
            self._runs_done.set()

    async def _start_child(self) -> None:
        spec = self._child_spec()
        child = ManagedChild(spec, self.store)
        self._child_done = trio.Event()

        async def run_child(
            task_status: trio.TaskStatus[ManagedChild | None] = trio.TASK_STATUS_IGNORED,
        ) -> None:
            try:
                await child.run(task_status=task_status)
            except ChildSpawnError:
                # Recorded as a failed child; the daemon keeps serving (status shows it).
                task_status.started(None)
            except Exception as exc:
                self._task_failed("smoke child", exc)
            finally:
                self._child_done.set()

        self._plain = child
        await self._nursery.start(run_child)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        """A contained task raised: report it; the daemon goes on (see codexd._tasks)."""
        self.task_failures += 1
        what = describe_failure(exc)
        print(f"codexd: task {name!r} failed: {what}", file=sys.stderr, flush=True)
        self.tasks.start_soon(self._report_failure, name, what, name="report a task failure")

    async def _report_failure(self, name: str, what: str) -> None:
        # emit() never raises, so a report can never fail and report itself in turn.
        await self.store.emit(
            "daemon.task.failed",
            f"Task {name} failed: {what}",
            level="error",
            detail={"task": name, "error": what},
        )

    async def _shutdown(self) -> None:
        """Stop everything, each step bounded; a failing step never stops the next one."""
        self._set_info(status="stopping")
        grace = self.config.stop.grace_s
        # No new requests while we stop: close the API first, then stop the runs.
        self._api_scope.cancel()
        self.runs.stopping()
        self._runs_scope.cancel()
        with trio.move_on_after(5):
            await self._api_done.wait()  # requests still reading the store finish first
        with trio.move_on_after(grace + 10):
            await self._runs_done.wait()
        if self.supervisor is not None:
            with trio.move_on_after(grace + 5):
                await self.supervisor.stop()
        elif self._plain is not None:
            self._plain.request_stop()
        with trio.move_on_after(grace + 10):
            await self._child_done.wait()
        self._set_info(status="stopped")
        try:
            child = self.store.child_state
            if child.status == "external":
                await self.store.save(attrs.evolve(child, status="idle", exited_at=_time.now_iso()))
            await self.store.record(
                "daemon.stopped", "codexd stopped.", detail={"pid": os.getpid()}
            )
        except StoreError as exc:
            print(f"codexd: could not record the stop: {exc}", file=sys.stderr, flush=True)

    def _set_info(self, **changes: Any) -> None:
        self.info = attrs.evolve(self.info, **changes)
        self.store.set_meta_soon("daemon", to_wire(self.info))

    # ---- status and events ---------------------------------------------------------------

    def status(self) -> Snapshot:
        """A snapshot of everything the daemon holds (what ``daemon/status`` returns)."""
        runs: dict[str, int] = {}
        for run in self.store.runs.values():
            runs[run.status] = runs.get(run.status, 0) + 1
        pending = sum(1 for a in self.store.approvals.values() if a.status == "pending")
        info = self.info
        health = self.store.health()
        if info.status == "running" and (
            self.store.child_state.status == "failed" or health.status == "degraded"
        ):
            info = attrs.evolve(info, status="degraded")
        return Snapshot(
            daemon_id=self.store.daemon_id,
            daemon=info,
            child=self.store.child_state,
            sessions=self.store.list_sessions(),
            runs=runs,
            pending_approvals=pending,
            recent_events=list(self.store.recent_events),
            last_seq=self.store.last_seq,
            store=health,
            app_server=self.supervisor.info if self.supervisor is not None else None,
        )

    def subscribe(
        self,
        since: int | None = None,
        *,
        type_prefix: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        buffer: int | None = None,
    ) -> Subscription:
        """Events after ``since`` (replayed from the store), then live ones, in seq order.

        ``since=None`` gives live events only. A subscriber whose buffer fills is dropped with
        :class:`~codexd._store.SubscriberOverflow`; it resubscribes with ``since``.
        """
        return self.store.subscribe(
            since,
            event_filter=EventFilter(type_prefix, session_id, run_id),
            buffer=buffer or self.config.api.subscriber_buffer,
        )

    # ---- sessions ------------------------------------------------------------------------

    async def register_session(
        self,
        purpose: str,
        *,
        thread_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Session:
        """Record a session that codexd did not open on the app-server itself (as in the seed)."""
        params = build(SessionCreateParams, purpose=purpose, thread_id=thread_id, metadata=metadata)
        purpose = params.purpose.strip()
        now = _time.now_iso()
        session = Session(
            session_id=new_id("session"),
            purpose=purpose,
            thread_id=thread_id,
            status="active",
            endpoint=self.endpoint,
            child_pid=self.store.child_state.pid,
            created_at=now,
            updated_at=now,
            metadata=params.metadata,
        )
        await self.store.record(
            "session.registered",
            f"Registered {purpose} session {session.session_id}.",
            detail={"sessionId": session.session_id, "threadId": thread_id},
            session_id=session.session_id,
            records=[session],
        )
        return session

    def get_session(self, session_id: str) -> Session:
        session = self.store.get_session(session_id)
        if session is None:
            raise NotFound(f"unknown session {session_id!r}", field="sessionId")
        return session

    def list_sessions(self, *, status: str | None = None) -> list[Session]:
        sessions = self.store.list_sessions()
        return [s for s in sessions if status is None or s.status == status]

    async def close_session(self, session_id: str) -> Session:
        """Close a session (idempotent): its running turn is interrupted (bounded), its thread
        unsubscribed; the thread stays on disk in ``CODEX_HOME``."""
        return await self.sessions.close_session(session_id)

    # ---- the app-server: sessions, turns, approvals ---------------------------------------

    async def client(self) -> AppServerClient:
        """The connected app-server client (waits, bounded, while it starts or restarts)."""
        if self.supervisor is None:
            raise WrongMode("no app-server in this mode (config mode is 'exec')")
        return await self.supervisor.client()

    async def report_wedged(self, reason: str) -> None:
        """A turn's interrupt went unanswered: the supervisor kills and restarts the child."""
        if self.supervisor is not None:
            await self.supervisor.report_wedged(reason)

    async def create_session(self, purpose: str = "general", /, **settings: Any) -> Session:
        """Open a session: a new app-server thread, or ``thread/resume`` of ``thread_id``.

        ``settings`` are the fields of :class:`codexd.SessionCreateParams` in snake_case
        (``cwd``, ``model``, ``approval_policy``, ``sandbox``, ``thread_id``, ``metadata``...),
        validated exactly as the API validates them.
        """
        params = build(SessionCreateParams, purpose=purpose, **settings)
        return await self.sessions.create_session(params)

    async def start_turn(self, session_id: str, input: Any, /, **options: Any) -> TurnAccepted:
        """Start a turn on the session's thread; with ``expected_turn_id``, steer that turn.

        ``options`` are the fields of :class:`codexd.TurnStartParams` in snake_case (``model``,
        ``effort``, ``approval_policy``, ``sandbox_policy``, ``cwd``, ``output_schema``...).
        """
        params = build(TurnStartParams, session_id=session_id, input=input, **options)
        return await self.sessions.start_turn(params)

    async def interrupt_turn(self, session_id: str) -> TurnResult:
        """Interrupt the session's current turn (bounded); returns how the turn ended."""
        return await self.sessions.interrupt_turn(session_id)

    async def wait_turn(
        self, session_id: str, turn_id: str | None = None, timeout: float | None = None
    ) -> TurnResult:
        """Wait for a turn (default: the current or last one) to end; ``timeout`` in seconds."""
        return await self.sessions.wait_turn(session_id, turn_id, timeout)

    def list_approvals(
        self, *, status: str | None = None, session_id: str | None = None
    ) -> list[Approval]:
        return self.approvals.list(status=status, session_id=session_id)

    def get_approval(self, approval_id: str) -> Approval:
        approval = self.store.get_approval(approval_id)
        if approval is None:
            raise NotFound(f"unknown approval {approval_id!r}", field="approvalId")
        return approval

    async def respond_approval(
        self, approval_id: str, decision: str, *, answers: Any = None, content: Any = None
    ) -> Approval:
        """Answer a pending server request: accept, acceptForSession, decline or cancel."""
        return await self.approvals.respond(approval_id, decision, answers=answers, content=content)

    # ---- runs ----------------------------------------------------------------------------

    async def create_run(self, prompt: str, /, **options: Any) -> Run:
        """Queue a ``codex exec`` run; ``options`` are :class:`codexd.RunCreateParams` fields."""
        return await self.runs.create_run(build(RunCreateParams, prompt=prompt, **options))

    def get_run(self, run_id: str) -> Run:
        return self.runs.get_run(run_id)

    def list_runs(self, *, status: str | None = None, session_id: str | None = None) -> list[Run]:
        return self.runs.list_runs(status=status, session_id=session_id)

    async def cancel_run(self, run_id: str) -> Run:
        """Cancel a run: a queued one never starts, a running one is stopped."""
        return await self.runs.cancel_run(run_id)

    async def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until the run is final (or ``timeout`` seconds); returns the run."""
        return await self.runs.wait_run(run_id, timeout)

    def restart_child(self) -> None:
        """Operator action: restart an app-server child that hit the restart limit."""
        if self.supervisor is None:
            raise WrongMode("no app-server in this mode (config mode is 'exec')")
        self.supervisor.restart()


@asynccontextmanager
async def open_daemon(config: Config, *, plain_child: bool = False) -> AsyncIterator[Daemon]:
    """Run codexd inside the caller's Trio program for the duration of the ``async with``.

    ``plain_child=True`` supervises ``child.command`` as a plain process without speaking
    JSON-RPC to it (used by the embedded smoke check). On exit, whatever the reason, the child
    is stopped (SIGTERM, ``stop.grace_s``, SIGKILL), ``daemon.stopped`` is recorded, and every
    queued change is flushed to disk before this returns.
    """
    store = await Store.open(
        config.state_path,
        recent_limit=config.events.recent_limit,
        log_max_bytes=config.log.max_bytes,
        log_backups=config.log.backups,
        durability=config.store.durability,
    )
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            daemon = Daemon(config, store, nursery, plain_child=plain_child)
            try:
                await daemon._start()
                yield daemon
            finally:
                # Shielded from the cancellation that may have brought us here, but bounded:
                # whatever failed, the daemon ends within stop.grace_s plus this margin.
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + 2 * config.stop.grace_s + 25.0
                    try:
                        await daemon._shutdown()
                    finally:
                        await store.close_input()
                        await store.finished.wait()
                nursery.cancel_scope.cancel()
