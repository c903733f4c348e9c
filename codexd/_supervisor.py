"""The app-server supervisor: keep one initialized connection alive, restart it when it dies.

One task (:meth:`AppServerSupervisor.run`) owns the connection's whole life, one incarnation at a
time: spawn the child (or connect to the external endpoint), start the reader, ``initialize``,
resume the active sessions, then open the lifecycle barrier so requests flow. When the connection
ends it closes the barrier, settles turns in flight and pending approvals with the diagnostics
(exit code, signal, trailing bytes, close source), and restarts per ``restart.policy`` with
exponential backoff and jitter; too many restarts in ``restart.window_s`` leave the child
``failed`` (the daemon keeps serving) until :meth:`restart` is called.
"""

from __future__ import annotations

import random
import signal
from collections import deque
from typing import Any

import attrs
import trio
import trio_websocket

from . import _time
from ._approvals import ApprovalBroker
from ._appserver import AppServerClient, CloseInfo
from ._child import ChildExit, ChildSpec, ManagedChild
from ._config import Config
from ._errors import ChildSpawnError, CodexdError, StoreError, Unavailable
from ._groups import unwrap_single
from ._messages import Notification, ProtocolIssue, Request
from ._process import kill_group, preview
from ._records import ChildState
from ._sessions import SessionManager
from ._store import Store
from ._tasks import describe_failure
from ._transport import StdioTransport, Transport, WebSocketTransport

#: First starts of app-servers sharing one CODEX_HOME are serialized (concurrent starts corrupt
#: its SQLite state: openai/codex#35555). Keyed by CODEX_HOME within this process.
_FIRST_START_LOCKS: dict[str, trio.Lock] = {}


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter and a cap (an immutable policy, like urllib3 Retry)."""

    initial_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** max(0, attempt)))
        return float(ceiling / 2 + random.random() * ceiling / 2)


class AppServerSupervisor:
    """Owns the app-server connection; other components get it through :meth:`client`."""

    def __init__(
        self,
        store: Store,
        config: Config,
        sessions: SessionManager,
        broker: ApprovalBroker,
        spec: ChildSpec | None,
    ) -> None:
        self.store = store
        self.config = config
        self.sessions = sessions
        self.broker = broker
        self.spec = spec
        self._client: AppServerClient | None = None
        self._ready = trio.Event()
        self._settled = trio.Event()
        self._stopping = False
        self._failed_reason: str | None = None
        self._restart_requested = trio.Event()
        self._restart_times: deque[float] = deque()
        self.restart_count = 0
        self.child: ManagedChild | None = None
        self._wake = trio.Event()
        sessions.turns.on_wedged = self.kill_wedged

    @property
    def endpoint(self) -> str:
        if self.config.child.strategy == "external":
            return self.config.child.endpoint or ""
        return "stdio://"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._ready.is_set()

    async def client(self) -> AppServerClient:
        """The connected client; waits (bounded) while the app-server starts or restarts."""
        if self._ready.is_set() and self._client is not None:
            return self._client
        if self._failed_reason is not None:
            raise Unavailable(f"the app-server is not available: {self._failed_reason}")
        with trio.move_on_after(self.config.turns.request_timeout_s):
            while not (self._ready.is_set() and self._client is not None):
                await self._ready.wait()
                if self._client is None:
                    await trio.lowlevel.checkpoint()
            return self._client
        raise Unavailable(
            "the app-server did not become ready within"
            f" {self.config.turns.request_timeout_s:g}s; try again"
        )

    async def wait_settled(self) -> None:
        """Until the first connection attempt succeeded or definitely failed."""
        await self._settled.wait()

    def restart(self) -> None:
        """Operator action: leave the ``failed`` state and start the child again."""
        self._failed_reason = None
        self._restart_times.clear()
        self._restart_requested.set()

    async def kill_wedged(self, reason: str) -> None:
        """The app-server stopped answering: kill it so the restart policy brings it back."""
        child = self.child
        if child is None or child.process is None or child.exited.is_set():
            return
        await self.store.record(
            "child.wedged",
            f"The app-server does not answer ({reason}); killing it to restart.",
            level="error",
            detail={"pid": child.pid, "reason": reason},
        )
        kill_group(child.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """Stop for good: close the connection and stop the child (TERM, grace, KILL)."""
        self._stopping = True
        self._restart_requested.set()
        self._wake.set()
        client = self._client
        if client is not None:
            with trio.move_on_after(1):
                await client.aclose()
        if self.child is not None:
            self.child.request_stop()

    # ---- the supervisor task -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        attempt = 0
        try:
            while not self._stopping:
                started = trio.current_time()
                outcome = await self._incarnation()
                self._settled.set()
                if self._stopping:
                    break
                uptime = trio.current_time() - started
                if uptime >= self.config.restart.min_uptime_s:
                    attempt = 0
                    self._restart_times.clear()
                if outcome.get("fatal"):
                    # A missing command or refused credentials will not fix themselves by
                    # retrying: stay failed until an operator restarts it.
                    await self._wait_for_restart_request()
                    attempt = 0
                    continue
                if not self._should_restart(outcome):
                    await self._wait_for_restart_request()
                    attempt = 0
                    continue
                now = trio.current_time()
                if not outcome.get("transient"):
                    self._restart_times.append(now)
                while (
                    self._restart_times
                    and now - self._restart_times[0] > self.config.restart.window_s
                ):
                    self._restart_times.popleft()
                if len(self._restart_times) > self.config.restart.max_restarts:
                    await self._give_up(outcome)
                    await self._wait_for_restart_request()
                    attempt = 0
                    continue
                delay = Backoff(
                    self.config.restart.backoff_initial_s, self.config.restart.backoff_max_s
                ).delay(attempt)
                attempt += 1
                self.restart_count += 1
                await self.store.record(
                    "child.restarting",
                    f"Restarting the app-server in {delay:.2f}s (restart {self.restart_count}).",
                    level="warn",
                    detail={
                        "delayS": round(delay, 3),
                        "attempt": attempt,
                        "restartCount": self.restart_count,
                        "after": outcome,
                    },
                    records=[
                        attrs.evolve(
                            self.store.child_state,
                            status="restarting",
                            restart_count=self.restart_count,
                        )
                    ],
                )
                with trio.move_on_after(delay):
                    await self._wake.wait()
        finally:
            self._settled.set()

    def _should_restart(self, outcome: dict[str, Any]) -> bool:
        policy = self.config.restart.policy
        if policy == "never":
            return False
        if policy == "always":
            return True
        return not outcome.get("clean", False)

    async def _wait_for_restart_request(self) -> None:
        self._restart_requested = trio.Event()
        if self._stopping:
            return
        await self._restart_requested.wait()

    async def _give_up(self, outcome: dict[str, Any]) -> None:
        limit = self.config.restart.max_restarts
        window = self.config.restart.window_s
        self._failed_reason = f"restarted more than {limit} times within {window:g}s"
        await self.store.record(
            "child.restart.limit",
            f"The app-server {self._failed_reason}; giving up until an operator restarts it.",
            level="error",
            detail={"maxRestarts": limit, "windowS": window, "last": outcome},
            records=[
                attrs.evolve(
                    self.store.child_state,
                    status="failed",
                    last_error=self._failed_reason,
                    restart_count=self.restart_count,
                )
            ],
        )

    async def _incarnation(self) -> dict[str, Any]:
        """One connection's life; returns how it ended. Never raises (but for cancellation).

        trio-websocket raises handshake rejections from its reader task into the nursery it was
        given, so failures can surface from the nursery itself; whatever escapes is turned into
        an outcome here, so that no failure of one connection can take the daemon down.
        """
        try:
            with unwrap_single():
                return await self._incarnation_inner()
        except trio_websocket.ConnectionRejected as exc:
            await self._record_connect_failed(exc)
            if exc.status_code in (401, 403):
                # Retrying with the same credentials cannot succeed: stop here.
                self._failed_reason = f"the app-server refused us (HTTP {exc.status_code})"
                await self.store.save(ChildState(status="failed", last_error=self._failed_reason))
                return {"clean": False, "fatal": True, "error": self._failed_reason}
            return {"clean": False, "connectError": str(exc)}
        except (OSError, trio_websocket.HandshakeError) as exc:  # refused, DNS, bad URL
            await self._record_connect_failed(exc)
            return {"clean": False, "connectError": str(exc)}
        except Exception as exc:  # a bug in codexd: keep serving, let the restart policy act
            self._ready = trio.Event()
            self._client = None
            diagnostics = {"source": "crash", "message": repr(exc), "stopping": self._stopping}
            await self.store.record(
                "app-server.incarnation.crashed",
                f"The app-server connection failed unexpectedly: {exc!r}",
                level="error",
                detail=diagnostics,
            )
            await self.sessions.connection_closed(diagnostics)
            await self.broker.connection_closed()
            return {"clean": False, **diagnostics}

    async def _incarnation_inner(self) -> dict[str, Any]:
        async with trio.open_nursery() as nursery:
            transport: Transport
            child_exit: ChildExit | None = None
            if self.spec is not None:
                stdio = StdioTransport()
                child = ManagedChild(
                    self.spec, self.store, on_stdout=stdio.feed, restart_count=self.restart_count
                )
                try:
                    await nursery.start(child.run)
                except ChildSpawnError as exc:
                    if exc.transient:  # e.g. EMFILE: retried with backoff, not counted
                        return {"clean": False, "transient": True, "error": str(exc)}
                    self._failed_reason = str(exc)
                    return {"clean": False, "fatal": True, "error": str(exc)}
                self.child = child
                assert child.process is not None and child.process.stdin is not None
                stdio.attach_stdin(child.process.stdin)
                transport = stdio
            else:
                # Connection errors (refused, DNS, HTTP rejection) are handled by _incarnation.
                transport = await WebSocketTransport.connect(nursery, self.endpoint)
                await self.store.save(
                    ChildState(
                        status="external",
                        started_at=_time.now_iso(),
                        restart_count=self.restart_count,
                    )
                )
            client = AppServerClient(
                transport,
                request_timeout_s=self.config.turns.request_timeout_s,
                on_notification=self._on_notification,
                on_server_request=self._on_server_request,
                on_issue=self._on_issue,
            )
            await nursery.start(client.run)
            if isinstance(transport, WebSocketTransport):
                nursery.start_soon(self._keepalive, transport, client)
            try:
                await self._handshake(client)
            except CodexdError as exc:
                await self._record_connect_failed(exc)
                await client.aclose()
                if self.child is not None:
                    self.child.request_stop()
                await client.closed.wait()
            else:
                self._client = client
                self._ready.set()
                self._settled.set()
                await client.closed.wait()
            # The connection is gone: close the barrier first, then settle what was in flight.
            self._ready = trio.Event()
            self._client = None
            if self.spec is not None and self.child is not None:
                with trio.move_on_after(self.config.stop.grace_s + 2):
                    await self.child.finished.wait()
                if not self.child.finished.is_set():
                    # The connection is gone but the child lingers (e.g. it closed stdout).
                    self.child.request_stop()
                    await self.child.finished.wait()
                child_exit = self.child.exit
            info = client.close_info or CloseInfo("unknown", "connection ended")
            diagnostics = self._diagnostics(info, child_exit)
            await self.store.record(
                "app-server.transport.closed",
                f"App-server transport closed via {info.source}: {info.message}.",
                level="info" if self._stopping else "warn",
                detail=diagnostics,
            )
            # An external server outlives our connection: its turns go on and it replays the
            # requests still pending once we resume the threads.
            survives = self.spec is None and not self._stopping
            await self.sessions.connection_closed(diagnostics, server_survives=survives)
            await self.broker.connection_closed(server_survives=survives)
            nursery.cancel_scope.cancel()
        clean = child_exit is not None and child_exit.code == 0 and child_exit.signal is None
        return {"clean": clean and self.config.child.strategy != "external", **diagnostics}

    async def _keepalive(self, transport: WebSocketTransport, client: AppServerClient) -> None:
        """Ping an external server; no pong within the deadline means the link is dead.

        A lost WebSocket is not a dead server: closing our side ends this incarnation and the
        restart loop reconnects with backoff, then resumes the sessions.
        """
        interval = max(1.0, self.config.turns.request_timeout_s / 3)
        while not client.closed.is_set():
            await trio.sleep(interval)
            if not await transport.ping(self.config.turns.request_timeout_s):
                await self.store.record(
                    "app-server.ping.timeout",
                    f"No pong from {self.endpoint} within"
                    f" {self.config.turns.request_timeout_s:g}s; reconnecting.",
                    level="warn",
                    detail={"endpoint": self.endpoint},
                )
                await transport.aclose()
                return

    def _diagnostics(self, info: CloseInfo, child_exit: ChildExit | None) -> dict[str, Any]:
        return {
            "source": info.source,
            "message": info.message,
            "trailingMessageLength": info.trailing_bytes,
            "trailingPreview": info.trailing_preview,
            "flushedTrailingMessage": info.trailing_bytes > 0,
            "childExitCode": child_exit.code if child_exit else None,
            "childSignal": child_exit.signal if child_exit else None,
            "childPid": self.child.pid if self.child else None,
            "childStderrTail": child_exit.stderr_tail[-1000:] if child_exit else None,
            "stopping": self._stopping,
        }

    async def _handshake(self, client: AppServerClient) -> None:
        codex_home = (self.spec.env.get("CODEX_HOME") if self.spec else None) or "~/.codex"
        lock = _FIRST_START_LOCKS.setdefault(codex_home, trio.Lock())
        async with lock:
            result = await client.initialize()
        await self.store.record(
            "app-server.connected",
            f"Connected to app-server {self.endpoint} ({result.get('userAgent', '?')}).",
            detail={
                "endpoint": self.endpoint,
                "userAgent": result.get("userAgent"),
                "platformFamily": result.get("platformFamily"),
                "platformOs": result.get("platformOs"),
                "codexHome": result.get("codexHome"),
            },
        )
        await self.sessions.resume_sessions(client)
        await self.sessions.settle_orphaned_turns(client, fresh_server=self.spec is not None)
        self.broker.reconnected()

    async def _record_connect_failed(self, exc: BaseException) -> None:
        await self.store.record(
            "app-server.connect.failed",
            f"Could not connect to the app-server at {self.endpoint}: {exc}",
            level="error",
            detail={"endpoint": self.endpoint, "error": str(exc)},
        )

    # ---- routing (called by the reader; must not block on humans) ------------------------

    async def _on_notification(self, note: Notification) -> None:
        # Contained: the reader must outlive any failure to handle one notification.
        try:
            await self.sessions.handle_notification(note)
        except StoreError:
            self.store.dropped_events += 1  # degraded: counted in daemon/status
        except Exception as exc:
            await self.store.emit(
                "app-server.notification.failed",
                f"Could not handle {note.method}: {describe_failure(exc)}",
                level="error",
                detail={"method": note.method, "error": describe_failure(exc)},
            )

    def _on_server_request(self, client: AppServerClient, request: Request) -> None:
        self.broker.handle_request(client, request)

    async def _on_issue(self, issue: ProtocolIssue) -> None:
        await self.store.emit(
            "app-server.protocol.issue",
            f"App-server sent a bad line ({issue.kind}): {preview(issue.preview, 100)}",
            level="warn",
            detail={
                "kind": issue.kind,
                "detail": issue.detail,
                "line": issue.line_no,
                "size": issue.size,
                "preview": issue.preview,
            },
        )
