"""The typed client: ``async with codexd.connect() as client`` and one method per API method.

Each method takes keyword arguments, checks them locally with the same params record the daemon
uses (so a mistake raises :class:`~codexd.InvalidRequest` naming the field before anything is
sent), calls the daemon and structures the answer into the records of :mod:`codexd` with the
one converter. :data:`CLIENT_METHODS` maps every API method name to its client method.

Connections: calls share one WebSocket connection, opened again by the next call after the
daemon went away (a call in flight then raises :class:`~codexd.client.DaemonUnreachable`; only
waits, which are safe to repeat, retry by themselves for up to ``reconnect_timeout``). Every
event stream holds a connection of its own (see :mod:`codexd._client_stream`).

Cancellation: cancelling a call abandons its answer; the daemon may still have acted on it.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import trio

from ._client_handles import ApprovalStream, RunHandle, TurnHandle
from ._client_stream import BACKOFF_INITIAL_S, BACKOFF_MAX_S, STREAM_BUFFER, EventStream, Links
from ._config import load_config
from ._errors import ApiError, DaemonUnreachable, NotActive, NotFound
from ._groups import unwrap_single
from ._methods import METHODS
from ._params import ApprovalPolicyValue, Decision, Sandbox, build
from ._records import (
    Approval,
    ApprovalList,
    EventPage,
    Restarting,
    Run,
    RunList,
    Session,
    SessionList,
    Snapshot,
    TurnAccepted,
    TurnResult,
    from_wire,
    to_camel,
    to_wire_compact,
)
from .client import _UNSET, DEFAULT_TIMEOUT_S, ApiClient, _Unset

R = TypeVar("R")

#: Seconds streams and waits keep trying to reach a daemon that went away.
DEFAULT_RECONNECT_TIMEOUT_S = 60.0
#: ``after`` for an ``events/list`` that only reads the last seq (no stored event is later).
_END_OF_LOG = 2**63 - 1

#: Every API method and the :class:`Client` method that calls it.
CLIENT_METHODS: dict[str, str] = {
    "daemon/status": "status",
    "daemon/restartChild": "restart_child",
    "session/create": "create_session",
    "session/list": "list_sessions",
    "session/get": "get_session",
    "session/close": "close_session",
    "session/fork": "fork_session",
    "session/revert": "revert_session",
    "session/compact": "compact_session",
    "session/rename": "rename_session",
    "turn/start": "start_turn",
    "turn/interrupt": "interrupt",
    "turn/wait": "wait_turn",
    "review/start": "start_review",
    "run/create": "create_run",
    "run/get": "get_run",
    "run/list": "list_runs",
    "run/cancel": "cancel_run",
    "run/wait": "wait_run",
    "approval/list": "list_approvals",
    "approval/respond": "respond",
    "events/list": "list_events",
    "events/subscribe": "events",
    "events/unsubscribe": "events",
    "thread/list": "list_threads",
    "model/list": "list_models",
    "account/read": "read_account",
    "appServer/request": "app_server_request",
}

#: What an approval policy function returns: a decision, or ``None`` to leave it pending.
ApprovalPolicy = Callable[[Approval], "Decision | Awaitable[Decision | None] | None"]


def _camel(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {to_camel(k): v for k, v in fields.items() if v is not None}


class Client:
    """A connection to a running daemon with typed methods; made by :func:`connect`."""

    def __init__(self, links: Links) -> None:
        self._links = links
        self._api: ApiClient | None = None
        self._lock = trio.Lock()
        self._streams: set[EventStream] = set()

    # ---- plumbing ----------------------------------------------------------------------------

    async def _connection(self) -> ApiClient:
        api = self._api
        if api is None or api.is_closed:
            async with self._lock:
                api = self._api
                if api is None or api.is_closed:
                    if api is not None:
                        self._links.release(api)
                    self._api = api = await self._links.open()
        return api

    def _close(self) -> None:
        for stream in list(self._streams):
            stream.close_nowait()
        self._streams.clear()
        self._links.close_all()

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | _Unset | None = _UNSET,
    ) -> Any:
        """Call any API method with camelCase ``params``; its result as JSON (dicts, lists).

        ``timeout`` (seconds) defaults to the client's; ``None`` waits as long as it takes.
        Raises :class:`~codexd.client.ApiError` (the daemon's code, message and field),
        :class:`~codexd.client.CallTimeout`, :class:`~codexd.client.DaemonUnreachable`.
        """
        api = await self._connection()
        return await api.call(method, dict(params or {}), timeout=timeout)

    async def _invoke(self, method: str, result: type[R], /, **fields: Any) -> R:
        """Check ``fields`` with the method's params record, call, structure the result."""
        entry = METHODS.get(method)
        if entry is not None:
            params = to_wire_compact(build(entry.params, **fields))
        else:  # a method this daemon version may not have: sent as given
            params = _camel(fields)
        return from_wire(result, await self.request(method, params))

    async def _invoke_any(self, method: str, /, **fields: Any) -> Any:
        """Like :meth:`_invoke`, structured by the method table's result type when known."""
        entry = METHODS.get(method)
        if entry is None:
            return await self.request(method, _camel(fields))
        return await self._invoke(method, entry.result, **fields)

    async def _idempotent(self, call: Callable[[], Awaitable[R]]) -> R:
        """Run a call that is safe to repeat, again after reconnecting if the daemon went away."""
        limit = self._links.reconnect_timeout
        deadline = trio.current_time() + (limit if limit is not None else math.inf)
        delay = BACKOFF_INITIAL_S
        while True:
            try:
                return await call()
            except DaemonUnreachable:
                if self._links.closed or trio.current_time() + delay > deadline:
                    raise
            await trio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def last_seq(self) -> int:
        """The seq of the last event the daemon has stored (where a new stream would start)."""
        page = await self.request("events/list", {"after": _END_OF_LOG, "limit": 1})
        return int(page["lastSeq"])

    # ---- daemon ------------------------------------------------------------------------------

    async def status(self) -> Snapshot:
        """The daemon's identity and state (``daemon/status``)."""
        return await self._invoke("daemon/status", Snapshot)

    async def restart_child(self) -> Restarting:
        """Restart the app-server child (``daemon/restartChild``)."""
        return await self._invoke("daemon/restartChild", Restarting)

    # ---- sessions ----------------------------------------------------------------------------

    async def create_session(
        self,
        *,
        purpose: str = "general",
        cwd: str | PathLike[str] | None = None,
        model: str | None = None,
        model_provider: str | None = None,
        approval_policy: ApprovalPolicyValue | None = None,
        sandbox: Sandbox | None = None,
        base_instructions: str | None = None,
        developer_instructions: str | None = None,
        personality: str | None = None,
        service_tier: str | None = None,
        config: dict[str, Any] | None = None,
        thread_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Session:
        """Open a session: a new thread, or ``thread_id`` to resume one (``session/create``)."""
        return await self._invoke(
            "session/create",
            Session,
            purpose=purpose,
            cwd=None if cwd is None else str(cwd),
            model=model,
            model_provider=model_provider,
            approval_policy=approval_policy,
            sandbox=sandbox,
            base_instructions=base_instructions,
            developer_instructions=developer_instructions,
            personality=personality,
            service_tier=service_tier,
            config=config,
            thread_id=thread_id,
            metadata=metadata,
        )

    async def list_sessions(self, *, status: str | None = None) -> list[Session]:
        return (await self._invoke("session/list", SessionList, status=status)).sessions

    async def get_session(self, session_id: str) -> Session:
        return await self._invoke("session/get", Session, session_id=session_id)

    async def close_session(self, session_id: str) -> Session:
        """Close a session (idempotent); its thread stays in ``CODEX_HOME``."""
        return await self._invoke("session/close", Session, session_id=session_id)

    async def fork_session(self, session_id: str, /, **params: Any) -> Session:
        """A new session on a fork of the session's thread (``session/fork``)."""
        return await self._invoke("session/fork", Session, session_id=session_id, **params)

    async def revert_session(self, session_id: str, /, **params: Any) -> Any:
        """Drop the session's last turns (``session/revert``; e.g. ``turns=1``)."""
        return await self._invoke_any("session/revert", session_id=session_id, **params)

    async def compact_session(self, session_id: str, /, **params: Any) -> Any:
        """Compact the session's thread (``session/compact``)."""
        return await self._invoke_any("session/compact", session_id=session_id, **params)

    async def rename_session(self, session_id: str, /, **params: Any) -> Any:
        """Rename the session's thread (``session/rename``; e.g. ``name="..."``)."""
        return await self._invoke_any("session/rename", session_id=session_id, **params)

    # ---- turns -------------------------------------------------------------------------------

    async def start_turn(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        *,
        expected_turn_id: str | None = None,
        approval_policy: ApprovalPolicyValue | None = None,
        cwd: str | PathLike[str] | None = None,
        effort: str | None = None,
        model: str | None = None,
        output_schema: dict[str, Any] | None = None,
        personality: str | None = None,
        sandbox_policy: dict[str, Any] | None = None,
        service_tier: str | None = None,
        summary: str | None = None,
        collaboration_mode: dict[str, Any] | None = None,
    ) -> TurnHandle:
        """Start a turn (or steer the running one with ``expected_turn_id``): its handle.

        The handle's :meth:`~TurnHandle.stream` starts from the turn's first event.
        """
        since = await self.last_seq()
        accepted = await self._invoke(
            "turn/start",
            TurnAccepted,
            session_id=session_id,
            input=input,
            expected_turn_id=expected_turn_id,
            approval_policy=approval_policy,
            cwd=None if cwd is None else str(cwd),
            effort=effort,
            model=model,
            output_schema=output_schema,
            personality=personality,
            sandbox_policy=sandbox_policy,
            service_tier=service_tier,
            summary=summary,
            collaboration_mode=collaboration_mode,
        )
        return TurnHandle(
            self, session_id, accepted.turn_id, accepted.steered, accepted.session, since
        )

    async def start_review(self, session_id: str, /, **params: Any) -> TurnHandle:
        """Start a code review as a turn of the session (``review/start``): its handle."""
        since = await self.last_seq()
        result = await self._invoke_any("review/start", session_id=session_id, **params)
        wire = result if isinstance(result, dict) else to_wire_compact(result)
        session = wire.get("session")
        return TurnHandle(
            self,
            session_id,
            str(wire["turnId"]),
            bool(wire.get("steered", False)),
            from_wire(Session, session) if isinstance(session, dict) else None,
            since,
        )

    async def interrupt(self, session_id: str) -> TurnResult:
        """Interrupt the session's current turn (``turn/interrupt``)."""
        return await self._invoke("turn/interrupt", TurnResult, session_id=session_id)

    async def wait_turn(
        self, session_id: str, turn_id: str | None = None, *, timeout: float | None = None
    ) -> TurnResult:
        """Until a turn ends (``status == "inProgress"`` if ``timeout`` passed first)."""
        return await self._idempotent(
            lambda: self._invoke(
                "turn/wait", TurnResult, session_id=session_id, turn_id=turn_id, timeout_s=timeout
            )
        )

    # ---- runs --------------------------------------------------------------------------------

    async def create_run(
        self,
        prompt: str,
        *,
        cwd: str | PathLike[str] | None = None,
        sandbox: Sandbox | None = None,
        model: str | None = None,
        profile: str | None = None,
        config: list[str] | None = None,
        images: list[str] | None = None,
        add_dirs: list[str] | None = None,
        env: dict[str, str] | None = None,
        skip_git_repo_check: bool | None = None,
        timeout: float | None = None,
        purpose: str | None = None,
        metadata: dict[str, str] | None = None,
        session_id: str | None = None,
    ) -> RunHandle:
        """Queue a ``codex exec`` run (``run/create``; ``timeout`` is its ``timeoutS``)."""
        since = await self.last_seq()
        run = await self._invoke(
            "run/create",
            Run,
            prompt=prompt,
            cwd=None if cwd is None else str(cwd),
            sandbox=sandbox,
            model=model,
            profile=profile,
            config=config,
            images=images,
            add_dirs=add_dirs,
            env=env,
            skip_git_repo_check=skip_git_repo_check,
            timeout_s=timeout,
            purpose=purpose,
            metadata=metadata,
            session_id=session_id,
        )
        return RunHandle(self, run.run_id, run, since)

    async def get_run(self, run_id: str) -> Run:
        return await self._invoke("run/get", Run, run_id=run_id)

    async def list_runs(
        self, *, status: str | None = None, session_id: str | None = None
    ) -> list[Run]:
        return (await self._invoke("run/list", RunList, status=status, session_id=session_id)).runs

    async def cancel_run(self, run_id: str) -> Run:
        """Cancel a run: a queued one never starts, a running one is stopped."""
        return await self._invoke("run/cancel", Run, run_id=run_id)

    async def wait_run(self, run_id: str, *, timeout: float | None = None) -> Run:
        """Until the run is final (its current state if ``timeout`` passes first)."""
        return await self._idempotent(
            lambda: self._invoke("run/wait", Run, run_id=run_id, timeout_s=timeout)
        )

    # ---- approvals ---------------------------------------------------------------------------

    async def list_approvals(
        self, *, status: str | None = None, session_id: str | None = None
    ) -> list[Approval]:
        return (
            await self._invoke("approval/list", ApprovalList, status=status, session_id=session_id)
        ).approvals

    async def respond(
        self,
        approval_id: str,
        decision: Decision,
        *,
        answers: dict[str, list[str]] | None = None,
        content: Any = None,
    ) -> Approval:
        """Answer a pending approval (``approval/respond``)."""
        return await self._invoke(
            "approval/respond",
            Approval,
            approval_id=approval_id,
            decision=decision,
            answers=answers,
            content=content,
        )

    async def find_pending_approval(
        self, approval_id: str, *, session_id: str | None = None
    ) -> Approval | None:
        """The approval ``approval_id`` if it is still pending, else ``None``."""
        for approval in await self.list_approvals(status="pending", session_id=session_id):
            if approval.approval_id == approval_id:
                return approval
        return None

    async def approvals(self, session_id: str | None = None) -> ApprovalStream:
        """Pending approvals as they arrive (those already pending first); see ApprovalStream.

        ``async with await client.approvals() as pending: async for approval in pending: ...``
        """
        since = await self.last_seq()
        pending = await self.list_approvals(status="pending", session_id=session_id)
        pending.sort(key=lambda a: a.created_at)
        stream = self.events(since=since, type="approval.", session_id=session_id)
        return ApprovalStream(self, stream, pending, session_id)

    async def answer_approvals(
        self, policy: ApprovalPolicy, *, session_id: str | None = None
    ) -> None:
        """Answer every pending approval with ``policy(approval)`` until cancelled.

        ``policy`` returns a decision (``"accept"``, ``"decline"``, ...), or ``None`` to leave
        that approval to someone else; it may be async. An approval decided meanwhile (timeout,
        another client) is skipped. Run it in a nursery: ``nursery.start_soon(...)``.
        """
        async with await self.approvals(session_id) as pending:
            async for approval in pending:
                decision = policy(approval)
                if inspect.isawaitable(decision):
                    decision = await decision
                if decision is None:
                    continue
                try:
                    await self.respond(approval.approval_id, decision)
                except ApiError as exc:
                    if exc.code not in (NotActive.code, NotFound.code):
                        raise

    # ---- events ------------------------------------------------------------------------------

    async def list_events(
        self,
        *,
        after: int = 0,
        limit: int = 500,
        type: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
    ) -> EventPage:
        """One page of stored events after ``after`` (``events/list``)."""
        return await self._invoke(
            "events/list",
            EventPage,
            after=after,
            limit=limit,
            type=type,
            session_id=session_id,
            run_id=run_id,
        )

    def events(
        self,
        since: int | None = None,
        *,
        type: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        buffer: int = STREAM_BUFFER,
    ) -> EventStream:
        """Events after seq ``since`` (``None``: from now on), then live ones, forever.

        The stream resumes by itself from its last seq when dropped or when the daemon
        restarts: no gap, no duplicate, at most ``buffer`` events held. Filters: ``type``
        (a prefix), ``session_id``, ``run_id``. Close it (``async with``) when done.
        """
        stream = EventStream(
            self._links,
            since=since,
            type_prefix=type,
            session_id=session_id,
            run_id=run_id,
            buffer=buffer,
            on_close=self._streams.discard,
        )
        self._streams.add(stream)
        return stream

    # ---- Codex itself ------------------------------------------------------------------------

    async def list_threads(self, /, **params: Any) -> Any:
        """Codex's own threads, codexd's sessions marked (``thread/list``)."""
        return await self._invoke_any("thread/list", **params)

    async def list_models(self, /, **params: Any) -> Any:
        """The models the app-server offers (``model/list``)."""
        return await self._invoke_any("model/list", **params)

    async def read_account(self, /, **params: Any) -> Any:
        """The app-server's login state (``account/read``)."""
        return await self._invoke_any("account/read", **params)

    async def app_server_request(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Any app-server request, passed through the daemon (``appServer/request``).

        Returns the app-server's result as is; the daemon's allow/deny rules apply.
        """
        body: dict[str, Any] = {"method": method}
        if params is not None:
            body["params"] = dict(params)
        return await self.request("appServer/request", body)


def resolve_state_dir(state_dir: str | PathLike[str] | None) -> Path:
    """``state_dir`` (``~`` expanded), else the daemon's default: its config without flags
    (``CODEXD_CONFIG``, ``CODEXD_STATE_DIR``, ``$XDG_STATE_HOME/codexd``)."""
    if state_dir is None:
        return load_config().state_path
    return Path(os.path.expanduser(state_dir))


@asynccontextmanager
async def connect(
    state_dir: str | PathLike[str] | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    reconnect_timeout: float | None = DEFAULT_RECONNECT_TIMEOUT_S,
) -> AsyncIterator[Client]:
    """Connect to a running daemon (Trio): ``async with codexd.connect() as client: ...``.

    The daemon is found through ``<state_dir>/api.json`` and ``api-token`` (``state_dir``
    defaults to the daemon's own default), or ``url`` and ``token``. ``timeout`` bounds each
    call (``None``: no bound); ``reconnect_timeout`` is how long streams and waits keep trying
    when the daemon went away (``None``: forever). Raises
    :class:`~codexd.client.DaemonUnreachable` if no daemon answers now.

    Leaving the block closes every connection and stream of the client.
    """
    path: Path | None = None
    if state_dir is not None or url is None or token is None:
        path = await trio.to_thread.run_sync(resolve_state_dir, state_dir)
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            links = Links(
                nursery,
                state_dir=path,
                url=url,
                token=token,
                timeout=timeout,
                reconnect_timeout=reconnect_timeout,
            )
            client = Client(links)
            try:
                await client._connection()
                yield client
            finally:
                client._close()
                # The connections' tasks close them (bounded); then nothing is left.
                nursery.cancel_scope.deadline = trio.current_time() + 3
