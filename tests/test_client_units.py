"""The typed client's pure parts: which events belong to a turn, and their typed forms."""

from __future__ import annotations

from typing import Any

from codexd import (
    ApprovalDecided,
    ApprovalRequested,
    CommandCompleted,
    Event,
    OtherRunEvent,
    OtherTurnEvent,
    RunFinished,
    RunItem,
    RunStatusChanged,
    TextDelta,
    TurnCompleted,
    TurnWarning,
    UsageUpdated,
)
from codexd._client_events import TurnFilter, merge_deltas, run_event

_seq = iter(range(1, 10_000))


def ev(type_: str, detail: dict[str, Any] | None = None, level: str = "info") -> Event:
    return Event(next(_seq), "2026-01-01T00:00:00Z", level, type_, type_, detail)  # type: ignore[arg-type]


def test_events_of_the_turn_and_no_other() -> None:
    f = TurnFilter("T")
    assert f.belongs(ev("turn.accepted", {"turnId": "T"}))
    assert f.belongs(ev("app-server.turn.started", {"turn": {"id": "T"}}))
    assert not f.belongs(ev("app-server.item.started", {"turnId": "OTHER", "item": {}}))
    assert not f.belongs(ev("app-server.turn.completed", {"turn": {"id": "OTHER"}}))
    assert not f.belongs(ev("app-server.thread.status.changed", {"threadId": "x"}))
    # A review's turn/started carries another id, rooted at the review's turn.
    assert f.belongs(ev("app-server.turn.started", {"turn": {"id": "Y", "rootTurnId": "T"}}))
    # Session warnings without a turn id arrive mid-turn.
    assert f.belongs(ev("app-server.warning", {"threadId": "x", "message": "careful"}))
    # An approval's decision names only the approval: it belongs once it was requested.
    decided = ev("approval.decided", {"approvalId": "A", "decision": "accept"})
    assert not f.belongs(decided)
    requested = ev("approval.requested", {"approvalId": "A", "turnId": "T", "policy": "ask"})
    assert f.belongs(requested)
    typed = f.classify(requested)
    assert isinstance(typed, ApprovalRequested)
    assert typed.needs_answer
    assert f.belongs(decided)
    assert isinstance(f.classify(decided), ApprovalDecided)


def test_typed_forms() -> None:
    f = TurnFilter("T")
    delta = f.classify(ev("app-server.item.agentMessage.delta", {"itemId": "m", "delta": "Hi"}))
    assert delta == TextDelta("m", "Hi", delta.event)
    command = f.classify(
        ev(
            "app-server.item.completed",
            {
                "turnId": "T",
                "item": {
                    "type": "commandExecution",
                    "id": "c",
                    "command": "ls",
                    "status": "completed",
                    "exitCode": 0,
                    "aggregatedOutput": "a\n",
                },
            },
        )
    )
    assert isinstance(command, CommandCompleted)
    assert (command.command, command.exit_code, command.output) == ("ls", 0, "a\n")
    usage = f.classify(ev("app-server.thread.tokenUsage.updated", {"tokenUsage": {"t": 1}}))
    assert isinstance(usage, UsageUpdated)
    retried = f.classify(
        ev("app-server.error", {"turnId": "T", "willRetry": True, "error": {"message": "slow"}})
    )
    assert retried == TurnWarning("slow", retried.event)
    fatal = f.classify(ev("app-server.error", {"turnId": "T", "error": {"message": "x"}}))
    assert isinstance(fatal, OtherTurnEvent)  # turn/completed (failed) follows
    stalled = f.classify(ev("turn.watchdog.fired", {"turnId": "T"}, level="warn"))
    assert isinstance(stalled, TurnWarning)
    assert not f.done
    done = f.classify(
        ev("app-server.turn.completed", {"turn": {"id": "T", "status": "completed", "items": []}})
    )
    assert isinstance(done, TurnCompleted)
    assert (done.status, done.final_message, done.usage) == ("completed", "Hi", {"t": 1})
    assert f.done


def test_turns_codexd_settled_end_the_stream() -> None:
    for kind in ("turn.settled", "app-server.turn.completed.missing", "turn.watchdog.failed"):
        f = TurnFilter("T")
        error = {"message": "gone"}
        done = f.classify(ev(kind, {"turnId": "T", "status": "failed", "error": error}))
        assert isinstance(done, TurnCompleted), kind
        assert (done.status, done.error) == ("failed", error)
        assert f.done


def test_merged_deltas_keep_the_last_event() -> None:
    a, b, c = (TextDelta("m", t, ev("d")) for t in ("He", "ll", "o"))
    merged = merge_deltas(a, [b, c])
    assert (merged.text, merged.event) == ("Hello", c.event)
    assert merge_deltas(a, []) is a


def test_run_events() -> None:
    queued = ev("run.queued", {"runId": "r"})
    assert run_event(queued) == RunStatusChanged("queued", queued)
    assert isinstance(run_event(ev("run.requeued", {"runId": "r"})), RunStatusChanged)
    item = run_event(ev("run.item", {"type": "item.completed", "item": {}}))
    assert isinstance(item, RunItem)
    assert item.type == "item.completed"
    for kind, status in (("run.completed", "completed"), ("run.invalid", "failed")):
        finished = run_event(ev(kind, {"runId": "r", "status": status, "exitCode": 3}))
        assert isinstance(finished, RunFinished)
        assert (finished.status, finished.exit_code) == (status, 3)
    assert isinstance(run_event(ev("run.output.invalid", {"runId": "r"})), OtherRunEvent)
