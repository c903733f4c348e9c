"""client.events(): resumes from its last seq when dropped or when the daemon restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import codexd
from codexd import Event, TurnCompleted
from codexd.client import open_client
from codexd.testing import Reply

from .served import Received, served


async def test_event_stream_survives_daemon_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Received()
    received.install(monkeypatch)
    got: list[Event] = []
    async with served(tmp_path, default=Reply.text("ok")) as s:
        with trio.fail_after(120):
            async with codexd.connect(s.state_dir) as client:
                first = await client.create_session(cwd=s.work)
                handle = await client.start_turn(first.session_id, "Before the restart.")
                await handle.wait()
                stream = client.events(since=0)
                got.append(await stream.__anext__())  # subscribed, on a connection of its own
                await s.restart()
                # The client's calls reconnect too (the next call after the restart).
                second = await client.create_session(cwd=s.work)
                async for event in stream:
                    got.append(event)
                    detail = event.detail or {}
                    if event.type == "session.created" and detail["sessionId"] == second.session_id:
                        break
                assert stream.reconnects >= 1
                await stream.aclose()
                # A turn on the restarted daemon streams like any other.
                handle = await client.start_turn(second.session_id, "After the restart.")
                events = [e async for e in handle.stream()]
                assert isinstance(events[-1], TurnCompleted)
                assert events[-1].final_message == "ok"
    seqs = [e.seq for e in got]
    assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate across the restart"
    types = [e.type for e in got]
    assert types.count("daemon.started") == 2
    assert "daemon.stopped" in types
    assert types.index("daemon.stopped") < len(types) - types[::-1].index("daemon.started")
    assert received.check_schema() > len(got)


async def test_slow_reader_resumes_from_the_store(tmp_path: Path) -> None:
    """A reader that lets its buffer overflow loses nothing: it resumes from its last seq."""
    async with served(tmp_path, default=Reply.text("A reply with a few chunks of text.")) as s:
        with trio.fail_after(120):
            async with codexd.connect(str(s.state_dir)) as client:
                session = await client.create_session(cwd=s.work)
                since = await client.last_seq()
                stream = client.events(since, session_id=session.session_id, buffer=4)
                async with stream:
                    handle = await client.start_turn(session.session_id, "Talk.")
                    first = await stream.__anext__()  # subscribed; now stop reading
                    await handle.wait()  # meanwhile the turn's events overflow the buffer
                    got = [first]
                    while not (
                        got[-1].type == "app-server.turn.completed"
                        and (got[-1].detail or {}).get("turn", {}).get("id") == handle.turn_id
                    ):
                        got.append(await stream.__anext__())
                    assert stream.reconnects >= 1
                stored = await client.list_events(
                    after=first.seq - 1, session_id=session.session_id, limit=5000
                )
    want = [e.seq for e in stored.events if e.seq <= got[-1].seq]
    assert [e.seq for e in got] == want, "gap or duplicate after the overflow"


async def test_open_client_accepts_str_and_path(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        with trio.fail_after(60):
            for state_dir in (str(s.state_dir), s.state_dir):
                async with open_client(state_dir) as client:
                    status = await client.call("daemon/status")
                    assert status["daemon"]["status"] == "running"
    with pytest.raises(codexd.DaemonUnreachable, match="no running daemon"):
        async with open_client(str(tmp_path / "nowhere")):
            pass
    with pytest.raises(codexd.DaemonUnreachable, match="no running daemon"):
        async with codexd.connect(str(tmp_path / "nowhere")):
            pass


TEXT = "Many small chunks of text, one character each, to stream in bursts. " * 4


async def test_stream_dropped_by_the_daemon_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a one-event subscriber buffer the daemon drops a live subscriber as soon as one
    commit holds two of its events (events/dropped, close 4008); the stream resumes each time
    and misses nothing."""
    received = Received()
    received.install(monkeypatch)
    async with served(
        tmp_path, default=Reply.text(TEXT, deltas=list(TEXT)), subscriber_buffer=1
    ) as s:
        with trio.fail_after(120):
            async with codexd.connect(s.state_dir) as client:
                session = await client.create_session(cwd=s.work)
                since = await client.last_seq()
                got: list[Event] = []
                async with client.events(since, session_id=session.session_id) as stream:
                    for turn in range(5):  # a drop needs two events in one commit: soon
                        handle = await client.start_turn(session.session_id, f"Talk {turn}.")
                        async for event in stream:
                            got.append(event)
                            done = (event.detail or {}).get("turn", {}).get("id")
                            if event.type == "app-server.turn.completed" and done == (
                                handle.turn_id
                            ):
                                break
                        if stream.reconnects:
                            break
                    reconnects = stream.reconnects
                page = await client.list_events(
                    after=since, session_id=session.session_id, limit=5000
                )
    assert reconnects >= 1
    assert any(method == "events/dropped" for method, _ in received.notifications)
    stored = [e.seq for e in page.events if e.seq <= got[-1].seq]
    assert [e.seq for e in got] == stored, "gap or duplicate after events/dropped"
    received.check_schema()
