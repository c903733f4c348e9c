"""Every API method through the typed client against the real binary, results schema-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import codexd
from codexd import (
    ApiError,
    InvalidRequest,
    NotActive,
    NotFound,
    Run,
    RunFinished,
    RunItem,
    RunStatusChanged,
    Session,
    Snapshot,
    TurnResult,
)
from codexd._methods import METHODS
from codexd.testing import Reply

from .served import CODEX_METHODS, Received, served


async def test_every_method_through_the_typed_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Received()
    received.install(monkeypatch)
    async with served(
        tmp_path,
        Reply.text("First answer."),
        Reply.hang(),
        default=Reply.text("Run answer."),
    ) as s:
        with trio.fail_after(180):
            async with codexd.connect(s.state_dir, timeout=30) as client:
                status = await client.status()
                assert isinstance(status, Snapshot)
                assert status.daemon.status == "running"
                raw = await client.request("daemon/status")
                assert raw["daemonId"] == status.daemon_id

                session = await client.create_session(
                    purpose="all", cwd=s.work, metadata={"k": "v"}
                )
                assert isinstance(session, Session)
                assert session.metadata == {"k": "v"}
                assert await client.get_session(session.session_id) == await client.get_session(
                    session.session_id
                )
                assert [x.session_id for x in await client.list_sessions(status="active")] == [
                    session.session_id
                ]

                handle = await client.start_turn(session.session_id, "First.", effort="low")
                result = await client.wait_turn(session.session_id, handle.turn_id, timeout=60)
                assert isinstance(result, TurnResult)
                assert result.final_message == "First answer."

                hanging = await client.start_turn(session.session_id, "Hang.")
                await s.provider.wait_for_requests(2)
                early = await hanging.wait(timeout=0.1)
                assert early.status == "inProgress"
                interrupted = await hanging.interrupt()
                assert interrupted.status == "interrupted"

                run = await client.create_run("Do a run.", cwd=s.work, env=s.env, purpose="review")
                assert run.run.status in ("queued", "running")
                finished = await run.wait(timeout=120)
                assert isinstance(finished, Run)
                assert finished.status == "completed", finished.error
                assert finished.summary == "Run answer."
                events = [e async for e in run.stream()]
                assert isinstance(events[0], RunStatusChanged)
                assert events[0].status == "queued"
                assert any(isinstance(e, RunItem) for e in events)
                assert isinstance(events[-1], RunFinished)
                assert events[-1].status == "completed"
                assert (await client.get_run(run.run_id)).status == "completed"
                assert (await run.cancel()).status == "completed"  # already final: unchanged
                assert [r.run_id for r in await client.list_runs()] == [run.run_id]
                assert (await client.wait_run(run.run_id)).status == "completed"

                assert await client.list_approvals() == []
                with pytest.raises(ApiError) as unknown:
                    await client.respond("approval-nope", "accept")
                assert unknown.value.code == NotFound.code
                page = await client.list_events(after=0, limit=3)
                assert [e.seq for e in page.events] == [1, 2, 3]
                assert page.last_seq >= 3
                async with client.events(since=0, type="session.") as stream:
                    created = await stream.__anext__()
                assert created.type == "session.created"

                closed = await client.close_session(session.session_id)
                assert closed.status == "closed"

                # Errors: refused locally (same records as the daemon), or by the daemon.
                with pytest.raises(InvalidRequest) as local:
                    await client.create_session(sandbox="everything")  # type: ignore[arg-type]
                assert local.value.field == "sandbox"
                with pytest.raises(ApiError) as missing:
                    await client.get_session("session-nope")
                assert missing.value.code == NotFound.code
                assert missing.value.field == "sessionId"
                with pytest.raises(ApiError) as inactive:
                    await client.start_turn(session.session_id, "Closed.")
                assert inactive.value.code == NotActive.code

                assert (await client.restart_child()).restarting is True
    # Every method of the table was called, here or in test_client_codex (approvals answered:
    # test_client_approvals), but events/unsubscribe: a stream's connection is its own, and
    # closing it ends the subscription.
    wanted = set(METHODS) - {"events/unsubscribe"} - CODEX_METHODS
    assert received.called >= wanted, sorted(wanted - received.called)
    assert received.check_schema() > 30
