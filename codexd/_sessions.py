"""Sessions and turns on the app-server: create/resume threads, start/steer/interrupt/wait turns.

:class:`SessionManager` owns the session records and the thread each is bound to; what
notifications change in them lives in :mod:`codexd._notifications`. Each turn in flight is
followed by a tracker with an idle watchdog (:mod:`codexd._turns`).
When the connection closes with turns in flight (the binary exits at once on SIGTERM or stdin EOF,
with no ``turn/completed``), each such turn is failed with an ``app-server.turn.completed.missing``
event carrying the diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import trio

from . import _time
from ._appserver import AppServerClient
from ._config import Config
from ._errors import (
    AppServerError,
    AppServerTimeout,
    CodexdError,
    InvalidRequest,
    NotActive,
    NotFound,
    WrongMode,
)
from ._params import (
    SessionCreateParams,
    TurnStartParams,
    check_directory,
)
from ._records import (
    FINAL_TURN_STATUSES,
    Session,
    TurnAccepted,
    TurnResult,
    to_camel,
    to_wire_compact,
)
from ._states import SESSION
from ._store import Store, Update, new_id, patch
from ._tasks import TaskHost
from ._turns import ClientProvider, TurnBook, final_agent_message

JsonObject = dict[str, Any]


def _text_input(value: Any) -> list[JsonObject]:
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequest("input must be a non-empty string or item list", field="input")
        return [{"type": "text", "text": value, "text_elements": []}]
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        return value
    raise InvalidRequest("input must be a non-empty string or item list", field="input")


def _patch_session(session_id: str, change: Callable[[Session], Session]) -> Update:
    return patch(Session, session_id, change)


def _with_error(error: str) -> Callable[[Session], Session]:
    return lambda s: attrs.evolve(s, last_error=error, updated_at=_time.now_iso())


def changed(**changes: Any) -> Callable[[Session], Session]:
    return lambda s: attrs.evolve(s, updated_at=_time.now_iso(), **changes)


#: ``turn/start`` options Codex accepts only with the experimental API (every version seen).
EXPERIMENTAL_TURN_OPTIONS = ("collaboration_mode",)


class SessionManager:
    """Sessions (threads) and their turns; the consumer of app-server notifications."""

    def __init__(
        self, store: Store, config: Config, provider: ClientProvider, tasks: TaskHost
    ) -> None:
        self.store = store
        self.config = config
        self.provider = provider
        self._thread_sessions: dict[str, str] = {
            s.thread_id: s.session_id
            for s in store.list_sessions()
            if s.status == "active" and s.thread_id
        }
        self.turns = TurnBook(store, config, provider, tasks, self.sessions_of_thread)

    # ---- helpers -------------------------------------------------------------------------

    def require_mode(self) -> None:
        if self.config.mode != "app-server":
            raise WrongMode("sessions and turns require app-server mode (config mode is 'exec')")

    def get(self, session_id: str) -> Session:
        """The session, or :class:`NotFound` naming ``sessionId``."""
        return self._session(session_id)

    def _session(self, session_id: str) -> Session:
        session = self.store.get_session(session_id)
        if session is None:
            raise NotFound(f"unknown session {session_id!r}", field="sessionId")
        return session

    def active(self, session_id: str) -> Session:
        session = self._session(session_id)
        if session.status != "active":
            raise NotActive(f"session {session_id!r} is closed", field="sessionId")
        if not session.thread_id:
            raise NotActive(f"session {session_id!r} has no app-server thread", field="sessionId")
        return session

    def session_of_thread(self, thread_id: str) -> str | None:
        """The id of the active session bound to ``thread_id``, if any."""
        return self._thread_sessions.get(thread_id)

    def sessions_of_thread(self, thread_id: str) -> list[Session]:
        """Every active session on ``thread_id`` (normally one)."""
        return [
            s
            for s in self.store.list_sessions()
            if s.thread_id == thread_id and s.status == "active"
        ]

    # ---- sessions ------------------------------------------------------------------------

    async def create_session(self, params: SessionCreateParams) -> Session:
        """Start a new app-server thread (or resume ``threadId``) and record it as a session."""
        self.require_mode()
        await check_directory(params.cwd, "cwd")
        settings = to_wire_compact(params.settings())
        thread_id = params.thread_id
        client = await self.provider.client()
        if thread_id:
            result = await client.request(
                "thread/resume", client.resume_params(thread_id, settings)
            )
        else:
            result = await client.request("thread/start", settings)
        session = self.new_session(
            result, params.purpose.strip(), dict(params.metadata), settings, track_last_turn=True
        )
        kind = "resumed" if thread_id else "created"
        await self.record_new(f"session.{kind}", f"{kind.capitalize()} session", session)
        return session

    def new_session(
        self,
        result: JsonObject,
        purpose: str,
        metadata: dict[str, str],
        settings: JsonObject,
        *,
        track_last_turn: bool = False,
        forked_from: str | None = None,
    ) -> Session:
        """A session record for a ``thread/start|resume|fork`` result; binds its thread."""
        thread = result.get("thread") or {}
        now = _time.now_iso()
        turns = thread.get("turns") or [] if track_last_turn else []
        last_turn = turns[-1] if turns else {}
        name = thread.get("name")
        session = Session(
            session_id=new_id("session"),
            purpose=purpose,
            thread_id=thread.get("id"),
            status="active",
            endpoint=self.provider.endpoint,
            child_pid=self.store.child_state.pid,
            created_at=now,
            updated_at=now,
            cwd=result.get("cwd"),
            model=result.get("model"),
            model_provider=result.get("modelProvider"),
            service_tier=result.get("serviceTier"),
            reasoning_effort=result.get("reasoningEffort"),
            last_turn_id=last_turn.get("id"),
            last_turn_status=last_turn.get("status"),
            metadata=metadata,
            settings=settings,
            name=name if isinstance(name, str) else None,
            forked_from=forked_from,
        )
        if session.thread_id:
            self._thread_sessions[session.thread_id] = session.session_id
        return session

    async def record_new(self, event_type: str, what: str, session: Session) -> None:
        await self.store.record(
            event_type,
            f"{what} {session.session_id} for thread {session.thread_id}.",
            detail={
                "sessionId": session.session_id,
                "threadId": session.thread_id,
                "purpose": session.purpose,
                "model": session.model,
                "forkedFrom": session.forked_from,
            },
            session_id=session.session_id,
            records=[session],
        )

    async def close_session(self, session_id: str) -> Session:
        """Close a session (idempotent): interrupt its running turn, unsubscribe its thread.

        The interrupt is bounded by ``turns.interrupt_timeout_s`` (the turn ends
        ``interrupted``, or is failed if it does not end); so is ``thread/unsubscribe``, whose
        failure is only noted in the ``session.closed`` event. The thread stays in CODEX_HOME.
        """
        session = self._session(session_id)
        if session.status == "closed":
            return session
        detail: JsonObject = {"sessionId": session_id, "threadId": session.thread_id}
        if session.thread_id and self.config.mode == "app-server":
            detail.update(await self._release_thread(session, session.thread_id))
        await self.store.record(
            "session.closed",
            f"Closed session {session_id}.",
            detail=detail,
            session_id=session_id,
            records=[
                Update(
                    Session,
                    session_id,
                    lambda s: (
                        attrs.evolve(
                            s,
                            status=SESSION.move(s.status, "closed"),
                            current_turn_id=None,
                            updated_at=_time.now_iso(),
                        )
                        if s is not None and SESSION.allows(s.status, "closed")
                        else None  # closed twice at once: it closes once
                    ),
                )
            ],
        )
        return self._session(session_id)

    async def _release_thread(self, session: Session, thread_id: str) -> JsonObject:
        bound = self.config.turns.interrupt_timeout_s
        out: JsonObject = {}
        turn_id = session.current_turn_id
        if turn_id:
            turn = self.turns.tracker(session.session_id, thread_id, turn_id)
            if not turn.done.is_set():
                await self.turns.interrupt(turn, reason="session closed")
            out.update(interruptedTurnId=turn_id, turnStatus=turn.status)
        if self._thread_sessions.get(thread_id) == session.session_id:
            del self._thread_sessions[thread_id]
        others = [
            s for s in self.sessions_of_thread(thread_id) if s.session_id != session.session_id
        ]
        if others:
            return out
        with trio.move_on_after(bound) as scope:
            try:
                client = await self.provider.client()
                result = await client.request(
                    "thread/unsubscribe", {"threadId": thread_id}, timeout_s=bound
                )
                out["unsubscribed"] = result.get("status") if isinstance(result, dict) else None
            except CodexdError as exc:
                out["unsubscribeError"] = str(exc)
        if scope.cancelled_caught:
            out["unsubscribeError"] = f"no answer within {bound:g}s"
        return out

    # ---- turns ---------------------------------------------------------------------------

    async def start_turn(self, params: TurnStartParams) -> TurnAccepted:
        """Start a turn, or steer the running one when ``expectedTurnId`` is given."""
        self.require_mode()
        since = self.store.last_seq  # every event of this turn will be numbered after it
        session_id = params.session_id
        expected_turn_id = params.expected_turn_id
        session = self.active(session_id)
        items = _text_input(params.input)
        self._check_experimental(params)
        overrides = to_wire_compact(params.options())
        client = await self.provider.client()
        assert session.thread_id is not None
        if expected_turn_id:
            result = await client.request(
                "turn/steer",
                {"threadId": session.thread_id, "expectedTurnId": expected_turn_id, "input": items},
            )
            turn_id = str(result.get("turnId") or expected_turn_id)
        else:
            result = await client.request(
                "turn/start", {"threadId": session.thread_id, "input": items, **overrides}
            )
            turn_id = str((result.get("turn") or {}).get("id"))
        await self.accept(
            session,
            session.thread_id,
            turn_id,
            "turn.accepted",
            f"{'Steered' if expected_turn_id else 'Accepted'} turn {turn_id}",
            steered=bool(expected_turn_id),
        )
        return TurnAccepted(turn_id, self._session(session_id), bool(expected_turn_id), since)

    def _check_experimental(self, params: TurnStartParams) -> None:
        if self.config.appserver.experimental_api:
            return
        for name in EXPERIMENTAL_TURN_OPTIONS:
            if getattr(params, name) is not None:
                field = to_camel(name)
                raise InvalidRequest(
                    f"{field} needs Codex's experimental API:"
                    " set appserver.experimental_api = true in codexd's config",
                    field=field,
                )

    async def accept(
        self,
        session: Session,
        thread_id: str,
        turn_id: str,
        event_type: str,
        message: str,
        *,
        steered: bool = False,
    ) -> None:
        """Track a turn codexd started (a tracker with its watchdog) and record it."""
        session_id = session.session_id
        turn = self.turns.tracker(session_id, thread_id, turn_id)
        turn.last_activity = trio.current_time()
        changes: list[Update] = []
        if not turn.done.is_set() and thread_id == session.thread_id:
            status = turn.status
            changes.append(
                _patch_session(
                    session_id,
                    changed(current_turn_id=turn_id, last_turn_id=turn_id, last_turn_status=status),
                )
            )
        await self.store.record(
            event_type,
            f"{message} for session {session_id}.",
            detail={
                "sessionId": session_id,
                "threadId": thread_id,
                "turnId": turn_id,
                "steered": steered,
            },
            session_id=session_id,
            records=changes,
        )

    async def interrupt_turn(self, session_id: str) -> TurnResult:
        """Interrupt the session's current turn; bounded, and the turn settles either way."""
        self.require_mode()
        session = self.active(session_id)
        turn_id = session.current_turn_id
        if not turn_id:
            raise NotActive(f"session {session_id!r} has no turn in progress", field="sessionId")
        assert session.thread_id is not None
        turn = self.turns.tracker(session_id, session.thread_id, turn_id)
        await self.turns.interrupt(turn, reason="requested")
        return turn.result()

    async def wait_turn(
        self, session_id: str, turn_id: str | None = None, timeout_s: float | None = None
    ) -> TurnResult:
        """Wait until the turn ends (or ``timeout_s`` passes); returns status and final message."""
        session = self._session(session_id)
        turn_id = turn_id or session.current_turn_id or session.last_turn_id
        if not turn_id:
            raise NotActive(f"session {session_id!r} has no turn to wait for", field="turnId")
        turn = self.turns.turns.get(turn_id)
        if turn is None:
            if session.last_turn_id == turn_id and session.current_turn_id != turn_id:
                return TurnResult(session_id, turn_id, session.last_turn_status or "unknown")
            raise NotFound(f"unknown turn {turn_id!r} for session {session_id!r}", field="turnId")
        with trio.move_on_after(timeout_s if timeout_s is not None else float("inf")):
            await self.store.wait(turn.done)
        return turn.result()

    # ---- settling ------------------------------------------------------------------------

    async def connection_closed(
        self, diagnostics: JsonObject, *, server_survives: bool = False
    ) -> None:
        """The app-server connection ended: fail every turn still in flight, with diagnostics.

        Unless the server may have survived (an external one): then its turns go on, and they
        are read back after the reconnect (:meth:`settle_orphaned_turns`).
        """
        if server_survives:
            return
        in_flight = [t for t in self.turns.turns.values() if not t.done.is_set()]
        known = {t.turn_id for t in in_flight}
        # Turns codexd only knows from the store (e.g. started before a daemon restart).
        for session in self.store.list_sessions():
            if (
                session.status == "active"
                and session.current_turn_id
                and session.thread_id
                and session.current_turn_id not in known
            ):
                in_flight.append(
                    self.turns.tracker(
                        session.session_id, session.thread_id, session.current_turn_id
                    )
                )
        for turn in in_flight:
            await self.turns.settle(
                turn,
                "failed",
                event_type="app-server.turn.completed.missing",
                error={
                    "message": "app-server connection closed before turn/completed",
                    "failureClass": "transport_closed_before_turn_completed",
                },
                detail={"turnStatusAtClose": turn.status, **diagnostics},
            )

    async def resume_sessions(self, client: AppServerClient) -> None:
        """After a (re)connect: ``thread/resume`` every active session, re-applying settings.

        A thread that never had a turn has no rollout on disk and cannot be resumed: it is
        started afresh with the same settings (nothing is lost) and the session rebound to it.
        Any other failure is recorded on the session, never silently dropped.
        """
        for session in list(self.store.list_sessions()):
            if session.status != "active" or not session.thread_id:
                continue
            try:
                await client.request(
                    "thread/resume", client.resume_params(session.thread_id, session.settings)
                )
                await self.store.record(
                    "session.resumed",
                    f"Resumed session {session.session_id} (thread {session.thread_id}).",
                    detail={"sessionId": session.session_id, "threadId": session.thread_id},
                    session_id=session.session_id,
                    records=[
                        _patch_session(
                            session.session_id,
                            lambda s: attrs.evolve(s, last_error=None, updated_at=_time.now_iso()),
                        )
                    ],
                )
            except (AppServerError, AppServerTimeout) as exc:
                if session.last_turn_id is None and isinstance(exc, AppServerError):
                    await self._rebind(client, session, str(exc))
                    continue
                await self.store.record(
                    "session.resume.failed",
                    f"Could not resume session {session.session_id}: {exc}",
                    level="error",
                    detail={"sessionId": session.session_id, "threadId": session.thread_id},
                    session_id=session.session_id,
                    records=[_patch_session(session.session_id, _with_error(str(exc)))],
                )

    async def settle_orphaned_turns(self, client: AppServerClient, *, fresh_server: bool) -> None:
        """Turns recorded as in flight that no live tracker follows (codexd itself restarted).

        Each is read back with ``thread/read``: a final persisted status settles it. Otherwise,
        on a freshly spawned server the turn died with the old process, so it is failed with
        diagnostics; on an external server it may still run, so it is tracked again (watchdog).
        """
        for session in list(self.store.list_sessions()):
            turn_id = session.current_turn_id
            if session.status != "active" or not turn_id or not session.thread_id:
                continue
            live = self.turns.turns.get(turn_id)
            if live is not None and not live.done.is_set() and fresh_server:
                continue
            turn = self.turns.tracker(session.session_id, session.thread_id, turn_id)
            persisted = await self.turns.read_turn(turn, client)
            status = (persisted or {}).get("status")
            if status in FINAL_TURN_STATUSES:
                await self.turns.settle(
                    turn,
                    str(status),
                    event_type="turn.settled",
                    final_message=final_agent_message(persisted or {}),
                    error=(persisted or {}).get("error"),
                    detail={"source": "thread/read", "after": "restart"},
                    level="warn",
                )
            elif fresh_server:
                await self.turns.settle(
                    turn,
                    "failed",
                    event_type="app-server.turn.completed.missing",
                    error={
                        "message": "the turn was in flight when codexd or its app-server stopped",
                        "failureClass": "daemon_restarted_before_turn_completed",
                    },
                    detail={"persistedStatus": status},
                )

    async def _rebind(self, client: AppServerClient, session: Session, why: str) -> None:
        result = await client.request("thread/start", dict(session.settings))
        thread_id = (result.get("thread") or {}).get("id")
        if session.thread_id:
            self._thread_sessions.pop(session.thread_id, None)
        if thread_id:
            self._thread_sessions[thread_id] = session.session_id
        await self.store.record(
            "session.rebound",
            f"Session {session.session_id} had no turn yet; started thread {thread_id} for it.",
            level="warn",
            detail={
                "sessionId": session.session_id,
                "oldThreadId": session.thread_id,
                "threadId": thread_id,
                "reason": why,
            },
            session_id=session.session_id,
            records=[
                _patch_session(
                    session.session_id,
                    lambda s: attrs.evolve(s, thread_id=thread_id, updated_at=_time.now_iso()),
                )
            ],
        )
