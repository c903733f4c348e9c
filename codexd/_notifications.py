"""App-server notifications: a table from method to handler, each returning what it changes.

Every notification becomes an event ``app-server.<method with dots>`` (its params as the
detail). A handler in :attr:`NotificationTable.handlers` may add session changes (as
:class:`~codexd._store.Update` functions, so they compose with concurrent changes) and an
``after`` step that updates a turn tracker; the event and the changes are committed first, and
only then does ``after`` run (commit, then apply). Methods without a handler are recorded as
they are; a new Codex notification needs no code to be kept.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import attrs

from . import _time
from ._messages import JsonObject, Notification
from ._process import preview
from ._records import EventLevel, Session
from ._store import EventSpec, Store, Update, patch
from ._turns import Turn, TurnBook, final_agent_message


@functools.lru_cache(maxsize=1024)
def event_type(method: str) -> str:
    """``turn/completed`` -> ``app-server.turn.completed`` (memoized: a few methods recur)."""
    return "app-server." + method.replace("/", ".")


class Note(NamedTuple):
    """One notification and what codexd knows of its thread and turn.

    A NamedTuple, not an attrs record: one is made per notification (thousands a second in a
    flood), and a tuple is built in half the time.
    """

    method: str
    params: JsonObject
    thread_id: str | None
    session_id: str | None
    turn_id: str | None
    turn: Turn | None


@attrs.define
class Effect:
    """What a notification changes: its event, session changes, a step after the commit."""

    message: str
    level: EventLevel = "info"
    records: list[Update] = attrs.field(factory=list)
    #: Wait for the commit (turn ends, errors: their waiters wake after it) rather than queue.
    durable: bool = False
    after: Callable[[], None] | None = None


Handler = Callable[[Note], Effect]


class NotificationTable:
    """Maps each notification to an event and its changes; see the module docstring."""

    def __init__(
        self,
        store: Store,
        turns: TurnBook,
        session_of_thread: Callable[[str], str | None],
        sessions_of_thread: Callable[[str], list[Session]],
    ) -> None:
        self.store = store
        self.turns = turns
        self._session_of_thread = session_of_thread
        self._sessions_of_thread = sessions_of_thread
        self.handlers: dict[str, Handler] = {
            "item/agentMessage/delta": self._delta,
            "turn/started": self._turn_started,
            "turn/completed": self._turn_completed,
            "error": self._error,
            "thread/status/changed": self._thread_status,
            "thread/tokenUsage/updated": self._token_usage,
        }

    def _effect(self, notification: Notification) -> tuple[Note, Effect]:
        note = self._note(notification)
        if note.turn is not None:
            note.turn.touch()
        handler = self.handlers.get(note.method)
        effect = handler(note) if handler is not None else Effect(f"App-server {note.method}.")
        return note, effect

    async def handle_batch(
        self,
        notifications: list[Notification],
        failed: Callable[[Notification, Exception], Awaitable[None]],
    ) -> None:
        """Record the notifications of one read, in order, and apply what they change (after
        the commit), batching the streamed ones.

        Consecutive events that only need queueing (deltas and the like) leave as ONE store
        item (:meth:`Store.emit_events`); one that changes state or must be durable flushes
        them first, then goes alone (recorded, waiting for the disk, when ``durable``; else
        queued with its changes), so the order of events and changes is kept. A
        notification that cannot be handled goes to ``failed`` and the rest go on.
        """
        specs: list[EventSpec] = []
        afters: list[tuple[Notification, Callable[[], None]]] = []

        async def flush() -> None:
            if specs:
                await self.store.emit_events(list(specs))
                specs.clear()
            for source, after in afters:
                try:
                    after()
                except Exception as exc:
                    await failed(source, exc)
            afters.clear()

        for notification in notifications:
            try:
                note, effect = self._effect(notification)
            except Exception as exc:
                await flush()
                await failed(notification, exc)
                continue
            if effect.durable or effect.records:
                await flush()
                # Durable: wait for the commit (turn ends wake waiters after it). Session changes
                # alone are queued in order with the event: the reader does not wait for the
                # disk (turn/started must not hold up the turn/start answer behind it), and
                # memory still changes only once they are committed.
                write = self.store.record if effect.durable else self.store.emit
                try:
                    await write(
                        event_type(note.method),
                        effect.message,
                        level=effect.level,
                        detail=note.params,
                        session_id=note.session_id,
                        records=effect.records,
                    )
                    if effect.after is not None:
                        effect.after()
                except Exception as exc:
                    await failed(notification, exc)
                continue
            specs.append(
                (
                    effect.level,
                    event_type(note.method),
                    effect.message,
                    note.params,
                    note.session_id,
                    None,
                )
            )
            if effect.after is not None:
                afters.append((notification, effect.after))
        await flush()

    def _note(self, notification: Notification) -> Note:
        params = notification.params
        thread_id = params.get("threadId")
        thread_id = thread_id if isinstance(thread_id, str) else None
        turn_obj = params.get("turn")
        turn_id = turn_obj.get("id") if isinstance(turn_obj, dict) else params.get("turnId")
        turn_id = turn_id if isinstance(turn_id, str) else None
        return Note(
            notification.method,
            params,
            thread_id,
            self._session_of_thread(thread_id) if thread_id else None,
            turn_id,
            self.turns.get(turn_id),
        )

    def _patch_thread(self, thread_id: str, change: Callable[[Session], Session]) -> list[Update]:
        return [patch(Session, s.session_id, change) for s in self._sessions_of_thread(thread_id)]

    # ---- the handlers -----------------------------------------------------------------------

    def _delta(self, note: Note) -> Effect:
        delta, item_id = note.params.get("delta"), note.params.get("itemId")
        turn = note.turn
        after = None
        if turn is not None and isinstance(item_id, str) and isinstance(delta, str):
            after = lambda: turn.add_delta(item_id, delta)  # noqa: E731
        return Effect(f"delta: {preview(str(delta or ''), 80)}", after=after)

    def _turn_started(self, note: Note) -> Effect:
        turn_obj = note.params.get("turn")
        if note.thread_id is None or note.turn_id is None or not isinstance(turn_obj, dict):
            return Effect("App-server turn/started.")
        turn_id, status = note.turn_id, str(turn_obj.get("status") or "inProgress")
        root = turn_obj.get("rootTurnId")
        if not isinstance(root, str):  # older Codex (0.149) does not say: a review in flight
            root = self.turns.review_in_flight(note.thread_id)
        if root is not None and root != turn_id:
            # Part of another turn (an inline review's inner turn): that turn is the one that
            # completes, so it stays the session's current turn.
            outer = self.turns.get(root)
            if outer is not None:
                outer.touch()
            return Effect(f"App-server turn {turn_id} started (within turn {root}).")
        if note.session_id is not None:
            self.turns.tracker(note.session_id, note.thread_id, turn_id)
        records = self._patch_thread(
            note.thread_id,
            lambda s: attrs.evolve(
                s,
                current_turn_id=turn_id,
                last_turn_id=turn_id,
                last_turn_status=status,
                updated_at=_time.now_iso(),
            ),
        )
        return Effect(f"App-server turn {turn_id} started.", records=records)

    def _turn_completed(self, note: Note) -> Effect:
        turn_obj = note.params.get("turn")
        if note.thread_id is None or note.turn_id is None or not isinstance(turn_obj, dict):
            return Effect("App-server turn/completed.", durable=True)
        turn_id, status = note.turn_id, str(turn_obj.get("status") or "completed")
        records = self._patch_thread(
            note.thread_id,
            lambda s: attrs.evolve(
                s,
                current_turn_id=None if s.current_turn_id == turn_id else s.current_turn_id,
                last_turn_id=turn_id,
                last_turn_status=status,
                updated_at=_time.now_iso(),
            ),
        )
        turn = note.turn
        if turn is None and note.session_id is not None:
            turn = self.turns.tracker(note.session_id, note.thread_id, turn_id)
        after = None
        if turn is not None:
            ended = turn
            final = final_agent_message(turn_obj) or ended.result().final_message
            error = turn_obj.get("error") or ended.error
            after = lambda: ended.end(status, final_message=final, error=error)  # noqa: E731
        return Effect(
            f"App-server turn {turn_id} {status}.",
            level="error" if status == "failed" else "info",
            records=records,
            durable=True,
            after=after,
        )

    def _error(self, note: Note) -> Effect:
        raw = note.params.get("error")
        error: JsonObject = raw if isinstance(raw, dict) else {}
        message = f"App-server turn {note.turn_id} error: {preview(str(error.get('message', '')))}"
        will_retry = bool(note.params.get("willRetry"))
        level: EventLevel = "warn" if will_retry else "error"
        if note.thread_id is None or note.turn_id is None:
            return Effect(message, level=level, durable=True)
        turn_id = note.turn_id

        def change(s: Session) -> Session:
            current: str | None
            if will_retry:
                current = s.current_turn_id or turn_id
            else:
                current = None if s.current_turn_id == turn_id else s.current_turn_id
            return attrs.evolve(
                s,
                current_turn_id=current,
                last_turn_id=turn_id,
                last_turn_status="inProgress" if will_retry else "failed",
                last_error=str(error.get("message")) if error else s.last_error,
                updated_at=_time.now_iso(),
            )

        turn = note.turn
        after = None
        if turn is not None and not will_retry:
            after = lambda: setattr(turn, "error", error)  # noqa: E731
        records = self._patch_thread(note.thread_id, change)
        return Effect(message, level=level, records=records, durable=True, after=after)

    def _token_usage(self, note: Note) -> Effect:
        usage, turn = note.params.get("tokenUsage"), note.turn
        after = None
        if turn is not None and isinstance(usage, dict):
            after = lambda: setattr(turn, "usage", usage)  # noqa: E731
        return Effect(f"Token usage of turn {note.turn_id} updated.", after=after)

    def _thread_status(self, note: Note) -> Effect:
        return Effect(f"App-server thread {note.thread_id} status changed.")
