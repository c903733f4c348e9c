"""Sessions and turns on the app-server: create/resume threads, start/steer/interrupt/wait turns.

:class:`SessionManager` turns app-server notifications into stored events (``app-server.<method
with dots>``, deltas included) and keeps session records current the way the seed did
(``turn/started``, ``turn/completed`` and ``error`` patch the session of that thread). Each turn
in flight is followed by a tracker with an idle watchdog (:mod:`codexd._turns`).
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
    InvalidRequest,
    NotActive,
    NotFound,
    WrongMode,
)
from ._messages import Notification
from ._params import SessionCreateParams, TurnStartParams, check_directory
from ._process import preview
from ._records import FINAL_TURN_STATUSES, Session, TurnAccepted, TurnResult, to_wire_compact
from ._store import Store, Update, new_id
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


def _patch(session_id: str, change: Callable[[Session], Session]) -> Update:
    """A change to one session, computed in the store task from its latest committed value."""
    return Update(Session, session_id, lambda s: change(s) if s is not None else None)


def _with_error(error: str) -> Callable[[Session], Session]:
    return lambda s: attrs.evolve(s, last_error=error, updated_at=_time.now_iso())


def _event_type(method: str) -> str:
    return "app-server." + method.replace("/", ".")


class SessionManager:
    """Sessions (threads) and their turns; the consumer of app-server notifications."""

    def __init__(
        self, store: Store, config: Config, provider: ClientProvider, tasks: TaskHost
    ) -> None:
        self.store = store
        self.config = config
        self.provider = provider
        self.thread_sessions: dict[str, str] = {
            s.thread_id: s.session_id
            for s in store.list_sessions()
            if s.status == "active" and s.thread_id
        }
        self.on_server_request_resolved: Any = None
        self.turns = TurnBook(store, config, provider, tasks, self._sessions_of_thread)

    # ---- helpers -------------------------------------------------------------------------

    def _require_mode(self) -> None:
        if self.config.mode != "app-server":
            raise WrongMode("sessions and turns require app-server mode (config mode is 'exec')")

    def _session(self, session_id: str) -> Session:
        session = self.store.get_session(session_id)
        if session is None:
            raise NotFound(f"unknown session {session_id!r}", field="sessionId")
        return session

    def _active(self, session_id: str) -> Session:
        session = self._session(session_id)
        if session.status != "active":
            raise NotActive(f"session {session_id!r} is closed", field="sessionId")
        if not session.thread_id:
            raise NotActive(f"session {session_id!r} has no app-server thread", field="sessionId")
        return session

    def _sessions_of_thread(self, thread_id: str) -> list[Session]:
        return [
            s
            for s in self.store.list_sessions()
            if s.thread_id == thread_id and s.status == "active"
        ]

    # ---- sessions ------------------------------------------------------------------------

    async def create_session(self, params: SessionCreateParams) -> Session:
        """Start a new app-server thread (or resume ``threadId``) and record it as a session."""
        self._require_mode()
        await check_directory(params.cwd, "cwd")
        settings = to_wire_compact(params.settings())
        thread_id = params.thread_id
        client = await self.provider.client()
        if thread_id:
            result = await client.request(
                "thread/resume", {"threadId": thread_id, "excludeTurns": True, **settings}
            )
        else:
            result = await client.request("thread/start", settings)
        thread = result.get("thread") or {}
        now = _time.now_iso()
        turns = thread.get("turns") or []
        last_turn = turns[-1] if turns else {}
        session = Session(
            session_id=new_id("session"),
            purpose=params.purpose.strip(),
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
            metadata=dict(params.metadata),
            settings=settings,
        )
        if session.thread_id:
            self.thread_sessions[session.thread_id] = session.session_id
        kind = "resumed" if thread_id else "created"
        await self.store.record(
            f"session.{kind}",
            f"{kind.capitalize()} session {session.session_id} for thread {session.thread_id}.",
            detail={
                "sessionId": session.session_id,
                "threadId": session.thread_id,
                "purpose": session.purpose,
                "model": session.model,
            },
            session_id=session.session_id,
            records=[session],
        )
        return session

    # ---- turns ---------------------------------------------------------------------------

    async def start_turn(self, params: TurnStartParams) -> TurnAccepted:
        """Start a turn, or steer the running one when ``expectedTurnId`` is given."""
        self._require_mode()
        session_id = params.session_id
        expected_turn_id = params.expected_turn_id
        session = self._active(session_id)
        items = _text_input(params.input)
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
        turn = self.turns.tracker(session_id, session.thread_id, turn_id)
        turn.last_activity = trio.current_time()
        changes: list[Update] = []
        if not turn.done.is_set():
            status = turn.status
            changes.append(
                _patch(
                    session_id,
                    lambda s: attrs.evolve(
                        s,
                        current_turn_id=turn_id,
                        last_turn_id=turn_id,
                        last_turn_status=status,
                        updated_at=_time.now_iso(),
                    ),
                )
            )
        await self.store.record(
            "turn.accepted",
            f"{'Steered' if expected_turn_id else 'Accepted'} turn {turn_id}"
            f" for session {session_id}.",
            detail={
                "sessionId": session_id,
                "threadId": session.thread_id,
                "turnId": turn_id,
                "steered": bool(expected_turn_id),
            },
            session_id=session_id,
            records=changes,
        )
        return TurnAccepted(turn_id, self._session(session_id), bool(expected_turn_id))

    async def interrupt_turn(self, session_id: str) -> TurnResult:
        """Interrupt the session's current turn; bounded, and the turn settles either way."""
        self._require_mode()
        session = self._active(session_id)
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

    # ---- notifications -------------------------------------------------------------------

    async def handle_notification(self, note: Notification) -> None:
        """Map one app-server notification to an event and patch sessions and turns."""
        params = note.params if isinstance(note.params, dict) else {}
        method = note.method
        thread_id = params.get("threadId")
        session_id = self.thread_sessions.get(thread_id) if isinstance(thread_id, str) else None
        turn_id = params.get("turnId")
        turn_obj = params.get("turn") if isinstance(params.get("turn"), dict) else None
        if turn_obj is not None:
            turn_id = turn_obj.get("id")
        records: list[Update] = []
        ending: tuple[str, str | None, Any] | None = None
        turn_error: JsonObject | None = None
        level = "info"
        message = f"App-server notification {method}."
        turn = self.turns.turns.get(turn_id) if isinstance(turn_id, str) else None
        if turn is not None:
            turn.last_activity = trio.current_time()

        if method == "item/agentMessage/delta":
            delta = params.get("delta") or ""
            item_id = params.get("itemId")
            if turn is not None and isinstance(item_id, str) and isinstance(delta, str):
                turn.agent_text[item_id] = turn.agent_text.get(item_id, "") + delta
                turn.last_agent_item = item_id
            message = f"delta: {preview(str(delta), 80)}"
        elif method == "turn/started" and turn_obj is not None and isinstance(thread_id, str):
            tid = str(turn_obj.get("id"))
            if session_id is not None:
                turn = self.turns.tracker(session_id, thread_id, tid)
            started_status = str(turn_obj.get("status") or "inProgress")
            records = [
                _patch(
                    s.session_id,
                    lambda s: attrs.evolve(
                        s,
                        current_turn_id=tid,
                        last_turn_id=tid,
                        last_turn_status=started_status,
                        updated_at=_time.now_iso(),
                    ),
                )
                for s in self._sessions_of_thread(thread_id)
            ]
            message = f"App-server turn {tid} started."
        elif method == "turn/completed" and turn_obj is not None and isinstance(thread_id, str):
            tid = str(turn_obj.get("id"))
            status = str(turn_obj.get("status") or "completed")
            records = [
                _patch(
                    s.session_id,
                    lambda s: attrs.evolve(
                        s,
                        current_turn_id=None if s.current_turn_id == tid else s.current_turn_id,
                        last_turn_id=tid,
                        last_turn_status=status,
                        updated_at=_time.now_iso(),
                    ),
                )
                for s in self._sessions_of_thread(thread_id)
            ]
            if turn is None and session_id is not None:
                turn = self.turns.tracker(session_id, thread_id, tid)
            if turn is not None:
                ending = (status, final_agent_message(turn_obj), turn_obj.get("error"))
            level = "error" if status == "failed" else "info"
            message = f"App-server turn {tid} {status}."
        elif method == "error" and isinstance(thread_id, str) and isinstance(turn_id, str):
            will_retry = bool(params.get("willRetry"))
            raw_error = params.get("error")
            error: JsonObject = raw_error if isinstance(raw_error, dict) else {}
            failed_turn = turn_id
            records = [
                _patch(
                    s.session_id,
                    lambda s: attrs.evolve(
                        s,
                        current_turn_id=(s.current_turn_id or failed_turn)
                        if will_retry
                        else (None if s.current_turn_id == failed_turn else s.current_turn_id),
                        last_turn_id=failed_turn,
                        last_turn_status="inProgress" if will_retry else "failed",
                        last_error=str(error.get("message")) if error else s.last_error,
                        updated_at=_time.now_iso(),
                    ),
                )
                for s in self._sessions_of_thread(thread_id)
            ]
            if not will_retry:
                turn_error = error
            level = "warn" if will_retry else "error"
            message = f"App-server turn {turn_id} error: {preview(str(error.get('message', '')))}"
        elif method == "thread/status/changed" and isinstance(thread_id, str):
            message = f"App-server thread {thread_id} status changed."
        elif method == "serverRequest/resolved" and self.on_server_request_resolved is not None:
            await self.on_server_request_resolved(params)

        if records or method in ("turn/completed", "error"):
            # State changes are on disk before anyone waiting on the turn is woken.
            await self.store.record(
                _event_type(method),
                message,
                level=level,  # type: ignore[arg-type]
                detail=params,
                session_id=session_id,
                records=records,
            )
        else:
            await self.store.emit(
                _event_type(method),
                message,
                level=level,  # type: ignore[arg-type]
                detail=params,
                session_id=session_id,
            )
        if turn_error is not None and turn is not None:
            turn.error = turn_error
        if ending is not None and turn is not None and not turn.done.is_set():
            # Committed: now the tracker may end and wake its waiters.
            status, final, error_obj = ending
            turn.status = status
            turn.final_message = final or turn.result().final_message
            turn.error = error_obj or turn.error
            turn.done.set()

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
                    "thread/resume",
                    {"threadId": session.thread_id, "excludeTurns": True, **session.settings},
                )
                await self.store.record(
                    "session.resumed",
                    f"Resumed session {session.session_id} (thread {session.thread_id}).",
                    detail={"sessionId": session.session_id, "threadId": session.thread_id},
                    session_id=session.session_id,
                    records=[
                        _patch(
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
                    records=[_patch(session.session_id, _with_error(str(exc)))],
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
            self.thread_sessions.pop(session.thread_id, None)
        if thread_id:
            self.thread_sessions[thread_id] = session.session_id
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
                _patch(
                    session.session_id,
                    lambda s: attrs.evolve(s, thread_id=thread_id, updated_at=_time.now_iso()),
                )
            ],
        )

    # ---- the watchdog --------------------------------------------------------------------
