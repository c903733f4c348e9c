"""Typed events of one turn or one run, read from the daemon's event log.

The daemon records every app-server notification of a session as an ``app-server.<method>``
event (its params as the detail) and adds its own (``turn.accepted``, ``approval.requested``,
``turn.settled``, ...). :class:`TurnFilter` picks out the events of one turn and
:func:`turn_event` turns each into a small frozen record a program can match on with
``isinstance``; :func:`run_event` does the same for ``codex exec`` runs. Every typed event keeps
the :class:`~codexd._records.Event` it came from (``.event``: seq, time, full detail).

Pure functions and records: no I/O here.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._records import FINAL_RUN_STATUSES, FINAL_TURN_STATUSES, Event, JsonObject

#: Events codexd records when it ends a turn itself (watchdog, lost connection, restart).
SETTLE_TYPES: frozenset[str] = frozenset(
    {
        "turn.settled",
        "turn.watchdog.failed",
        "turn.interrupt.timeout",
        "app-server.turn.completed.missing",
    }
)


# ---- turn events ------------------------------------------------------------------------------


@attrs.frozen
class TurnStarted:
    """The app-server started the turn (``turn/started``)."""

    turn_id: str
    event: Event


@attrs.frozen
class TextDelta:
    """A chunk of the agent's message; consecutive chunks may be merged (``merge_deltas``)."""

    item_id: str
    text: str
    event: Event


@attrs.frozen
class ItemStarted:
    """An item of the turn began: a user or agent message, a command, a file change, ..."""

    item_id: str
    item_type: str
    item: JsonObject
    event: Event


@attrs.frozen
class ItemCompleted:
    """An item of the turn ended; ``text`` is the agent's message for ``agentMessage`` items."""

    item_id: str
    item_type: str
    item: JsonObject
    event: Event

    @property
    def text(self) -> str | None:
        value = self.item.get("text")
        return value if isinstance(value, str) else None


@attrs.frozen
class CommandOutput:
    """Output a running command printed (``item/commandExecution/outputDelta``)."""

    item_id: str
    output: str
    event: Event


@attrs.frozen
class CommandCompleted:
    """A command of the turn ended, with its exit code and its whole output."""

    item_id: str
    command: str
    status: str
    exit_code: int | None
    output: str | None
    item: JsonObject
    event: Event


@attrs.frozen
class ApprovalRequested:
    """The app-server asked for a decision. ``needs_answer`` when the daemon's policy is
    ``ask``: answer with :meth:`codexd.Client.respond` (else the policy answered already)."""

    approval_id: str
    method: str
    policy: str | None
    event: Event

    @property
    def needs_answer(self) -> bool:
        return self.policy == "ask"


@attrs.frozen
class ApprovalDecided:
    """An approval of the turn was answered (``accepted``...) or closed unanswered."""

    approval_id: str
    decision: str | None
    decided_by: str | None
    event: Event


@attrs.frozen
class TurnWarning:
    """Something the program may want to know: a warning, a retried error, a stalled turn."""

    message: str
    event: Event


@attrs.frozen
class UsageUpdated:
    """Token usage of the thread after a model response (``thread/tokenUsage/updated``)."""

    usage: JsonObject
    event: Event


@attrs.frozen
class TurnCompleted:
    """The turn ended: the last event of a turn's stream."""

    turn_id: str
    status: str
    final_message: str | None
    error: JsonObject | None
    #: The last token usage seen in the stream (``None`` if none was reported).
    usage: JsonObject | None
    event: Event


@attrs.frozen
class OtherTurnEvent:
    """Any other event of the turn (reasoning deltas, plan updates, ...): see ``event``."""

    event: Event


TurnEvent = (
    TurnStarted
    | TextDelta
    | ItemStarted
    | ItemCompleted
    | CommandOutput
    | CommandCompleted
    | ApprovalRequested
    | ApprovalDecided
    | TurnWarning
    | UsageUpdated
    | TurnCompleted
    | OtherTurnEvent
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _obj(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {}


def final_message_of(turn: JsonObject) -> str | None:
    """The last agent message among a completed turn's items (``turn/completed``)."""
    items = turn.get("items")
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("type") == "agentMessage":
            text = item.get("text")
            if isinstance(text, str):
                return text
    return None


@attrs.define
class TurnFilter:
    """Which events of a session belong to one turn, and what the turn has shown so far.

    An event belongs to the turn when its detail names it (``turnId``, ``turn.id`` or, for a
    review, ``turn.rootTurnId``), when it answers an approval of the turn, or when it is a
    warning of the session without a turn id (the app-server sends those mid-turn).
    """

    turn_id: str
    approvals: set[str] = attrs.field(factory=set)
    deltas: dict[str, list[str]] = attrs.field(factory=dict)
    usage: JsonObject | None = None
    done: bool = False

    def belongs(self, event: Event) -> bool:
        detail = event.detail or {}
        turn_id = detail.get("turnId")
        if turn_id is None:
            turn = _obj(detail.get("turn"))
            turn_id = turn.get("id")
            if turn_id != self.turn_id and turn.get("rootTurnId") == self.turn_id:
                return True
        if turn_id is not None:
            return bool(turn_id == self.turn_id)
        if event.type in ("approval.decided", "approval.cancelled", "approval.rebound"):
            return detail.get("approvalId") in self.approvals
        return event.type in ("app-server.warning", "app-server.error")

    def classify(self, event: Event) -> TurnEvent:
        """The typed form of an event that :meth:`belongs` to the turn."""
        typed = self._classify(event)
        if isinstance(typed, TurnCompleted):
            self.done = True
        return typed

    def _classify(self, event: Event) -> TurnEvent:
        detail = event.detail or {}
        kind = event.type
        if kind == "app-server.turn.started":
            return TurnStarted(self.turn_id, event)
        if kind == "app-server.item.agentMessage.delta":
            item_id, delta = _str(detail.get("itemId")) or "", _str(detail.get("delta")) or ""
            self.deltas.setdefault(item_id, []).append(delta)
            return TextDelta(item_id, delta, event)
        if kind in ("app-server.item.started", "app-server.item.completed"):
            return self._item(kind.endswith("started"), _obj(detail.get("item")), event)
        if kind == "app-server.item.commandExecution.outputDelta":
            return CommandOutput(
                _str(detail.get("itemId")) or "", _str(detail.get("delta")) or "", event
            )
        if kind == "approval.requested":
            approval_id = _str(detail.get("approvalId")) or ""
            self.approvals.add(approval_id)
            method = _str(detail.get("method")) or ""
            return ApprovalRequested(approval_id, method, _str(detail.get("policy")), event)
        if kind in ("approval.decided", "approval.cancelled"):
            approval_id = _str(detail.get("approvalId")) or ""
            self.approvals.discard(approval_id)
            return ApprovalDecided(
                approval_id,
                _str(detail.get("decision")),
                _str(detail.get("decidedBy")),
                event,
            )
        if kind == "app-server.thread.tokenUsage.updated":
            self.usage = _obj(detail.get("tokenUsage"))
            return UsageUpdated(self.usage, event)
        if kind == "app-server.turn.completed":
            turn = _obj(detail.get("turn"))
            if turn.get("id") == self.turn_id or turn.get("rootTurnId") == self.turn_id:
                return self._completed(
                    _str(turn.get("status")) or "completed",
                    final_message_of(turn),
                    turn.get("error"),
                    event,
                )
        if kind in SETTLE_TYPES and detail.get("status") in FINAL_TURN_STATUSES:
            return self._completed(str(detail["status"]), None, detail.get("error"), event)
        if kind == "app-server.error" and not detail.get("willRetry"):
            return OtherTurnEvent(event)  # turn/completed (failed) follows
        if kind in ("app-server.warning", "app-server.error") or event.level == "warn":
            message = detail.get("message")
            if kind == "app-server.error":
                message = _obj(detail.get("error")).get("message", message)
            return TurnWarning(str(message or event.message), event)
        return OtherTurnEvent(event)

    def _item(self, started: bool, item: JsonObject, event: Event) -> TurnEvent:
        item_id, item_type = _str(item.get("id")) or "", _str(item.get("type")) or ""
        if started:
            return ItemStarted(item_id, item_type, item, event)
        if item_type == "commandExecution":
            exit_code = item.get("exitCode")
            return CommandCompleted(
                item_id,
                _str(item.get("command")) or "",
                _str(item.get("status")) or "",
                exit_code if isinstance(exit_code, int) else None,
                _str(item.get("aggregatedOutput")),
                item,
                event,
            )
        return ItemCompleted(item_id, item_type, item, event)

    def _completed(self, status: str, final: str | None, error: Any, event: Event) -> TurnCompleted:
        if final is None and self.deltas:
            final = "".join(list(self.deltas.values())[-1])
        return TurnCompleted(
            self.turn_id,
            status,
            final,
            error if isinstance(error, dict) else None,
            self.usage,
            event,
        )


def merge_deltas(first: TextDelta, more: list[TextDelta]) -> TextDelta:
    """One delta holding ``first`` and ``more`` (same item, in order); the last event kept."""
    if not more:
        return first
    text = first.text + "".join(d.text for d in more)
    return TextDelta(first.item_id, text, more[-1].event)


# ---- run events -------------------------------------------------------------------------------


@attrs.frozen
class RunStatusChanged:
    """The run was queued, started, or queued again after a restart."""

    status: str
    event: Event


@attrs.frozen
class RunItem:
    """One JSON event ``codex exec`` printed (``item.started``, ``turn.completed``, ...)."""

    type: str
    data: JsonObject
    event: Event


@attrs.frozen
class RunFinished:
    """The run reached a final status: the last event of a run's stream."""

    status: str
    error: str | None
    exit_code: int | None
    event: Event


@attrs.frozen
class OtherRunEvent:
    """Any other event of the run (invalid output lines, ...): see ``event``."""

    event: Event


RunEvent = RunStatusChanged | RunItem | RunFinished | OtherRunEvent


def run_event(event: Event) -> RunEvent:
    """The typed form of an event of a run."""
    detail = event.detail or {}
    kind = event.type
    if kind == "run.item":
        return RunItem(_str(detail.get("type")) or "", detail, event)
    status = kind.removeprefix("run.")
    final = detail.get("status")
    if kind.startswith("run.") and final in FINAL_RUN_STATUSES:  # run.completed, run.invalid...
        exit_code = detail.get("exitCode")
        return RunFinished(
            str(final),
            _str(detail.get("error")),
            exit_code if isinstance(exit_code, int) else None,
            event,
        )
    if kind in ("run.queued", "run.started", "run.requeued"):
        return RunStatusChanged("queued" if status == "requeued" else status, event)
    return OtherRunEvent(event)
