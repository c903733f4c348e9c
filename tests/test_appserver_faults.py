"""Faults that need control, injected with the scriptable fake app-server of codexd.testing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from codexd import (
    ApiConfig,
    ApprovalsConfig,
    ChildConfig,
    CodexdError,
    Config,
    RestartConfig,
    StopConfig,
    TurnsConfig,
    open_daemon,
)
from codexd.testing.fake_appserver import FakeAppServerScript, fake_records

from .helpers import events_of, wait_event


def fake_config(tmp_path: Path, script: FakeAppServerScript, **changes: Any) -> Config:
    argv = script.command()
    config = Config(
        state_dir=str(tmp_path / "state"),
        child=ChildConfig(command=argv[0], args=argv[1:]),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1.0),
        turns=TurnsConfig(request_timeout_s=5.0),
        restart=RestartConfig(policy="never"),
    )
    return attrs.evolve(config, **changes)


async def test_garbage_and_oversize_lines_are_recorded_and_survived(tmp_path: Path) -> None:
    script = FakeAppServerScript(
        garbage_lines=("this is not json", '{"half": '),
        garbage_after_initialize=True,
        oversize_line_bytes=70 * 1024 * 1024,
        reply_text="still fine",
    )
    with trio.fail_after(60):
        async with open_daemon(fake_config(tmp_path, script)) as daemon:
            session = await daemon.create_session("test")
            accepted = await daemon.start_turn(session.session_id, "hi")
            result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=20)
            assert result.status == "completed"
            assert result.final_message == "still fine"
            issues = await events_of(daemon, "app-server.protocol.issue")
            kinds = sorted(e.detail["kind"] for e in issues if e.detail)
            assert kinds == ["oversize", "undecodable", "undecodable"]
            assert all(e.detail and e.detail["line"] for e in issues)
            assert daemon.status().child.status == "running"


async def test_watchdog_settles_swallowed_turn_via_thread_read(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """turn/completed never comes; the idle watchdog reads the turn back and settles it."""
    mock_clock.rate = 100.0  # 600 s of idle timeout pass in ~6 s
    script = FakeAppServerScript(swallow_turn_completed=True, reply_text="persisted answer")
    config = fake_config(
        tmp_path,
        script,
        turns=TurnsConfig(idle_timeout_s=300.0, request_timeout_s=500.0, interrupt_timeout_s=60),
    )
    with trio.fail_after(3600):
        async with open_daemon(config) as daemon:
            session = await daemon.create_session("test")
            accepted = await daemon.start_turn(session.session_id, "hi")
            started = trio.current_time()
            result = await daemon.wait_turn(session.session_id, accepted.turn_id)
            waited = trio.current_time() - started
            assert result.status == "completed"
            assert result.final_message == "persisted answer"
            assert waited >= 300.0
            settled = await wait_event(daemon, "turn.settled")
            assert settled.detail is not None and settled.detail["source"] == "thread/read"
            assert daemon.get_session(session.session_id).last_turn_status == "completed"


async def test_child_death_mid_turn_fails_turn_with_missing_event(tmp_path: Path) -> None:
    script = FakeAppServerScript(exit_on_turn_start=True, exit_code=7)
    with trio.fail_after(60):
        async with open_daemon(fake_config(tmp_path, script)) as daemon:
            session = await daemon.create_session("test")
            accepted = await daemon.start_turn(session.session_id, "hi")
            result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=20)
            assert result.status == "failed"
            missing = await wait_event(daemon, "app-server.turn.completed.missing")
            assert missing.detail is not None
            assert missing.detail["childExitCode"] == 7
            assert missing.detail["turnStatusAtClose"] == "inProgress"
            assert daemon.status().child.status == "failed"


async def test_crash_looping_child_hits_restart_limit_and_daemon_serves(tmp_path: Path) -> None:
    script = FakeAppServerScript(exit_immediately=True, exit_code=3)
    config = fake_config(
        tmp_path,
        script,
        restart=RestartConfig(
            policy="on-failure",
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            max_restarts=3,
            window_s=60,
            min_uptime_s=5,
        ),
    )
    with trio.fail_after(60):
        async with open_daemon(config) as daemon:
            limit = await wait_event(daemon, "child.restart.limit")
            assert limit.level == "error"
            snapshot = daemon.status()
            assert snapshot.child.status == "failed"
            assert snapshot.daemon.status == "degraded"
            restarts = await events_of(daemon, "child.restarting")
            assert len(restarts) == 3
            with pytest.raises(CodexdError, match="not available"):
                await daemon.create_session("test")


async def test_server_request_flood_is_answered_fail_closed(tmp_path: Path) -> None:
    script = FakeAppServerScript(server_request_flood=50, reply_text="flood done")
    config = fake_config(tmp_path, script, approvals=ApprovalsConfig(policy="decline"))
    with trio.fail_after(60):
        async with open_daemon(config) as daemon:
            session = await daemon.create_session("test")
            accepted = await daemon.start_turn(session.session_id, "hi")
            result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
            assert result.status == "completed"
            approvals = daemon.list_approvals()
            assert len(approvals) == 50
            assert {a.status for a in approvals} == {"declined"}
            assert {a.decided_by for a in approvals} == {"policy"}
    stderr = (tmp_path / "state" / "child-stderr.log").read_bytes()
    answers = fake_records(stderr, "serverRequestAnswer")
    assert len(answers) == 50
    assert all(a.get("result", {}).get("decision") == "decline" for a in answers), answers[:2]


async def test_stalled_request_times_out_and_daemon_keeps_serving(tmp_path: Path) -> None:
    script = FakeAppServerScript(stall_methods=("thread/start",))
    config = fake_config(tmp_path, script, turns=TurnsConfig(request_timeout_s=0.5))
    with trio.fail_after(30):
        async with open_daemon(config) as daemon:
            with pytest.raises(CodexdError, match=r"did not answer thread/start within 0\.5s"):
                await daemon.create_session("test")
            assert daemon.status().child.status == "running"
