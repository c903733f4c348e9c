"""The daemon: one Trio nursery tree holding the store, the child supervisor and the services.

``async with open_daemon(config) as daemon:`` starts everything and hands back a :class:`Daemon`
facade; leaving the block (normally, by an exception, or by cancellation) stops the children
gracefully, records ``daemon.stopped`` and flushes the store before it returns.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from . import __version__, _time
from ._binary import bundled_codex, with_codex_path
from ._groups import unwrap_single
from .approvals import ApprovalBroker
from .child import ChildSpec, ManagedChild, reap_leftovers
from .config import Config
from .errors import ChildSpawnError, InvalidRequest, NotFound, WrongMode
from .records import (
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
from .runs import RunQueue
from .sessions import SessionManager
from .store import EventFilter, Store, Subscription, new_id
from .supervisor import AppServerSupervisor


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
        self.sessions = SessionManager(store, config, self, nursery)
        self.approvals = ApprovalBroker(store, config, nursery, self.sessions.thread_sessions)
        self.sessions.on_server_request_resolved = self.approvals.server_resolved
        self.supervisor: AppServerSupervisor | None = None
        self.runs = RunQueue(store, config)
        self._runs_scope = trio.CancelScope()
        self._runs_done = trio.Event()
        self.api: Any = None
        self._api_scope = trio.CancelScope()

    # ---- lifecycle -----------------------------------------------------------------------

    def _child_spec(self) -> ChildSpec:
        cfg = self.config.child
        command = cfg.command or bundled_codex()
        env = with_codex_path(os.environ) if cfg.command is None else dict(os.environ)
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
        if self.config.child.strategy == "external":
            return self.config.child.endpoint or ""
        return "stdio://"

    async def _start(self) -> None:
        self._set_info(status="starting")
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
                self.sessions,
                self.approvals,
                None if external else self._child_spec(),
            )
            self._child_done = trio.Event()
            supervisor = self.supervisor

            async def run_supervisor(
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                try:
                    await supervisor.run(task_status=task_status)
                finally:
                    self._child_done.set()

            await self._nursery.start(run_supervisor)
            with trio.move_on_after(self.config.turns.request_timeout_s + 5):
                await supervisor.wait_settled()
        else:
            await self.store.save(ChildState(status="idle"))
        if not self._plain_child:
            await self._nursery.start(self._run_runs)
        else:
            self._runs_done.set()
        if self.config.api.enabled and not self._plain_child:
            from .api import ApiServer

            self.api = ApiServer(self)
            url = await self._nursery.start(self._run_api)
            self._set_info(api_url=url)
        self._set_info(status="running")

    async def _run_api(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        with self._api_scope:
            await self.api.run(task_status=task_status)

    async def _run_runs(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
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
            finally:
                self._child_done.set()

        self._plain = child
        await self._nursery.start(run_child)

    async def _shutdown(self) -> None:
        self._set_info(status="stopping")
        # No new requests while we stop: close the API first, then stop the runs.
        self._api_scope.cancel()
        self.runs.stopping()
        self._runs_scope.cancel()
        await self._runs_done.wait()
        if self.supervisor is not None:
            await self.supervisor.stop()
        elif self._plain is not None:
            self._plain.request_stop()
        await self._child_done.wait()
        child = self.store.child_state
        if child.status == "external":
            await self.store.save(attrs.evolve(child, status="idle", exited_at=_time.now_iso()))
        self._set_info(status="stopped")
        await self.store.record("daemon.stopped", "codexd stopped.", detail={"pid": os.getpid()})

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
        if info.status == "running" and self.store.child_state.status == "failed":
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
        :class:`~codexd.store.SubscriberOverflow`; it resubscribes with ``since``.
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
        purpose = _required(purpose, "purpose")
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
            metadata=_string_map(metadata, "metadata"),
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
        """Mark a session closed (idempotent). Its thread stays on disk in ``CODEX_HOME``."""
        session = self.get_session(session_id)
        if session.status == "closed":
            return session
        closed = attrs.evolve(
            session, status="closed", current_turn_id=None, updated_at=_time.now_iso()
        )
        await self.store.record(
            "session.closed",
            f"Closed session {session_id}.",
            detail={"sessionId": session_id, "threadId": session.thread_id},
            session_id=session_id,
            records=[closed],
        )
        return closed

    # ---- the app-server: sessions, turns, approvals ---------------------------------------

    async def client(self) -> Any:
        """The connected app-server client (waits, bounded, while it starts or restarts)."""
        if self.supervisor is None:
            raise WrongMode("no app-server in this mode (config mode is 'exec')")
        return await self.supervisor.client()

    async def create_session(
        self,
        purpose: str = "general",
        *,
        cwd: str | None = None,
        model: str | None = None,
        model_provider: str | None = None,
        approval_policy: Any = None,
        sandbox: str | None = None,
        base_instructions: str | None = None,
        developer_instructions: str | None = None,
        personality: str | None = None,
        service_tier: str | None = None,
        config: dict[str, Any] | None = None,
        thread_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Session:
        """Open a session: a new app-server thread, or ``thread/resume`` of ``thread_id``."""
        settings = {
            "cwd": cwd,
            "model": model,
            "modelProvider": model_provider,
            "approvalPolicy": approval_policy,
            "sandbox": sandbox,
            "baseInstructions": base_instructions,
            "developerInstructions": developer_instructions,
            "personality": personality,
            "serviceTier": service_tier,
            "config": config,
        }
        return await self.sessions.create_session(
            purpose,
            thread_id=thread_id,
            metadata=_string_map(metadata, "metadata"),
            settings=settings,
        )

    async def start_turn(
        self,
        session_id: str,
        input: Any,
        *,
        expected_turn_id: str | None = None,
        **overrides: Any,
    ) -> TurnAccepted:
        """Start a turn on the session's thread; with ``expected_turn_id``, steer that turn.

        ``overrides`` take the app-server's per-turn options in camelCase (``model``,
        ``effort``, ``approvalPolicy``, ``sandboxPolicy``, ``cwd``, ``outputSchema``, ...).
        """
        return await self.sessions.start_turn(
            session_id, input, expected_turn_id=expected_turn_id, overrides=overrides
        )

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

    async def create_run(self, prompt: str, **options: Any) -> Run:
        """Queue a ``codex exec`` run; see :meth:`codexd.runs.RunQueue.create_run`."""
        return await self.runs.create_run(prompt, **options)

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


def _required(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a non-empty string", field=field)
    return value.strip()


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest(f"{field} must be an object of strings", field=field)
    return {k.strip(): v.strip() for k, v in value.items() if k.strip() and v.strip()}


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
    )
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            daemon = Daemon(config, store, nursery, plain_child=plain_child)
            try:
                await daemon._start()
                yield daemon
            finally:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + config.stop.grace_s + 15.0
                    try:
                        await daemon._shutdown()
                    finally:
                        await store.close_input()
                        await store.finished.wait()
                nursery.cancel_scope.cancel()
