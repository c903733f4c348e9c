"""The typed client against `codexd serve` with the real Codex binary: turns and their streams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

import codexd
from codexd import (
    Client,
    ItemCompleted,
    ItemStarted,
    TextDelta,
    TurnCompleted,
    TurnStarted,
)
from codexd.testing import Reply

from .served import Received, served

ANSWER = "The streamed answer, in several chunks."


async def test_turn_stream_and_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    received = Received()
    received.install(monkeypatch)
    async with served(tmp_path, default=Reply.text(ANSWER)) as s:
        with trio.fail_after(120):
            async with codexd.connect(str(s.state_dir)) as client:
                assert isinstance(client, Client)
                session = await client.create_session(purpose="typed", cwd=s.work)
                before = len(received.results)
                handle = await client.start_turn(session.session_id, "Answer me.")
                # One round trip: the answer says where the turn's events start.
                assert [m for m, _ in received.results[before:]] == ["turn/start"]
                events = [e async for e in handle.stream(merge_deltas=False)]
                result = await handle.wait()
                stored = await client.list_events(after=0, limit=1000)
    assert result.status == "completed"
    since = received.results[before][1]["since"]
    of_turn = [e.seq for e in stored.events if (e.detail or {}).get("turnId") == handle.turn_id]
    assert of_turn and since < min(of_turn)
    assert since >= max(e.seq for e in stored.events if e.type == "session.created")
    assert result.final_message == ANSWER
    kinds = [type(e).__name__ for e in events]
    print(kinds)
    assert isinstance(events[-1], TurnCompleted)
    assert events[-1].final_message == ANSWER
    assert any(isinstance(e, TurnStarted) for e in events)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == ANSWER
    assert any(isinstance(e, ItemStarted) and e.item_type == "userMessage" for e in events)
    assert any(isinstance(e, ItemCompleted) and e.text == ANSWER for e in events)
    assert received.check_schema() > 5


async def _one_turn(client: Client, session_id: str, n: int) -> None:
    handle = await client.start_turn(session_id, f"Turn {n}.")
    if n % 2:
        await handle.wait()  # the stream then replays the whole turn from the store
    merged = n % 3 == 0
    async with handle.stream(merge_deltas=merged) as stream:
        events = [e async for e in stream]
    assert isinstance(events[-1], TurnCompleted), (n, events[-1])
    assert events[-1].status == "completed"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == ANSWER
    assert any(isinstance(e, TurnStarted) for e in events)
    seqs = [e.event.seq for e in events]
    assert seqs == sorted(set(seqs)), "out of order or duplicated"
    # Every stored event that names the turn was streamed: none missed.
    page = await client.list_events(after=handle.since, session_id=session_id, limit=5000)
    named = {
        e.seq
        for e in page.events
        if (e.detail or {}).get("turnId") == handle.turn_id
        or ((e.detail or {}).get("turn") or {}).get("id") == handle.turn_id
    }
    assert named, "the turn left no events"
    if merged:  # merged chunks keep their last event: the text above proves none is missed
        named -= {e.seq for e in page.events if e.type.endswith("agentMessage.delta")}
    missed = [(e.seq, e.type) for e in page.events if e.seq in named - set(seqs)]
    assert not missed, (n, missed, [(e.event.seq, e.event.type) for e in events])


async def test_hundred_turns_streamed_from_first_event_under_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Received()
    received.install(monkeypatch)
    sessions, per_session = 4, 25
    async with served(tmp_path, default=Reply.text(ANSWER)) as s:
        burner = await trio.lowlevel.open_process([sys.executable, "-c", "while True: pass"])
        try:
            with trio.fail_after(300):
                async with codexd.connect(s.state_dir) as client:

                    async def worker(k: int) -> None:
                        session = await client.create_session(purpose=f"load-{k}", cwd=s.work)
                        for i in range(per_session):
                            await _one_turn(client, session.session_id, k * per_session + i)

                    async with trio.open_nursery() as nursery:
                        for k in range(sessions):
                            nursery.start_soon(worker, k)
        finally:
            burner.kill()
            await burner.wait()
    assert len(s.provider.requests) == sessions * per_session
    assert received.check_schema() > sessions * per_session * 10
