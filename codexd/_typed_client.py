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
from collections.abc import Awaitable, Callable, Mapping
from os import PathLike
from typing import Any, Literal, TypeVar

import trio

from ._client_handles import ApprovalStream, RunHandle, TurnHandle
from ._client_stream import BACKOFF_INITIAL_S, BACKOFF_MAX_S, STREAM_BUFFER, EventStream, Links
from ._errors import ApiError, DaemonUnreachable, NotActive, NotFound
from ._methods import METHODS
from ._params import ApprovalPolicyValue, AppServerRequestParams, Decision, Sandbox, build
from ._records import (
    AccountInfo,
    Approval,
    ApprovalList,
    EventPage,
    ModelList,
    Restarting,
    ReviewAccepted,
    Run,
    RunList,
    Session,
    SessionList,
    Snapshot,
    ThreadList,
    TurnAccepted,
    TurnResult,
    from_wire,
    to_wire_compact,
)
from .client import _UNSET, ApiClient, _Unset

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
        params = to_wire_compact(build(METHODS[method].params, **fields))
        return from_wire(result, await self.request(method, params))

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

    async def fork_session(
        self,
        session_id: str,
        *,
        last_turn_id: str | None = None,
        purpose: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Session:
        """A new session on a fork of the session's thread, its history kept up to
        ``last_turn_id`` (default: all of it) (``session/fork``)."""
        return await self._invoke(
            "session/fork",
            Session,
            session_id=session_id,
            last_turn_id=last_turn_id,
            purpose=purpose,
            metadata=metadata,
        )

    async def revert_session(self, session_id: str, *, turns: int = 1) -> Session:
        """Drop the thread's last ``turns`` turns; files are not reverted (``session/revert``)."""
        return await self._invoke("session/revert", Session, session_id=session_id, turns=turns)

    async def compact_session(self, session_id: str) -> Session:
        """Compact the thread's history; Codex runs it as a turn (``session/compact``)."""
        return await self._invoke("session/compact", Session, session_id=session_id)

    async def rename_session(self, session_id: str, name: str) -> Session:
        """Name the session's thread (``session/rename``)."""
        return await self._invoke("session/rename", Session, session_id=session_id, name=name)

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

        The handle's :meth:`~TurnHandle.stream` starts from the turn's first event (the answer's
        ``since``: no extra round trip).
        """
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
            self, session_id, accepted.turn_id, accepted.steered, accepted.session, accepted.since
        )

    async def start_review(
        self,
        session_id: str,
        *,
        target: dict[str, Any] | None = None,
        delivery: Literal["inline", "detached"] | None = None,
    ) -> TurnHandle:
        """A code review as a turn of the session (``review/start``): its handle.

        ``target`` is ``{"type": "uncommittedChanges"}`` (the default), ``{"type":
        "baseBranch", "branch": ...}``, ``{"type": "commit", "sha": ...}`` or ``{"type":
        "custom", "instructions": ...}``. The handle waits and streams like any turn's.
        """
        accepted = await self._invoke(
            "review/start",
            ReviewAccepted,
            session_id=session_id,
            target=target,
            delivery=delivery,
        )
        return TurnHandle(
            self,
            session_id,
            accepted.turn_id,
            False,
            accepted.session,
            accepted.since,
            review_thread_id=accepted.review_thread_id,
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

    def approvals(self, session_id: str | None = None) -> ApprovalStream:
        """Pending approvals as they arrive, those already pending first (see ApprovalStream):
        ``async with client.approvals() as pending: async for approval in pending: ...``"""
        return ApprovalStream(self, session_id)

    async def answer_approvals(
        self, policy: ApprovalPolicy, *, session_id: str | None = None
    ) -> None:
        """Answer every pending approval with ``policy(approval)`` until cancelled.

        ``policy`` returns a decision (``"accept"``, ``"decline"``, ...), or ``None`` to leave
        that approval to someone else; it may be async. An approval decided meanwhile (timeout,
        another client) is skipped. Run it in a nursery: ``nursery.start_soon(...)``.
        """
        async with self.approvals(session_id) as pending:
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

    async def list_threads(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        archived: bool | None = None,
        cwd: str | list[str] | None = None,
        search_term: str | None = None,
        source_kinds: list[str] | None = None,
        model_providers: list[str] | None = None,
        sort_key: str | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
    ) -> ThreadList:
        """Codex's own threads, each with its codexd session if any (``thread/list``)."""
        return await self._invoke(
            "thread/list",
            ThreadList,
            cursor=cursor,
            limit=limit,
            archived=archived,
            cwd=cwd,
            search_term=search_term,
            source_kinds=source_kinds,
            model_providers=model_providers,
            sort_key=sort_key,
            sort_direction=sort_direction,
        )

    async def list_models(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        include_hidden: bool | None = None,
    ) -> ModelList:
        """The models Codex offers (``model/list``)."""
        return await self._invoke(
            "model/list", ModelList, cursor=cursor, limit=limit, include_hidden=include_hidden
        )

    async def read_account(self, *, refresh_token: bool | None = None) -> AccountInfo:
        """Codex's login state (``account/read``)."""
        return await self._invoke("account/read", AccountInfo, refresh_token=refresh_token)

    async def app_server_request(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Any app-server request, passed through the daemon (``appServer/request``).

        Returns the app-server's result as is (JSON); the daemon's ``appserver.allow`` /
        ``appserver.deny`` rules apply, and an app-server error keeps its code and message.
        """
        fields = build(AppServerRequestParams, method=method, params=dict(params or {}))
        return await self.request("appServer/request", to_wire_compact(fields))
