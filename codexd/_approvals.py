"""The approval broker: every app-server server request becomes a durable record and an answer.

The reader hands each server request (command/file approvals, permission requests, user input,
elicitations, dynamic tool calls, ...) to :meth:`ApprovalBroker.handle_request`, which only
spawns a task: the reader never waits on a human. The task stores an :class:`Approval` record
and an ``approval.requested`` event, then answers by policy:

- ``accept`` / ``decline``: at once;
- ``ask``: when :meth:`ApprovalBroker.respond` is called, or after ``approvals.timeout_s`` with
  ``approvals.on_timeout`` (``decline`` or ``cancel``).

Every answer has the valid shape for its kind (:mod:`codexd._replies`) and fails closed: a
decision the server did not offer becomes the nearest more restrictive one. No server request is
ever left unanswered while the connection lives; when it dies, pending records are cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from . import _time
from ._appserver import AppServerClient
from ._config import Config
from ._errors import CodexdError, InvalidRequest, NotActive, NotFound
from ._messages import Request
from ._records import Approval, ApprovalStatus
from ._replies import Decision, build_reply, describe
from ._states import APPROVAL
from ._store import Store, new_id
from ._tasks import TaskHost

DECISIONS: tuple[Decision, ...] = ("accept", "acceptForSession", "decline", "cancel")


def _same_request(old: Request, new: Request) -> bool:
    """Is ``new`` a replay of ``old``? Same method and id, and the same item of the same turn."""
    keys = ("threadId", "turnId", "itemId", "callId")
    return (
        old.method == new.method
        and old.id == new.id
        and all(old.params.get(k) == new.params.get(k) for k in keys)
    )


_STATUS_OF: dict[str, ApprovalStatus] = {
    "accept": "accepted",
    "acceptForSession": "accepted",
    "decline": "declined",
    "cancel": "cancelled",
}


#: After a reconnect to a server that survived, how long a detached request may take to be
#: replayed (the server re-sends pending requests right after ``thread/resume``).
REPLAY_GRACE_S = 5.0


@attrs.define
class _Pending:
    approval_id: str
    client: AppServerClient
    request: Request
    answered: trio.Event = attrs.field(factory=trio.Event)
    finished: trio.Event = attrs.field(factory=trio.Event)
    #: Set while the connection is lost and the server may replay this request; an answer
    #: waits for the replay (``rebound``) before it is sent.
    detached: bool = False
    rebound: trio.Event = attrs.field(factory=trio.Event)
    decision: Decision | None = None
    decided_by: str | None = None
    answers: Any = None
    content: Any = None


class ApprovalBroker:
    """Holds pending server requests until answered, by a caller, a policy or a timeout."""

    def __init__(
        self,
        store: Store,
        config: Config,
        tasks: TaskHost,
        session_of_thread: Callable[[str], str | None],
    ) -> None:
        self.store = store
        self.config = config
        self._tasks = tasks
        self._pending: dict[str, _Pending] = {}
        self._replayed = trio.Event()
        #: thread id -> the id of its session (kept by the session manager).
        self._session_of_thread = session_of_thread

    def handle_request(self, client: AppServerClient, request: Request) -> None:
        """Called by the reader for each server request; never blocks.

        A request that a surviving server replays after a reconnect is re-bound to its
        pending record (same approval id, same deadline) instead of becoming a new one.
        """
        for pending in self._pending.values():
            if pending.detached and _same_request(pending.request, request):
                pending.client = client
                pending.request = request
                pending.detached = False
                pending.rebound.set()
                self._replayed.set()
                self._tasks.start_soon(self._record_rebound, pending, name="approval rebound")
                return
        self._tasks.start_soon(
            self._serve, client, request, name=f"server request {request.method}"
        )

    async def _record_rebound(self, pending: _Pending) -> None:
        await self.store.emit(
            "approval.rebound",
            f"{pending.request.method} was replayed after a reconnect; it is still answerable.",
            detail={"approvalId": pending.approval_id, "requestId": pending.request.id},
            session_id=self._session_of_thread(str(pending.request.params.get("threadId"))),
        )

    async def _serve(self, client: AppServerClient, request: Request) -> None:
        params = request.params if isinstance(request.params, dict) else {}
        thread_id = params.get("threadId") if isinstance(params.get("threadId"), str) else None
        turn_id = params.get("turnId") if isinstance(params.get("turnId"), str) else None
        policy = self.config.approvals.policy
        timeout_s = self.config.approvals.timeout_s
        now = _time.now_iso()
        deadline = None
        if policy == "ask":
            deadline = _time.iso_after(timeout_s)
        approval = Approval(
            approval_id=new_id("approval"),
            request_id=request.id,
            method=request.method,
            session_id=self._session_of_thread(thread_id) if thread_id else None,
            thread_id=thread_id,
            turn_id=turn_id,
            params=params,
            status="pending",
            created_at=now,
            summary=describe(request.method, params),
            deadline_at=deadline,
        )
        pending = _Pending(approval.approval_id, client, request)
        self._pending[approval.approval_id] = pending
        try:
            await self.store.record(
                "approval.requested",
                f"{request.method}: {approval.summary}",
                level="warn" if policy == "ask" else "info",
                detail={
                    "approvalId": approval.approval_id,
                    "method": request.method,
                    "threadId": thread_id,
                    "turnId": turn_id,
                    "policy": policy,
                    "deadlineAt": deadline,
                },
                session_id=approval.session_id,
                records=[approval],
            )
            if policy in ("accept", "decline"):
                pending.decision = "accept" if policy == "accept" else "decline"
                pending.decided_by = "policy"
            else:
                with trio.move_on_after(timeout_s):
                    await pending.answered.wait()
                if pending.decision is None:
                    pending.decision = self.config.approvals.on_timeout
                    pending.decided_by = "timeout"
            await self._answer(pending)
        finally:
            self._pending.pop(approval.approval_id, None)
            pending.finished.set()

    async def _answer(self, pending: _Pending) -> None:
        assert pending.decision is not None
        request = pending.request
        params = request.params if isinstance(request.params, dict) else {}
        body = build_reply(
            request.method,
            params,
            pending.decision,
            answers=pending.answers,
            content=pending.content,
        )
        sent = True
        error_text = None
        if pending.decided_by in ("server", "transport-closed"):
            # Nobody is waiting for an answer any more: close the record without sending.
            sent = False
            error_text = (
                "the server resolved it first (turn ended or interrupted)"
                if pending.decided_by == "server"
                else "the app-server connection closed"
            )
        else:
            if pending.detached:
                # Answered while the connection is down: send it once the server replays.
                with trio.move_on_after(REPLAY_GRACE_S * 2):
                    await pending.rebound.wait()
            try:
                if pending.detached:
                    raise CodexdError("the app-server connection closed and did not come back")
                if body.error is not None:
                    code, message = body.error
                    await pending.client.respond_error(request.id, code, message)
                else:
                    await pending.client.respond(request.id, body.result)
            except CodexdError as exc:
                sent = False
                error_text = str(exc)
                pending.decided_by = "transport-closed"
        current = self.store.get_approval(pending.approval_id)
        if current is None or current.status != "pending":
            return
        status: ApprovalStatus = (
            "timed_out" if pending.decided_by == "timeout" else _STATUS_OF[pending.decision]
        )
        if not sent:
            status = "cancelled"
        decided = attrs.evolve(
            current,
            status=APPROVAL.move(current.status, status),
            decision=pending.decision,
            decided_by=pending.decided_by,
            decided_at=_time.now_iso(),
        )
        await self.store.record(
            "approval.decided" if sent else "approval.cancelled",
            f"{request.method} answered {pending.decision} ({pending.decided_by})"
            if sent
            else f"{request.method} closed unanswered: {error_text}",
            level="info" if sent else "warn",
            detail={
                "approvalId": pending.approval_id,
                "decision": pending.decision,
                "decidedBy": decided.decided_by,
                "reply": body.result if body.error is None else {"error": list(body.error)},
            },
            session_id=current.session_id,
            records=[decided],
        )

    async def respond(
        self,
        approval_id: str,
        decision: str,
        *,
        answers: Any = None,
        content: Any = None,
        decided_by: str = "api",
    ) -> Approval:
        """Answer a pending request (policy ``ask``). Returns the decided record."""
        if decision not in DECISIONS:
            raise InvalidRequest(
                f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}",
                field="decision",
            )
        record = self.store.get_approval(approval_id)
        if record is None:
            raise NotFound(f"unknown approval {approval_id!r}", field="approvalId")
        pending = self._pending.get(approval_id)
        if record.status != "pending" or pending is None or pending.decision is not None:
            raise NotActive(
                f"approval {approval_id!r} is already {record.status}", field="approvalId"
            )
        pending.decision = decision
        pending.decided_by = decided_by
        pending.answers = answers
        pending.content = content
        pending.answered.set()
        with trio.move_on_after(self.config.turns.request_timeout_s):
            await pending.finished.wait()
        return self.store.get_approval(approval_id) or record

    def server_resolved(self, params: dict[str, Any]) -> None:
        """``serverRequest/resolved``: the server no longer waits (answered or turn ended)."""
        request_id = params.get("requestId")
        for pending in list(self._pending.values()):
            if pending.request.id == request_id and pending.decision is None:
                pending.decision = "cancel"
                pending.decided_by = "server"
                pending.answered.set()

    async def connection_closed(self, *, server_survives: bool = False) -> None:
        """The connection ended.

        If the server died with it (a spawned child), nothing can be answered any more: the
        records are closed. If it may have survived (an external server), its pending requests
        are kept, detached, until :meth:`reconnected` has given it the chance to replay them.
        """
        for pending in list(self._pending.values()):
            if server_survives:
                pending.detached = True
                pending.rebound = trio.Event()
            elif pending.decision is None:
                pending.decision = "cancel"
                pending.decided_by = "transport-closed"
                pending.answered.set()

    def reconnected(self) -> None:
        """After a reconnect and ``thread/resume``: requests not replayed in time are closed."""
        if any(p.detached for p in self._pending.values()):
            self._tasks.start_soon(self._close_unreplayed, name="close approvals not replayed")

    async def _close_unreplayed(self) -> None:
        with trio.move_on_after(REPLAY_GRACE_S):
            while any(p.detached for p in self._pending.values()):
                self._replayed = trio.Event()  # replays arrive through handle_request
                await self._replayed.wait()
        for pending in list(self._pending.values()):
            if pending.detached and pending.decision is None:
                pending.decision = "cancel"
                pending.decided_by = "transport-closed"
                pending.answered.set()

    async def recover(self) -> None:
        """On start: requests left pending by a previous daemon died with its connection."""
        for approval in self.store.list_approvals():
            if approval.status == "pending":
                await self.store.record(
                    "approval.cancelled",
                    f"{approval.method} was pending when codexd stopped; its request is gone.",
                    level="warn",
                    detail={"approvalId": approval.approval_id, "decidedBy": "restart"},
                    session_id=approval.session_id,
                    records=[
                        attrs.evolve(
                            approval,
                            status=APPROVAL.move(approval.status, "cancelled"),
                            decided_by="restart",
                            decided_at=_time.now_iso(),
                        )
                    ],
                )

    def list(self, *, status: str | None = None, session_id: str | None = None) -> list[Approval]:
        return [
            a
            for a in self.store.list_approvals()
            if (status is None or a.status == status)
            and (session_id is None or a.session_id == session_id)
        ]
