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
from .child import ChildSpec, ManagedChild, reap_leftovers
from .config import Config
from .errors import ChildSpawnError, InvalidRequest, NotFound
from .records import ChildState, DaemonInfo, Session, Snapshot, to_wire
from .store import EventFilter, Store, Subscription, new_id


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
        self.child: ManagedChild | None = None
        self._child_done = trio.Event()
        self._child_done.set()

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
        if self.config.mode == "app-server" or self._plain_child:
            if self.config.child.strategy == "external" and not self._plain_child:
                await self.store.record(
                    "child.external",
                    f"codexd is pointing at external endpoint {self.endpoint}.",
                    records=[ChildState(status="external", started_at=_time.now_iso())],
                )
            else:
                await self._start_child()
        else:
            await self.store.save(ChildState(status="idle"))
        self._set_info(status="running")

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

        self.child = child
        await self._nursery.start(run_child)

    async def _shutdown(self) -> None:
        self._set_info(status="stopping")
        if self.child is not None:
            self.child.request_stop()
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
        return Snapshot(
            daemon_id=self.store.daemon_id,
            daemon=self.info,
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
