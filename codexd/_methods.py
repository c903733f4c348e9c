"""The API method table: each method's name, params record, result type, handler and summary.

This is the one place a method is defined. The API server dispatches through it, the docs and
the CLI read it, and the JSON Schema of the API is generated from it. Adding a method means
adding one :class:`Method` here (its params record lives in :mod:`codexd._params`).

Handlers get the daemon and the validated params record and return a record (or a list or dict
of them); the server turns it into camelCase JSON. ``events/subscribe`` and
``events/unsubscribe`` act on the connection itself, so the server serves them (their entries
here carry the params and the documentation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from . import _params as p
from ._errors import WrongMode
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
    Subscribed,
    ThreadList,
    TurnAccepted,
    TurnResult,
    Unsubscribed,
    to_wire_compact,
)
from ._subscriptions import EventFilter

if TYPE_CHECKING:
    from ._daemon import Daemon

Handler = Callable[["Daemon", Any], Awaitable[Any]]


@attrs.frozen
class Method:
    """One API method."""

    name: str
    params: type
    result: type
    summary: str
    #: ``None`` for the methods the server serves itself (subscriptions).
    handler: Handler | None = None


async def _status(d: Daemon, _: p.NoParams) -> Snapshot:
    return d.status()


async def _restart_child(d: Daemon, _: p.NoParams) -> Restarting:
    d.restart_child()
    return Restarting()


async def _session_create(d: Daemon, params: p.SessionCreateParams) -> Session:
    return await d.sessions.create_session(params)


async def _session_list(d: Daemon, params: p.SessionListParams) -> SessionList:
    return SessionList(d.list_sessions(status=params.status))


async def _session_get(d: Daemon, params: p.SessionRef) -> Session:
    return d.get_session(params.session_id)


async def _session_close(d: Daemon, params: p.SessionRef) -> Session:
    return await d.close_session(params.session_id)


async def _turn_start(d: Daemon, params: p.TurnStartParams) -> TurnAccepted:
    return await d.sessions.start_turn(params)


async def _turn_interrupt(d: Daemon, params: p.SessionRef) -> TurnResult:
    return await d.interrupt_turn(params.session_id)


async def _turn_wait(d: Daemon, params: p.TurnWaitParams) -> TurnResult:
    return await d.wait_turn(params.session_id, params.turn_id, params.timeout_s)


async def _run_create(d: Daemon, params: p.RunCreateParams) -> Run:
    return await d.runs.create_run(params)


async def _run_get(d: Daemon, params: p.RunRef) -> Run:
    return d.get_run(params.run_id)


async def _run_list(d: Daemon, params: p.RunListParams) -> RunList:
    return RunList(d.list_runs(status=params.status, session_id=params.session_id))


async def _run_cancel(d: Daemon, params: p.RunRef) -> Run:
    return await d.cancel_run(params.run_id)


async def _run_wait(d: Daemon, params: p.RunWaitParams) -> Run:
    return await d.wait_run(params.run_id, params.timeout_s)


async def _approval_list(d: Daemon, params: p.ApprovalListParams) -> ApprovalList:
    return ApprovalList(d.list_approvals(status=params.status, session_id=params.session_id))


async def _approval_respond(d: Daemon, params: p.ApprovalRespondParams) -> Approval:
    return await d.respond_approval(
        params.approval_id, params.decision, answers=params.answers, content=params.content
    )


async def _events_list(d: Daemon, params: p.EventsListParams) -> EventPage:
    last_seq = d.store.last_seq
    events = await d.store.query_events(
        after=params.after,
        up_to=last_seq,
        event_filter=EventFilter(params.type, params.session_id, params.run_id),
        limit=params.limit,
        max_bytes=p.MAX_PAGE_BYTES,
    )
    return EventPage(events, last_seq)


async def _appserver_request(d: Daemon, params: p.AppServerRequestParams) -> Any:
    if d.supervisor is None:
        raise WrongMode("no app-server in this mode (config mode is 'exec')")
    return await d.supervisor.relay(params.method, params.params)


async def _thread_list(d: Daemon, params: p.ThreadListParams) -> ThreadList:
    return await d.threads.list_threads(params)


async def _session_fork(d: Daemon, params: p.SessionForkParams) -> Session:
    return await d.threads.fork_session(params)


async def _session_revert(d: Daemon, params: p.SessionRevertParams) -> Session:
    return await d.threads.revert_session(params)


async def _session_compact(d: Daemon, params: p.SessionRef) -> Session:
    return await d.threads.compact_session(params.session_id)


async def _session_rename(d: Daemon, params: p.SessionRenameParams) -> Session:
    return await d.threads.rename_session(params)


async def _review_start(d: Daemon, params: p.ReviewStartParams) -> ReviewAccepted:
    return await d.threads.start_review(params)


async def _model_list(d: Daemon, params: p.ModelListParams) -> ModelList:
    client = await d.client()
    result = await client.request("model/list", to_wire_compact(params))
    data = [m for m in result.get("data") or [] if isinstance(m, dict)]
    cursor = result.get("nextCursor")
    return ModelList(data, cursor if isinstance(cursor, str) else None)


async def _account_read(d: Daemon, params: p.AccountReadParams) -> AccountInfo:
    client = await d.client()
    result = await client.request("account/read", to_wire_compact(params))
    if d.supervisor is not None and isinstance(result, dict):
        d.supervisor.account_changed(result)
    account = result.get("account")
    requires = result.get("requiresOpenaiAuth")
    return AccountInfo(
        account if isinstance(account, dict) else None,
        requires if isinstance(requires, bool) else None,
    )


def _table(*methods: Method) -> dict[str, Method]:
    return {m.name: m for m in methods}


METHODS: dict[str, Method] = _table(
    Method("daemon/status", p.NoParams, Snapshot, "The daemon's identity and state.", _status),
    Method(
        "daemon/restartChild",
        p.NoParams,
        Restarting,
        "Restart the app-server child (leaves the failed state after the restart limit).",
        _restart_child,
    ),
    Method(
        "session/create",
        p.SessionCreateParams,
        Session,
        "Open a session: a new app-server thread, or threadId to resume one.",
        _session_create,
    ),
    Method("session/list", p.SessionListParams, SessionList, "List sessions.", _session_list),
    Method("session/get", p.SessionRef, Session, "One session.", _session_get),
    Method(
        "session/close",
        p.SessionRef,
        Session,
        "Close a session (idempotent); its thread stays in CODEX_HOME.",
        _session_close,
    ),
    Method(
        "session/fork",
        p.SessionForkParams,
        Session,
        "A new session on a fork of the session's thread (the model keeps its history).",
        _session_fork,
    ),
    Method(
        "session/revert",
        p.SessionRevertParams,
        Session,
        "Drop the last N turns of the session's thread (local file changes stay).",
        _session_revert,
    ),
    Method(
        "session/compact",
        p.SessionRef,
        Session,
        "Compact the thread's history (Codex runs the compaction as a turn).",
        _session_compact,
    ),
    Method(
        "session/rename",
        p.SessionRenameParams,
        Session,
        "Name the session's thread.",
        _session_rename,
    ),
    Method(
        "turn/start",
        p.TurnStartParams,
        TurnAccepted,
        "Start a turn, or steer the running one with expectedTurnId.",
        _turn_start,
    ),
    Method(
        "turn/interrupt",
        p.SessionRef,
        TurnResult,
        "Interrupt the session's current turn (bounded by turns.interrupt_timeout_s).",
        _turn_interrupt,
    ),
    Method(
        "turn/wait",
        p.TurnWaitParams,
        TurnResult,
        "Wait until a turn ends (status inProgress if timeoutS passes first).",
        _turn_wait,
    ),
    Method(
        "review/start",
        p.ReviewStartParams,
        ReviewAccepted,
        "A code review as a turn of the session (wait for it with turn/wait).",
        _review_start,
    ),
    Method(
        "thread/list",
        p.ThreadListParams,
        ThreadList,
        "Codex's own threads, each with the codexd session on it (codexdSessionId).",
        _thread_list,
    ),
    Method("model/list", p.ModelListParams, ModelList, "The models Codex offers.", _model_list),
    Method(
        "account/read",
        p.AccountReadParams,
        AccountInfo,
        "Codex's login state (also in daemon/status).",
        _account_read,
    ),
    Method(
        "appServer/request",
        p.AppServerRequestParams,
        object,
        "Any app-server method, its result as is; guarded by appserver.allow/deny.",
        _appserver_request,
    ),
    Method("run/create", p.RunCreateParams, Run, "Queue a codex exec run.", _run_create),
    Method("run/get", p.RunRef, Run, "One run.", _run_get),
    Method("run/list", p.RunListParams, RunList, "List runs.", _run_list),
    Method(
        "run/cancel",
        p.RunRef,
        Run,
        "Cancel a run: a queued one never starts, a running one is stopped.",
        _run_cancel,
    ),
    Method(
        "run/wait",
        p.RunWaitParams,
        Run,
        "Wait until a run is final (its current state if timeoutS passes first).",
        _run_wait,
    ),
    Method(
        "approval/list",
        p.ApprovalListParams,
        ApprovalList,
        "List approvals (server requests) and their answers.",
        _approval_list,
    ),
    Method(
        "approval/respond",
        p.ApprovalRespondParams,
        Approval,
        "Answer a pending approval.",
        _approval_respond,
    ),
    Method(
        "events/list",
        p.EventsListParams,
        EventPage,
        "A page of stored events after a seq (at most limit, about 4 MiB), and the last seq.",
        _events_list,
    ),
    Method(
        "events/subscribe",
        p.EventsSubscribeParams,
        Subscribed,
        "Stored events after since, then live event notifications, in seq order.",
    ),
    Method(
        "events/unsubscribe",
        p.EventsUnsubscribeParams,
        Unsubscribed,
        "End a subscription of this connection.",
    ),
)
