"""The blocking client, from asyncio.run and from plain threads, against the real binary."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import trio

import codexd
from codexd import ApiError, NotFound, SyncClient, TextDelta, TurnCompleted
from codexd.testing import Reply

from .served import Received, served

ANSWER = "An answer for asyncio."


def _asyncio_program(state_dir: Path, cwd: Path) -> dict[str, object]:
    """A whole asyncio program: its loop keeps running while the turn is waited for."""

    async def main() -> dict[str, object]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        with codexd.connect_sync(state_dir) as client:
            assert isinstance(client, SyncClient)
            tick_task = asyncio.create_task(ticker())
            session = client.create_session(purpose="asyncio", cwd=str(cwd))
            handle = client.start_turn(session.session_id, "Hello from asyncio.")
            result = await asyncio.to_thread(handle.wait)
            events = await asyncio.to_thread(lambda: list(handle.stream()))
            with pytest.raises(ApiError) as missing:
                client.get_session("session-nope")
            stop.set()
            await tick_task
            return {
                "result": result,
                "events": events,
                "missing": missing.value.code,
                "ticks": ticks,
                "session": session,
            }

    return asyncio.run(main())


async def test_sync_client_inside_asyncio_run_completes_a_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Received()
    received.install(monkeypatch)
    async with served(tmp_path, default=Reply.text(ANSWER)) as s:
        with trio.fail_after(120):
            out = await trio.to_thread.run_sync(_asyncio_program, s.state_dir, s.work)
    result = out["result"]
    assert isinstance(result, codexd.TurnResult)
    assert result.status == "completed"
    assert result.final_message == ANSWER
    events = out["events"]
    assert isinstance(events, list)
    assert isinstance(events[-1], TurnCompleted)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == ANSWER
    assert out["missing"] == NotFound.code
    assert isinstance(out["ticks"], int) and out["ticks"] > 1  # the loop ran meanwhile
    assert received.check_schema() > 10


def _plain_thread_program(state_dir: Path) -> list[str]:
    client = codexd.connect_sync(str(state_dir), timeout=20)
    threads_before = threading.active_count()
    try:
        created = client.create_session(purpose="plain")
        with client.events(since=0, type="session.") as stream:
            types = []
            for event in stream:
                types.append(event.type)
                if (event.detail or {}).get("sessionId") == created.session_id:
                    break
        client.close_session(created.session_id)
        return types
    finally:
        client.close()
        assert threading.active_count() == threads_before - 1  # its thread ended
        with pytest.raises(RuntimeError, match="closed"):
            client.status()


async def test_sync_client_from_a_plain_thread_and_closing(tmp_path: Path) -> None:
    async with served(tmp_path) as s:
        with trio.fail_after(60):
            types = await trio.to_thread.run_sync(_plain_thread_program, s.state_dir)
    assert types == ["session.created"]
    with pytest.raises(codexd.DaemonUnreachable, match="no running daemon"):
        await trio.to_thread.run_sync(codexd.connect_sync, tmp_path / "nowhere")


def _approve_in_thread(state_dir: Path, cwd: Path) -> tuple[str, codexd.TurnResult]:
    with codexd.connect_sync(state_dir) as client:
        session = client.create_session(cwd=str(cwd), approval_policy="untrusted")
        handle = client.start_turn(session.session_id, "Make the file.")
        with client.approvals(session.session_id) as pending:
            approval = next(pending)
        client.respond(approval.approval_id, "decline")
        return approval.method, handle.wait()


async def test_sync_client_routes_approvals(tmp_path: Path) -> None:
    marker = tmp_path / "work" / "never.txt"
    async with served(
        tmp_path, Reply.shell(f"touch {marker}"), Reply.text("Declined."), approvals="ask"
    ) as s:
        with trio.fail_after(60):
            method, result = await trio.to_thread.run_sync(_approve_in_thread, s.state_dir, s.work)
    assert method == "item/commandExecution/requestApproval"
    assert (result.status, result.final_message) == ("completed", "Declined.")
    assert not marker.exists()
