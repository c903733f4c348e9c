"""Turns in flight: trackers, the idle watchdog, and settling turns codexd must end itself.

Each turn has a :class:`Turn` tracker fed by the session manager's notification handler. Its
idle watchdog, reset by every event of the turn, fires after ``turns.idle_timeout_s``: the turn
is read back with ``thread/read`` and settled from the persisted status; if it still runs, a
bounded ``turn/interrupt``; if even that gets no answer the app-server is reported wedged (the
supervisor restarts it); if the turn still has not ended it is failed with diagnostics.
codexd never resends a turn itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import trio

from . import _time
from ._appserver import AppServerClient
from ._config import Config
from ._errors import AppServerTimeout, CodexdError
from ._records import FINAL_TURN_STATUSES, Session, TurnResult
from ._states import TURN
from ._store import Store, patch
from ._tasks import TaskHost

JsonObject = dict[str, Any]

#: Finished turn trackers kept in memory (their final message stays available to wait_turn).
KEEP_FINISHED_TURNS = 1000


class ClientProvider(Protocol):
    """What the session manager needs from the connection supervisor."""

    @property
    def endpoint(self) -> str: ...

    async def client(self) -> AppServerClient:
        """A connected, initialized client; waits behind the lifecycle barrier (bounded)."""
        ...

    async def report_wedged(self, reason: str) -> None:
        """The app-server does not even answer an interrupt: restart it (it is wedged)."""
        ...


@attrs.define
class Turn:
    """What codexd knows of one turn: its status, final message, error, last activity."""

    session_id: str
    thread_id: str
    turn_id: str
    status: str = "inProgress"
    final_message: str | None = None
    error: JsonObject | None = None
    usage: JsonObject | None = None
    agent_text: dict[str, str] = attrs.field(factory=dict)
    last_agent_item: str | None = None
    last_activity: float = 0.0
    done: trio.Event = attrs.field(factory=trio.Event)

    def touch(self) -> None:
        """An event of this turn arrived: the idle watchdog starts over."""
        self.last_activity = trio.current_time()

    def add_delta(self, item_id: str, delta: str) -> None:
        """Streamed agent text, kept so a turn settled without its final message still has it."""
        self.agent_text[item_id] = self.agent_text.get(item_id, "") + delta
        self.last_agent_item = item_id

    def end(self, status: str, *, final_message: str | None = None, error: Any = None) -> None:
        """The turn ended (committed): move by the TURN table and wake its waiters.

        A status the table does not know (a newer app-server's) counts as ``failed``.
        """
        if self.done.is_set():
            return
        if status not in TURN.states:
            error = error or {"message": f"the app-server ended the turn as {status!r}"}
            status = "failed"
        self.status = TURN.move(self.status, status)
        if final_message is not None:
            self.final_message = final_message
        if error is not None:
            self.error = error
        self.done.set()

    def result(self) -> TurnResult:
        message = self.final_message
        if message is None and self.last_agent_item is not None:
            message = self.agent_text.get(self.last_agent_item)
        return TurnResult(
            self.session_id, self.turn_id, self.status, message, self.error, self.usage
        )


def final_agent_message(turn: JsonObject) -> str | None:
    items = turn.get("items") or []
    for item in reversed(items):
        if isinstance(item, dict) and item.get("type") == "agentMessage":
            text = item.get("text")
            return text if isinstance(text, str) else None
    return None


class TurnBook:
    """The turns codexd follows, keyed by turn id."""

    def __init__(
        self,
        store: Store,
        config: Config,
        provider: ClientProvider,
        tasks: TaskHost,
        sessions_of_thread: Callable[[str], list[Session]],
    ) -> None:
        self.store = store
        self.config = config
        self.provider = provider
        self._tasks = tasks
        self._sessions_of_thread = sessions_of_thread
        self.turns: dict[str, Turn] = {}
        #: Review turns codexd started, by thread (their inner ``turn/started`` has another id).
        self.reviews: dict[str, str] = {}

    def review_in_flight(self, thread_id: str) -> str | None:
        """The review turn still running on ``thread_id``, if codexd started one."""
        turn_id = self.reviews.get(thread_id)
        turn = self.turns.get(turn_id) if turn_id else None
        if turn is None or turn.done.is_set():
            self.reviews.pop(thread_id, None)
            return None
        return turn_id

    def get(self, turn_id: Any) -> Turn | None:
        """The tracker of ``turn_id`` (any value a notification may hold), if codexd has one."""
        return self.turns.get(turn_id) if isinstance(turn_id, str) else None

    async def interrupt(self, turn: Turn, *, reason: str) -> None:
        bound = self.config.turns.interrupt_timeout_s
        try:
            client = await self.provider.client()
            await client.request(
                "turn/interrupt",
                {"threadId": turn.thread_id, "turnId": turn.turn_id},
                timeout_s=bound,
            )
        except CodexdError as exc:
            if not turn.done.is_set():
                await self.store.emit(
                    "turn.interrupt.failed",
                    f"turn/interrupt for {turn.turn_id} failed: {exc}",
                    level="warn",
                    detail={"turnId": turn.turn_id, "reason": reason, "error": str(exc)},
                    session_id=turn.session_id,
                )
            if isinstance(exc, AppServerTimeout):
                # The server does not even answer an interrupt: it is wedged (stopped, stuck).
                # Restarting it fails this turn with diagnostics and resumes the sessions.
                await self.provider.report_wedged(f"turn/interrupt of {turn.turn_id} timed out")
        with trio.move_on_after(bound):
            await turn.done.wait()
        if not turn.done.is_set():
            await self.settle(
                turn,
                "failed",
                error={"message": f"turn did not end within {bound:g}s of turn/interrupt"},
                event_type="turn.interrupt.timeout",
                detail={"reason": reason},
            )

    async def settle(
        self,
        turn: Turn,
        status: str,
        *,
        event_type: str,
        final_message: str | None = None,
        error: JsonObject | None = None,
        detail: JsonObject | None = None,
        level: str = "error",
    ) -> None:
        """End a turn codexd had to settle itself, persist it, and wake its waiters."""
        if turn.done.is_set():
            return
        turn_id = turn.turn_id
        records = [
            patch(
                Session,
                s.session_id,
                lambda s: attrs.evolve(
                    s,
                    current_turn_id=None if s.current_turn_id == turn_id else s.current_turn_id,
                    last_turn_id=turn_id,
                    last_turn_status=status,
                    updated_at=_time.now_iso(),
                ),
            )
            for s in self._sessions_of_thread(turn.thread_id)
        ]
        await self.store.record(
            event_type,
            f"Turn {turn.turn_id} settled as {status}"
            + (f": {error.get('message')}" if error else "."),
            level=level,  # type: ignore[arg-type]
            detail={
                "sessionId": turn.session_id,
                "threadId": turn.thread_id,
                "turnId": turn.turn_id,
                "status": status,
                "error": error,
                **(detail or {}),
            },
            session_id=turn.session_id,
            records=records,
        )
        turn.end(status, final_message=final_message, error=error)

    async def _watchdog(self, turn: Turn) -> None:
        try:
            await self._watch(turn)
        finally:
            self._forget_finished()

    async def _watch(self, turn: Turn) -> None:
        idle = self.config.turns.idle_timeout_s
        while not turn.done.is_set():
            deadline = turn.last_activity + idle
            with trio.move_on_at(deadline):
                await turn.done.wait()
                return
            if trio.current_time() < turn.last_activity + idle:
                continue  # an event came in meanwhile
            await self._fired(turn)
            return

    def _forget_finished(self) -> None:
        """Keep memory bounded: drop the oldest finished trackers beyond KEEP_FINISHED_TURNS.

        A forgotten turn can still be waited for while it is its session's last turn (the
        session record keeps its final status).
        """
        finished = [tid for tid, t in self.turns.items() if t.done.is_set()]
        for turn_id in finished[: max(0, len(finished) - KEEP_FINISHED_TURNS)]:
            del self.turns[turn_id]

    async def _fired(self, turn: Turn) -> None:
        idle = self.config.turns.idle_timeout_s
        await self.store.emit(
            "turn.watchdog.fired",
            f"No event for turn {turn.turn_id} in {idle:g}s; reading it back.",
            level="warn",
            detail={"turnId": turn.turn_id, "threadId": turn.thread_id},
            session_id=turn.session_id,
        )
        # A short grace: the completion may be in flight right now.
        with trio.move_on_after(min(2.0, idle / 10)):
            await turn.done.wait()
            return
        persisted = await self.read_turn(turn)
        if persisted is not None and persisted.get("status") in FINAL_TURN_STATUSES:
            await self.settle(
                turn,
                str(persisted["status"]),
                event_type="turn.settled",
                final_message=final_agent_message(persisted),
                error=persisted.get("error"),
                detail={"source": "thread/read"},
                level="warn",
            )
            return
        await self.interrupt(turn, reason="watchdog")
        if not turn.done.is_set():
            await self.settle(
                turn,
                "failed",
                event_type="turn.watchdog.failed",
                error={"message": f"turn was idle for {idle:g}s and could not be settled"},
                detail={"persistedStatus": (persisted or {}).get("status")},
            )

    async def read_turn(
        self, turn: Turn, client: AppServerClient | None = None
    ) -> JsonObject | None:
        try:
            client = client or await self.provider.client()
            result = await client.request(
                "thread/read", {"threadId": turn.thread_id, "includeTurns": True}
            )
        except CodexdError:
            return None
        turns: Sequence[Any] = (result.get("thread") or {}).get("turns") or []
        for item in turns:
            if isinstance(item, dict) and item.get("id") == turn.turn_id:
                return item
        return None

    def tracker(self, session_id: str, thread_id: str, turn_id: str) -> Turn:
        turn = self.turns.get(turn_id)
        if turn is None:
            turn = Turn(session_id, thread_id, turn_id, last_activity=trio.current_time())
            self.turns[turn_id] = turn
            self._tasks.start_soon(self._watchdog, turn, name=f"watchdog of turn {turn_id}")
        return turn
