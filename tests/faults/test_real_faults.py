"""Faults that are real: signals to the real Codex child and to a real `codexd serve` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import trio

from codexd import RestartConfig, open_daemon
from codexd.testing import Reply, open_fake_provider, write_codex_home

from ..helpers import events_of, wait_event
from ..real import real_config


async def test_kill_child_mid_turn_restarts_resumes_and_next_turn_completes(
    tmp_path: Path,
) -> None:
    async with open_fake_provider(Reply.hang(), default=Reply.text("back again")) as provider:
        config = real_config(tmp_path, provider)
        config = attrs.evolve(
            config,
            restart=RestartConfig(policy="on-failure", backoff_initial_s=0.5, backoff_max_s=5),
        )
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Hang now.")
                await provider.wait_for_requests(1)
                old_pid = daemon.status().child.pid
                assert old_pid is not None
                killed_at = trio.current_time()
                os.kill(old_pid, signal.SIGKILL)
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=20)
                assert result.status == "failed"
                missing = await wait_event(daemon, "app-server.turn.completed.missing")
                assert missing.detail is not None and missing.detail["childSignal"] == "SIGKILL"
                resumed = await wait_event(daemon, "session.resumed")
                back_after = trio.current_time() - killed_at
                print(f"child back and session resumed {back_after:.2f}s after kill -9")
                assert back_after < 3.0, f"child back and session resumed after {back_after:.2f}s"
                assert resumed.session_id == session.session_id
                state = daemon.status().child
                assert state.status == "running" and state.pid != old_pid
                assert state.restart_count == 1
                accepted = await daemon.start_turn(session.session_id, "Are you back?")
                again = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=20)
                assert again.status == "completed"
                assert again.final_message == "back again"
                restarting = await events_of(daemon, "child.restarting")
                assert len(restarting) == 1


def _codex_children(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read()
        except OSError:
            continue
        if marker.encode() in environ and b"app-server" in argv:
            pids.append(int(entry))
    return pids


async def test_daemon_kill9_leaves_no_orphaned_codex(tmp_path: Path) -> None:
    async with open_fake_provider(default=Reply.hang()) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        state = tmp_path / "state"
        env = dict(os.environ)
        env.update(home.env({}))
        env["CODEXD_STATE_DIR"] = str(state)
        env["CODEXD_API__LISTEN"] = "ws://127.0.0.1:0"
        argv = [sys.executable, "-m", "codexd", "serve"]
        with trio.fail_after(60):
            serve = await trio.lowlevel.open_process(argv, env=env, stdout=subprocess.PIPE)
            assert serve.stdout is not None
            line = await serve.stdout.receive_some(4096)
            assert line.startswith(b"codexd ready"), line
            ready = json.loads(line.split(b" ", 2)[2])
            children = _codex_children(str(home.codex_home))
            assert len(children) == 1
            serve.kill()  # SIGKILL: no cleanup code runs in the daemon
            await serve.wait()
            with trio.move_on_after(10):
                while _codex_children(str(home.codex_home)):
                    await trio.sleep(0.05)
            assert _codex_children(str(home.codex_home)) == [], "orphaned codex app-server"
            # The next start opens the store and reports the previous child as gone.
            restarted = await trio.lowlevel.open_process(argv, env=env, stdout=subprocess.PIPE)
            assert restarted.stdout is not None
            line = await restarted.stdout.receive_some(4096)
            assert line.startswith(b"codexd ready"), line
            assert json.loads(line.split(b" ", 2)[2])["daemonId"] == ready["daemonId"]
            restarted.send_signal(signal.SIGTERM)
            assert await restarted.wait() == 0
            assert _codex_children(str(home.codex_home)) == []


async def test_sigstopped_child_is_detected_as_wedged_and_restarted(tmp_path: Path) -> None:
    from codexd import TurnsConfig

    async with open_fake_provider(Reply.hang(), default=Reply.text("after the wedge")) as provider:
        config = real_config(
            tmp_path,
            provider,
            turns=TurnsConfig(idle_timeout_s=1.0, request_timeout_s=1.0, interrupt_timeout_s=1.0),
        )
        config = attrs.evolve(
            config, restart=RestartConfig(policy="on-failure", backoff_initial_s=0.2)
        )
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Hang.")
                await provider.wait_for_requests(1)
                pid = daemon.status().child.pid
                assert pid is not None
                os.kill(pid, signal.SIGSTOP)
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=30)
                assert result.status == "failed"
                wedged = await wait_event(daemon, "child.wedged")
                assert wedged.detail is not None and wedged.detail["pid"] == pid
                await wait_event(daemon, "session.resumed")
                with trio.fail_after(10):
                    while daemon.status().child.status != "running":
                        await trio.sleep(0.05)
                assert daemon.status().child.pid != pid
                accepted = await daemon.start_turn(session.session_id, "Back?")
                again = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=20)
                assert again.status == "completed"
