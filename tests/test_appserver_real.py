"""The app-server features, proven against the REAL Codex binary (never skipped)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import attrs
import trio

from codexd import ApprovalsConfig, ChildConfig, TurnsConfig, open_daemon
from codexd.testing import Reply, open_fake_provider, write_codex_home

from .helpers import free_port, wait_listening
from .real import real_config, wait_event


async def test_turn_completes_with_scripted_message(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.text("Hello from the fake model.")) as provider:
        config = real_config(tmp_path, provider)
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                assert daemon.status().child.status == "running"
                session = await daemon.create_session("test", cwd=str(tmp_path))
                assert session.thread_id
                accepted = await daemon.start_turn(session.session_id, "Say hello.")
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert result.status == "completed"
                assert result.final_message == "Hello from the fake model."
                # The provider reported 10 in + 5 out: the turn's usage as Codex counted it.
                assert result.usage is not None
                assert result.usage["last"]["outputTokens"] == 5
                stored = daemon.get_session(session.session_id)
                assert stored.last_turn_id == accepted.turn_id
                assert stored.last_turn_status == "completed"
                assert stored.current_turn_id is None
                types = [e.type for e in await daemon.store.query_events(limit=10_000)]
                assert "app-server.turn.started" in types
                assert "app-server.item.agentMessage.delta" in types
                assert "app-server.turn.completed" in types
        body = provider.requests[0].body
        assert body["model"] == "mock-model"
        assert "Say hello." in str(body["input"])


async def test_steer_adds_input_to_running_turn(tmp_path: Path) -> None:
    async with open_fake_provider(
        Reply.text("first answer", delay_s=1.5), default=Reply.text("steered answer")
    ) as provider:
        config = real_config(tmp_path, provider)
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Start something long.")
                await provider.wait_for_requests(1)
                steered = await daemon.start_turn(
                    session.session_id,
                    "Also mention the steering text.",
                    expected_turn_id=accepted.turn_id,
                )
                assert steered.steered
                assert steered.turn_id == accepted.turn_id
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert result.status == "completed"
        assert any("Also mention the steering text." in str(r.body) for r in provider.requests)


async def test_interrupt_ends_turn_interrupted(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.hang()) as provider:
        config = real_config(tmp_path, provider)
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Think forever.")
                await provider.wait_for_requests(1)
                result = await daemon.interrupt_turn(session.session_id)
                assert result.turn_id == accepted.turn_id
                assert result.status == "interrupted"
                assert daemon.get_session(session.session_id).last_turn_status == "interrupted"


async def test_approval_ask_accept_runs_command(tmp_path: Path) -> None:
    marker = tmp_path / "work" / "approved.txt"
    marker.parent.mkdir()
    async with open_fake_provider(
        Reply.shell(f"touch {marker}"), Reply.text("Done, file created.")
    ) as provider:
        config = real_config(tmp_path, provider, approvals=ApprovalsConfig(policy="ask"))
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session(
                    "test",
                    cwd=str(marker.parent),
                    approval_policy="untrusted",
                    sandbox="workspace-write",
                )
                accepted = await daemon.start_turn(session.session_id, "Create the file.")
                requested = await wait_event(daemon, "approval.requested")
                assert requested.detail is not None
                approval_id = requested.detail["approvalId"]
                pending = daemon.get_approval(approval_id)
                assert pending.status == "pending"
                assert pending.method == "item/commandExecution/requestApproval"
                assert pending.session_id == session.session_id
                decided = await daemon.respond_approval(approval_id, "accept")
                assert decided.status == "accepted"
                assert decided.decided_by == "api"
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert result.status == "completed"
                assert result.final_message == "Done, file created."
    assert marker.exists()


async def test_approval_ask_without_answer_times_out_to_decline(tmp_path: Path) -> None:
    marker = tmp_path / "work" / "never.txt"
    marker.parent.mkdir()
    async with open_fake_provider(
        Reply.shell(f"touch {marker}"), Reply.text("I was not allowed.")
    ) as provider:
        config = real_config(
            tmp_path, provider, approvals=ApprovalsConfig(policy="ask", timeout_s=1.0)
        )
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session(
                    "test", cwd=str(marker.parent), approval_policy="untrusted"
                )
                accepted = await daemon.start_turn(session.session_id, "Create the file.")
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert result.status == "completed"
                assert result.final_message == "I was not allowed."
                approvals = daemon.list_approvals()
                assert len(approvals) == 1
                assert approvals[0].status == "timed_out"
                assert approvals[0].decision == "decline"
                assert approvals[0].decided_by == "timeout"
    assert not marker.exists()
    # The model was told the command was declined.
    assert len(provider.requests) == 2


async def test_resume_after_daemon_restart_continues_thread(tmp_path: Path) -> None:
    async with open_fake_provider(
        Reply.text("The secret word is PINEAPPLE."), Reply.text("Still here.")
    ) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        config = real_config(tmp_path, provider, home=home)
        with trio.fail_after(90):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Remember a word.")
                first = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert first.status == "completed"
            async with open_daemon(config) as daemon:
                resumed = await wait_event(daemon, "session.resumed")
                assert resumed.session_id == session.session_id
                again = daemon.get_session(session.session_id)
                assert again.thread_id == session.thread_id
                assert again.status == "active"
                accepted = await daemon.start_turn(session.session_id, "What was the word?")
                second = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert second.status == "completed"
                assert second.final_message == "Still here."
    # The new app-server process sent the earlier conversation: the same thread continued.
    assert "PINEAPPLE" in str(provider.requests[-1].body["input"])


async def test_external_websocket_app_server_runs_a_turn(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.text("Over the websocket.")) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        port = await free_port()
        from codexd.testing import codex_binary

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                _run_process,
                [str(codex_binary()), "app-server", "--listen", f"ws://127.0.0.1:{port}"],
                home.env(),
            )
            endpoint = f"http://127.0.0.1:{port}"  # http:// is mapped to ws://
            await wait_listening(port)
            config = real_config(
                tmp_path,
                provider,
                home=home,
                child=ChildConfig(strategy="external", endpoint=endpoint),
            )
            with trio.fail_after(60):
                async with open_daemon(config) as daemon:
                    assert daemon.status().child.status == "external"
                    session = await daemon.create_session("test", cwd=str(tmp_path))
                    accepted = await daemon.start_turn(session.session_id, "Hi over ws.")
                    result = await daemon.wait_turn(session.session_id, accepted.turn_id, 30)
                    assert result.status == "completed"
                    assert result.final_message == "Over the websocket."
            server.terminate()
            nursery.cancel_scope.cancel()


async def test_killing_child_mid_turn_fails_turn_with_diagnostics(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.hang()) as provider:
        config = real_config(tmp_path, provider)
        config = attrs.evolve(config, restart=attrs.evolve(config.restart, policy="never"))
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Hang.")
                await provider.wait_for_requests(1)
                pid = daemon.status().child.pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert result.status == "failed"
                missing = await wait_event(daemon, "app-server.turn.completed.missing")
                assert missing.level == "error"
                detail = missing.detail or {}
                assert detail["turnId"] == accepted.turn_id
                assert detail["childSignal"] == "SIGKILL"
                assert detail["error"]["failureClass"] == "transport_closed_before_turn_completed"
                assert detail["source"] == "eof"
                session_now = daemon.get_session(session.session_id)
                assert session_now.last_turn_status == "failed"
                assert session_now.current_turn_id is None


async def test_watchdog_settles_turn_via_thread_read_on_real_binary(tmp_path: Path) -> None:
    """Idle watchdog against the real binary: a hanging provider, a short idle timeout."""
    async with open_fake_provider(Reply.hang()) as provider:
        config = real_config(
            tmp_path,
            provider,
            turns=TurnsConfig(idle_timeout_s=2.0, request_timeout_s=10, interrupt_timeout_s=5),
        )
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Hang.")
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                # thread/read says it is still running, so the watchdog interrupts it.
                assert result.status == "interrupted"
                fired = await wait_event(daemon, "turn.watchdog.fired")
                assert fired.detail is not None and fired.detail["turnId"] == accepted.turn_id


async def _run_process(
    argv: list[str], env: dict[str, str], task_status: trio.TaskStatus[trio.Process]
) -> None:
    import subprocess

    process = await trio.lowlevel.open_process(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    task_status.started(process)
    try:
        await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            process.kill()
            await process.wait()
