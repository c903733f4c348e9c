"""Thread operations beyond turns: list Codex's threads, fork, revert, compact, rename, review.

Each is one app-server request on a session's thread plus the record of what it changed,
built on :class:`~codexd._sessions.SessionManager` (which owns the sessions and the thread each
is bound to). Version differences are handled here: ``thread/revert`` (0.153+) versus
``thread/rollback`` (0.149), ``excludeTurns`` only where the server takes it.
"""

from __future__ import annotations

from typing import Any

from ._errors import InvalidRequest
from ._params import (
    ReviewStartParams,
    SessionForkParams,
    SessionRenameParams,
    SessionRevertParams,
    ThreadListParams,
)
from ._records import ReviewAccepted, Session, ThreadList, to_wire_compact
from ._sessions import SessionManager, changed
from ._store import patch

JsonObject = dict[str, Any]

#: Session settings ``thread/fork`` accepts (it takes no ``personality``).
_FORK_SETTINGS = frozenset(
    {
        "approvalPolicy",
        "baseInstructions",
        "config",
        "cwd",
        "developerInstructions",
        "model",
        "modelProvider",
        "sandbox",
        "serviceTier",
    }
)


class ThreadOps:
    """The thread operations of the API; see the module docstring."""

    def __init__(self, sessions: SessionManager) -> None:
        self.sessions = sessions
        self.store = sessions.store
        self.provider = sessions.provider

    async def list_threads(self, params: ThreadListParams) -> ThreadList:
        """Codex's threads, each marked with the codexd session on it (``codexdSessionId``)."""
        self.sessions.require_mode()
        client = await self.provider.client()
        result = await client.request("thread/list", to_wire_compact(params))
        owners: dict[str, str] = {}
        for s in self.store.list_sessions():  # an active session wins over closed ones
            if s.thread_id and (s.status == "active" or s.thread_id not in owners):
                owners[s.thread_id] = s.session_id
        data = [
            {**t, "codexdSessionId": owners.get(str(t.get("id")))}
            for t in result.get("data") or []
            if isinstance(t, dict)
        ]
        cursor = result.get("nextCursor")
        return ThreadList(data, cursor if isinstance(cursor, str) else None)

    async def fork_session(self, params: SessionForkParams) -> Session:
        """A new session on ``thread/fork`` of the session's thread: the model sees its history."""
        self.sessions.require_mode()
        source = self.sessions.active(params.session_id)
        assert source.thread_id is not None
        client = await self.provider.client()
        request: JsonObject = {
            "threadId": source.thread_id,
            **{k: v for k, v in source.settings.items() if k in _FORK_SETTINGS},
        }
        if params.last_turn_id:
            request["lastTurnId"] = params.last_turn_id
        if client.exclude_turns_ok:
            request["excludeTurns"] = True
        result = await client.request("thread/fork", request)
        session = self.sessions.new_session(
            result,
            (params.purpose or source.purpose).strip(),
            dict(params.metadata),
            dict(source.settings),
            forked_from=source.session_id,
        )
        await self.sessions.record_new(
            "session.forked", f"Forked {source.session_id} into", session
        )
        return session

    async def revert_session(self, params: SessionRevertParams) -> Session:
        """Drop the last ``turns`` turns (``thread/revert``; ``thread/rollback`` before 0.153)."""
        self.sessions.require_mode()
        session = self.sessions.active(params.session_id)
        thread_id, n = session.thread_id, params.turns
        client = await self.provider.client()
        read = await client.request("thread/read", {"threadId": thread_id, "includeTurns": True})
        turns = [t for t in (read.get("thread") or {}).get("turns") or [] if isinstance(t, dict)]
        if n > len(turns):
            raise InvalidRequest(f"the thread has only {len(turns)} turn(s)", field="turns")
        if client.paginated:
            before = turns[-n].get("id")
            await client.request("thread/revert", {"threadId": thread_id, "beforeTurnId": before})
        else:
            await client.request("thread/rollback", {"threadId": thread_id, "numTurns": n})
        remaining = turns[:-n]
        last = remaining[-1] if remaining else {}
        await self.store.record(
            "session.reverted",
            f"Dropped the last {n} turn(s) of session {session.session_id}.",
            detail={"sessionId": session.session_id, "threadId": thread_id, "turns": n},
            session_id=session.session_id,
            records=[
                patch(
                    Session,
                    session.session_id,
                    changed(
                        current_turn_id=None,
                        last_turn_id=last.get("id"),
                        last_turn_status=last.get("status"),
                    ),
                )
            ],
        )
        return self.sessions.get(session.session_id)

    async def compact_session(self, session_id: str) -> Session:
        """``thread/compact/start``: Codex summarizes the history in a turn of its own."""
        self.sessions.require_mode()
        session = self.sessions.active(session_id)
        client = await self.provider.client()
        await client.request("thread/compact/start", {"threadId": session.thread_id})
        await self.store.record(
            "session.compacting",
            f"Compacting session {session_id} (a turn of its own follows).",
            detail={"sessionId": session_id, "threadId": session.thread_id},
            session_id=session_id,
        )
        return self.sessions.get(session_id)

    async def rename_session(self, params: SessionRenameParams) -> Session:
        """``thread/name/set``: name the session's thread (Codex's threads list shows it)."""
        self.sessions.require_mode()
        session = self.sessions.active(params.session_id)
        client = await self.provider.client()
        await client.request(
            "thread/name/set", {"threadId": session.thread_id, "name": params.name}
        )
        await self.store.record(
            "session.renamed",
            f"Renamed session {session.session_id} to {params.name!r}.",
            detail={"sessionId": session.session_id, "name": params.name},
            session_id=session.session_id,
            records=[patch(Session, session.session_id, changed(name=params.name))],
        )
        return self.sessions.get(session.session_id)

    async def start_review(self, params: ReviewStartParams) -> ReviewAccepted:
        """``review/start``: a review as a turn; ``turn/wait`` waits for it like any turn.

        Codex reports an inline review as the response's turn (X), but its ``turn/started``
        carries another id whose ``rootTurnId`` is X; the notification table folds that in.
        """
        self.sessions.require_mode()
        since = self.store.last_seq  # every event of the review will be numbered after it
        session = self.sessions.active(params.session_id)
        assert session.thread_id is not None
        client = await self.provider.client()
        request: JsonObject = {"threadId": session.thread_id, "target": params.target}
        if params.delivery:
            request["delivery"] = params.delivery
        result = await client.request("review/start", request)
        turn_id = str((result.get("turn") or {}).get("id"))
        review_thread = result.get("reviewThreadId")
        review_thread = review_thread if isinstance(review_thread, str) else session.thread_id
        self.sessions.turns.reviews[review_thread] = turn_id
        await self.sessions.accept(
            session, review_thread, turn_id, "review.started", f"Started review turn {turn_id}"
        )
        return ReviewAccepted(turn_id, review_thread, self.sessions.get(session.session_id), since)
