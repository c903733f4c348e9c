from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import trio

from codexd import ChildConfig, Config, open_daemon
from codexd._process import process_start_ticks
from codexd._store import Store

from .conftest import python_child


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as dead only if it has been reaped.
    return process_start_ticks(pid) is not None


async def test_child_ignoring_sigterm_is_killed_after_grace(base_config: Config) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    config = python_child(base_config, code, grace_s=0.5)
    with trio.fail_after(20):
        async with open_daemon(config, plain_child=True) as daemon:
            assert daemon.child is not None
            await wait_for(lambda: b"ready" in _read(config, "child-stdout.log"))
            pid = daemon.child.pid
            assert pid is not None
            started = trio.current_time()
        elapsed = trio.current_time() - started
    assert elapsed >= 0.5
    state = daemon.store.child_state
    assert state.status == "stopped"
    assert state.signal == "SIGKILL"
    assert not alive(pid)
    exited = [e for e in daemon.store.recent_events if e.type == "child.exited"]
    assert exited and exited[-1].detail is not None
    assert exited[-1].detail["signal"] == "SIGKILL"
    assert exited[-1].detail["requested"] is True


async def test_exit_code_recorded_as_failure(base_config: Config) -> None:
    config = python_child(base_config, "import sys; sys.stderr.write('bad thing\\n'); sys.exit(3)")
    with trio.fail_after(20):
        async with open_daemon(config, plain_child=True) as daemon:
            assert daemon.child is not None
            await daemon.child.finished.wait()  # exit recorded (state + event committed)
            state = daemon.store.child_state
            assert state.status == "failed"
            assert state.exit_code == 3
            assert state.signal is None
            assert state.last_error == "child exited with code 3"
            event = [e for e in daemon.store.recent_events if e.type == "child.exited"][-1]
            assert event.level == "error"
            assert event.detail is not None and "bad thing" in event.detail["stderrTail"]


async def test_signal_recorded(base_config: Config) -> None:
    config = python_child(base_config, "import time; print('up', flush=True); time.sleep(60)")
    with trio.fail_after(20):
        async with open_daemon(config, plain_child=True) as daemon:
            assert daemon.child is not None and daemon.child.pid is not None
            await wait_for(lambda: b"up" in _read(config, "child-stdout.log"))
            os.kill(daemon.child.pid, signal.SIGKILL)
            await daemon.child.finished.wait()
            state = daemon.store.child_state
            assert state.status == "failed"
            assert state.signal == "SIGKILL"
            assert state.exit_code is None
            assert state.last_error == "child killed by SIGKILL"


async def test_missing_command_gives_failed_state_not_crash(base_config: Config) -> None:
    config = attrs.evolve(
        base_config, child=ChildConfig(command="/nonexistent/codex-binary", args=[])
    )
    with trio.fail_after(20):
        async with open_daemon(config) as daemon:
            state = daemon.store.child_state
            assert state.status == "failed"
            assert state.last_error is not None
            assert "/nonexistent/codex-binary" in state.last_error
            assert "No such file" in state.last_error
            # The daemon is still alive and serving.
            session = await daemon.register_session("after-failure")
            assert daemon.get_session(session.session_id).status == "active"
            assert daemon.status().child.status == "failed"
    types = [e.type for e in daemon.store.recent_events]
    assert "child.spawn.failed" in types
    assert types[-1] == "daemon.stopped"


async def test_leftover_child_of_killed_daemon_is_reaped(base_config: Config) -> None:
    """A process recorded by a previous (killed) daemon is stopped on the next boot."""
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        state_dir = Path(base_config.state_dir)
        store = await Store.open(state_dir)
        store.register_owned(
            leftover.pid, {"startTicks": process_start_ticks(leftover.pid), "kind": "exec"}
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.close_input()
        # An unrelated process whose pid is NOT recorded must be left alone.
        bystander = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
        )
        config = attrs.evolve(base_config, mode="exec")
        with trio.fail_after(20):
            async with open_daemon(config) as daemon:
                pass
        assert leftover.wait(timeout=5) == -signal.SIGTERM
        assert bystander.poll() is None
        bystander.kill()
        bystander.wait()
        assert "child.reaped" in [e.type for e in daemon.store.recent_events]
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def _read(config: Config, name: str) -> bytes:
    try:
        return (Path(config.state_dir) / name).read_bytes()
    except FileNotFoundError:
        return b""
