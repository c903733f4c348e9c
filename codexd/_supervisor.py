"""The app-server supervisor: keep one initialized connection alive, restart it when it dies.

One task (:meth:`AppServerSupervisor.run`) owns the connection's whole life, one incarnation at a
time: spawn the child (or connect to the external endpoint), start the reader, ``initialize``,
let the :class:`Listener` resume the sessions, then open the lifecycle barrier so requests flow.
When the connection ends it closes the barrier, tells the listener (with the diagnostics: exit
code, signal, trailing bytes, close source), and restarts per ``restart.policy`` with
exponential backoff and jitter. Its own life is the ``SUPERVISOR`` table of
:mod:`codexd._states`: ``connecting -> ready -> backoff -> connecting ...``; too many restarts
in ``restart.window_s``, or a failure retrying cannot fix, park it in ``failed`` (the daemon
keeps serving) until :meth:`restart`.
"""

from __future__ import annotations

import fnmatch
import json
import random
import signal
from collections import deque
from typing import Any, Protocol

import attrs
import trio
import trio_websocket

from . import _time
from ._appserver import AppServerClient, CloseInfo
from ._child import ChildExit, ChildSpec, ManagedChild
from ._config import DEFAULT_APPSERVER_DENY, Config
from ._errors import (
    AppServerError,
    ChildSpawnError,
    CodexdError,
    InvalidRequest,
    RelayedError,
    StoreError,
    Unavailable,
)
from ._groups import unwrap_single
from ._messages import JsonObject, Notification, ProtocolIssue, Request
from ._process import kill_group
from ._records import AppServerInfo, ChildState, ChildStatus
from ._states import CHILD, SUPERVISOR
from ._store import Store
from ._transport import StdioTransport, Transport, WebSocketTransport

#: First starts of app-servers sharing one CODEX_HOME are serialized (concurrent starts corrupt
#: its SQLite state: openai/codex#35555). Keyed by CODEX_HOME within this process.
_FIRST_START_LOCKS: dict[str, trio.Lock] = {}


class Listener(Protocol):
    """Who hears about the connection: the daemon's routes to sessions, turns, approvals."""

    async def connected(self, client: AppServerClient, *, fresh_server: bool) -> None:
        """After ``initialize``: resume threads, settle turns; requests still wait meanwhile."""

    async def disconnected(self, diagnostics: JsonObject, *, server_survives: bool) -> None:
        """The connection ended (the barrier is already closed)."""

    async def notification(self, note: Notification) -> None:
        """A notification; must not raise and must not wait on anything slow."""

    async def notifications(self, notes: list[Notification]) -> None:
        """The notifications of one stdout chunk, in order (the same rules, one call)."""

    def server_request(self, client: AppServerClient, request: Request) -> None:
        """A server request; must not block (spawn a task)."""

    async def issue(self, issue: ProtocolIssue) -> None:
        """Garbage on the wire, or a late answer."""


def _bounded(params: JsonObject, limit: int = 4096) -> JsonObject:
    """``params`` for an event, or only its keys when its JSON is larger than ``limit``."""
    if len(json.dumps(params, default=str)) <= limit:
        return params
    return {"truncated": True, "keys": sorted(params)}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@attrs.frozen
class Backoff:
    """Exponential backoff with full jitter and a cap (an immutable policy, like urllib3 Retry)."""

    initial_s: float
    max_s: float

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** max(0, attempt)))
        return float(ceiling / 2 + random.random() * ceiling / 2)


class AppServerSupervisor:
    """Owns the app-server connection; others get it through :meth:`client` (ClientProvider)."""

    def __init__(
        self, store: Store, config: Config, listener: Listener, spec: ChildSpec | None
    ) -> None:
        self.store = store
        self.config = config
        self.listener = listener
        self.spec = spec
        self.state = "connecting"
        self._changed = trio.Event()
        self._client: AppServerClient | None = None
        self._failed_reason: str | None = None
        self._settled = trio.Event()
        self._restart_times: deque[float] = deque()
        self.restart_count = 0
        self.child: ManagedChild | None = None
        #: What the last ``initialize`` (and ``account/read``) said; ``None`` before it.
        self.info: AppServerInfo | None = None

    def _move(self, state: str) -> None:
        self.state = SUPERVISOR.move(self.state, state)
        self._changed.set()
        self._changed = trio.Event()

    async def _until_changed(self, timeout: float = float("inf")) -> None:
        with trio.move_on_after(timeout):
            await self._changed.wait()

    @property
    def stopping(self) -> bool:
        return self.state in ("stopping", "stopped")

    @property
    def endpoint(self) -> str:
        return self.config.child.endpoint_url

    # ---- what others use ---------------------------------------------------------------------

    async def client(self) -> AppServerClient:
        """The connected client; waits (bounded) while the app-server starts or restarts."""
        limit = self.config.turns.request_timeout_s
        with trio.move_on_after(limit):
            while True:
                if self.state == "ready" and self._client is not None:
                    return self._client
                if self.state == "failed":
                    raise Unavailable(f"the app-server is not available: {self._failed_reason}")
                if self.stopping:
                    raise Unavailable("codexd is stopping")
                await self._until_changed()
        raise Unavailable(f"the app-server did not become ready within {limit:g}s; try again")

    def refusal(self, method: str) -> str | None:
        """Why ``appserver.allow``/``deny`` refuse ``method`` for the pass-through, if they do."""
        cfg = self.config.appserver
        for pattern in cfg.deny:
            if fnmatch.fnmatchcase(method, pattern):
                return f"appserver.deny pattern {pattern!r}"
        if not any(fnmatch.fnmatchcase(method, pattern) for pattern in cfg.allow):
            return "appserver.allow (no pattern matches it)"
        return None

    async def relay(self, method: str, params: JsonObject) -> Any:
        """``appServer/request``: any app-server method, its result or its error as is.

        Refused (-32602, naming the method and the config key) when ``appserver.deny`` matches
        or ``appserver.allow`` does not. Waits behind the lifecycle barrier like every request.
        Each call is an ``app-server.request`` event (method, durationMs, outcome; params only
        for methods outside the default deny list, and bounded). Cancelling the caller
        forgets the request (a late answer is ignored).
        """
        started = trio.current_time()
        refused = self.refusal(method)
        outcome: JsonObject = {"outcome": "ok"}
        error: CodexdError | None = None
        result: Any = None
        if refused is not None:
            outcome = {"outcome": "refused", "rule": refused}
            error = InvalidRequest(
                f"app-server method {method!r} is refused by {refused};"
                " change appserver.allow / appserver.deny in codexd's config to permit it",
                field="method",
            )
        else:
            try:
                client = await self.client()
                result = await client.request(method, params)
            except AppServerError as exc:
                outcome = {"outcome": "error", "code": exc.rpc_code, "error": exc.rpc_message}
                error = RelayedError(method, exc.rpc_code, exc.rpc_message, exc.data)
                if exc.rpc_message.endswith("requires experimentalApi capability"):
                    error = InvalidRequest(
                        f"{exc.rpc_message}: set appserver.experimental_api = true"
                        " in codexd's config",
                        field="params",
                    )
            except CodexdError as exc:
                outcome = {"outcome": "error", "code": exc.code, "error": exc.message}
                error = exc
        detail: JsonObject = {
            "method": method,
            "durationMs": round((trio.current_time() - started) * 1000, 1),
            **outcome,
        }
        if not any(fnmatch.fnmatchcase(method, p) for p in DEFAULT_APPSERVER_DENY):
            detail["params"] = _bounded(params)
        try:  # on disk before the answer: it is an audit record
            await self.store.record(
                "app-server.request",
                f"appServer/request {method}: {outcome['outcome']}.",
                level="info" if error is None else "warn",
                detail=detail,
            )
        except StoreError:
            self.store.dropped_events += 1  # degraded: counted in daemon/status
        if error is not None:
            raise error
        return result

    async def wait_settled(self) -> None:
        """Until the first connection attempt succeeded or definitely failed."""
        await self._settled.wait()

    def restart(self) -> None:
        """Operator action: leave the ``failed`` state and start the child again."""
        self._restart_times.clear()
        if self.state == "failed":
            self._failed_reason = None
            self._move("connecting")

    async def report_wedged(self, reason: str) -> None:
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
        if not self.stopping:
            self._move("stopping")
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
            while not self.stopping:
                if self.state == "failed":
                    await self._until_changed()  # restart() or stop()
                    attempt = 0
                    continue
                started = trio.current_time()
                outcome = await self._incarnation()
                self._settled.set()
                if self.stopping:
                    break
                if trio.current_time() - started >= self.config.restart.min_uptime_s:
                    attempt = 0
                    self._restart_times.clear()
                reason = self._why_not_restart(outcome)
                if reason is not None:
                    self._failed_reason = reason
                    # A spawn failure is recorded by the child; a policy stop needs no alarm.
                    policy_stop = reason.startswith("the app-server ended")
                    if not outcome.get("spawnFailed") and not policy_stop:
                        await self._park(reason)
                    self._move("failed")
                    continue
                delay = Backoff(
                    self.config.restart.backoff_initial_s, self.config.restart.backoff_max_s
                ).delay(attempt)
                attempt += 1
                self.restart_count += 1
                self._move("backoff")
                await self._record_restarting(delay, attempt, outcome)
                await self._until_changed(delay)
                if not self.stopping:
                    self._move("connecting")
        finally:
            if not self.stopping:
                self._move("stopping")
            self._move("stopped")
            self._settled.set()

    def _why_not_restart(self, outcome: JsonObject) -> str | None:
        """``None`` to restart after this outcome, else why the supervisor parks in failed."""
        if outcome.get("fatal"):
            # A missing command or refused credentials will not fix themselves by retrying.
            return str(outcome.get("error"))
        policy = self.config.restart.policy
        if policy == "never" or (policy == "on-failure" and outcome.get("clean")):
            return f"the app-server ended and restart.policy is {policy!r}"
        now = trio.current_time()
        if not outcome.get("transient"):  # EMFILE and the like are not crashes
            self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.config.restart.window_s:
            self._restart_times.popleft()
        limit, window = self.config.restart.max_restarts, self.config.restart.window_s
        if len(self._restart_times) > limit:
            return f"restarted more than {limit} times within {window:g}s"
        return None

    async def _record_restarting(self, delay: float, attempt: int, outcome: JsonObject) -> None:
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
            records=[self._child_state("restarting", restart_count=self.restart_count)],
        )

    def _child_state(self, status: ChildStatus, **changes: Any) -> ChildState:
        current = self.store.child_state
        return attrs.evolve(current, status=CHILD.move(current.status, status), **changes)

    async def _park(self, reason: str) -> None:
        """Record why the supervisor gives up until an operator restart."""
        limit_hit = reason.startswith("restarted more than")
        await self.store.record(
            "child.restart.limit" if limit_hit else "child.failed",
            f"The app-server {reason}; giving up until an operator restarts it."
            if limit_hit
            else f"The app-server is not restarted: {reason}.",
            level="error",
            detail={
                "reason": reason,
                "maxRestarts": self.config.restart.max_restarts,
                "windowS": self.config.restart.window_s,
            },
            records=[
                self._child_state("failed", last_error=reason, restart_count=self.restart_count)
            ],
        )

    # ---- one incarnation -----------------------------------------------------------------------

    async def _incarnation(self) -> JsonObject:
        """One connection's life; returns how it ended. Never raises (but for cancellation).

        trio-websocket raises handshake rejections from its reader task into the nursery it was
        given, so failures can surface from the nursery itself; whatever escapes is turned into
        an outcome here, so that no failure of one connection can take the daemon down.
        """
        try:
            with unwrap_single():
                outcome = await self._incarnation_inner()
        except trio_websocket.ConnectionRejected as exc:
            await self._record_connect_failed(exc)
            if exc.status_code in (401, 403):
                # Retrying with the same credentials cannot succeed.
                refused = f"the app-server refused us (HTTP {exc.status_code})"
                return {"fatal": True, "error": refused}
            return {"connectError": str(exc)}
        except (OSError, trio_websocket.HandshakeError) as exc:  # refused, DNS, bad URL
            await self._record_connect_failed(exc)
            return {"connectError": str(exc)}
        except Exception as exc:  # a bug in codexd: keep serving, let the restart policy act
            self._client = None
            diagnostics = {"source": "crash", "message": repr(exc), "stopping": self.stopping}
            await self.store.record(
                "app-server.incarnation.crashed",
                f"The app-server connection failed unexpectedly: {exc!r}",
                level="error",
                detail=diagnostics,
            )
            await self.listener.disconnected(diagnostics, server_survives=False)
            return diagnostics
        return outcome

    async def _incarnation_inner(self) -> JsonObject:
        async with trio.open_nursery() as nursery:
            transport = await self._open_transport(nursery)
            if isinstance(transport, dict):
                return transport  # the child could not be spawned
            client = AppServerClient(
                transport,
                request_timeout_s=self.config.turns.request_timeout_s,
                on_notification=self.listener.notification,
                on_notifications=self.listener.notifications,
                on_server_request=self.listener.server_request,
                on_issue=self.listener.issue,
                experimental_api=self.config.appserver.experimental_api,
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
                if not self.stopping:
                    self._move("ready")
                self._settled.set()
                await client.closed.wait()
            # The connection is gone: close the barrier first, then settle what was in flight.
            self._client = None
            child_exit = await self._child_gone()
            info = client.close_info or CloseInfo("unknown", "connection ended")
            diagnostics = self._diagnostics(info, child_exit)
            await self.store.record(
                "app-server.transport.closed",
                f"App-server transport closed via {info.source}: {info.message}.",
                level="info" if self.stopping else "warn",
                detail=diagnostics,
            )
            # An external server outlives our connection: its turns go on and it replays the
            # requests still pending once we resume the threads.
            survives = self.spec is None and not self.stopping
            await self.listener.disconnected(diagnostics, server_survives=survives)
            nursery.cancel_scope.cancel()
        clean = child_exit is not None and child_exit.code == 0 and child_exit.signal is None
        return {"clean": clean and self.spec is not None, **diagnostics}

    async def _open_transport(self, nursery: trio.Nursery) -> Transport | JsonObject:
        """Spawn the child and attach to its stdio, or connect to the external endpoint."""
        if self.spec is None:
            # Connection errors (refused, DNS, HTTP rejection) are handled by _incarnation.
            transport = await WebSocketTransport.connect(nursery, self.endpoint)
            await self.store.save(
                ChildState(
                    status=CHILD.move(self.store.child_state.status, "external"),
                    started_at=_time.now_iso(),
                    restart_count=self.restart_count,
                )
            )
            return transport
        stdio = StdioTransport()
        child = ManagedChild(
            self.spec, self.store, on_stdout=stdio.feed, restart_count=self.restart_count
        )
        try:
            await nursery.start(child.run)
        except ChildSpawnError as exc:
            if exc.transient:  # e.g. EMFILE: retried with backoff, not counted
                return {"transient": True, "error": str(exc)}
            return {"fatal": True, "spawnFailed": True, "error": str(exc)}
        self.child = child
        assert child.process is not None and child.process.stdin is not None
        stdio.attach_stdin(child.process.stdin)
        return stdio

    async def _child_gone(self) -> ChildExit | None:
        """After the connection ended: wait (bounded) for the child's exit to be recorded."""
        child = self.child
        if self.spec is None or child is None:
            return None
        with trio.move_on_after(self.config.stop.grace_s + 2):
            await child.finished.wait()
        if not child.finished.is_set():
            # The connection is gone but the child lingers (e.g. it closed stdout).
            child.request_stop()
            await child.finished.wait()
        return child.exit

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

    def _diagnostics(self, info: CloseInfo, child_exit: ChildExit | None) -> JsonObject:
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
            "stopping": self.stopping,
        }

    async def _handshake(self, client: AppServerClient) -> None:
        codex_home = (self.spec.env.get("CODEX_HOME") if self.spec else None) or "~/.codex"
        lock = _FIRST_START_LOCKS.setdefault(codex_home, trio.Lock())
        async with lock:
            result = await client.initialize()
        account = await self._read_account(client)
        agent = result.get("userAgent")
        self.info = AppServerInfo(
            user_agent=agent if isinstance(agent, str) else None,
            codex_version=client.codex_version_text,
            experimental_api=client.experimental_api,
            codex_home=_text(result.get("codexHome")),
            platform_os=_text(result.get("platformOs")),
            account=account,
        )
        await self.store.record(
            "app-server.connected",
            f"Connected to app-server {self.endpoint} ({result.get('userAgent', '?')}).",
            detail={
                "endpoint": self.endpoint,
                "userAgent": result.get("userAgent"),
                "codexVersion": client.codex_version_text,
                "experimentalApi": client.experimental_api,
                "platformFamily": result.get("platformFamily"),
                "platformOs": result.get("platformOs"),
                "codexHome": result.get("codexHome"),
            },
        )
        await self.listener.connected(client, fresh_server=self.spec is not None)

    async def _read_account(self, client: AppServerClient) -> JsonObject | None:
        """``account/read`` for daemon/status; a server that refuses it leaves ``None``."""
        try:
            result = await client.request(
                "account/read", {}, timeout_s=min(5.0, self.config.turns.request_timeout_s)
            )
        except CodexdError:
            return None
        return result if isinstance(result, dict) else None

    def account_changed(self, account: JsonObject) -> None:
        """A fresh ``account/read`` answer (the API's ``account/read``) for daemon/status."""
        if self.info is not None:
            self.info = attrs.evolve(self.info, account=account)

    async def _record_connect_failed(self, exc: BaseException) -> None:
        await self.store.record(
            "app-server.connect.failed",
            f"Could not connect to the app-server at {self.endpoint}: {exc}",
            level="error",
            detail={"endpoint": self.endpoint, "error": str(exc)},
        )
