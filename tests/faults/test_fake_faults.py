"""Faults that need control, through the scriptable fake app-server."""

from __future__ import annotations

from pathlib import Path

import trio

from codexd import open_daemon
from codexd.testing import FakeAppServerScript

from ..helpers import wait_event
from ..test_appserver_faults import fake_config


async def test_stderr_spew_of_100kib_lines_never_stalls_a_turn(tmp_path: Path) -> None:
    script = FakeAppServerScript(
        stderr_spew_bytes_per_s=1_000_000,
        stderr_line_bytes=100 * 1024,
        turn_duration_s=1.0,
        delta_count=20,
        reply_text="spew survived",
    )
    with trio.fail_after(60):
        async with open_daemon(fake_config(tmp_path, script)) as daemon:
            session = await daemon.create_session("test")
            started = trio.current_time()
            accepted = await daemon.start_turn(session.session_id, "hi")
            result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=20)
            elapsed = trio.current_time() - started
            assert result.status == "completed"
            assert result.final_message == "spew survived"
            # A stalled pipe would hang the turn for good; 10 s is a stall bound, not a timing.
            assert elapsed < 10, f"a 1 s turn took {elapsed:.2f}s under stderr spew"
    size = (tmp_path / "state" / "child-stderr.log").stat().st_size
    assert size > 500_000, f"only {size} bytes of stderr were drained"


async def test_truncated_output_then_exit_is_diagnosed(tmp_path: Path) -> None:
    script = FakeAppServerScript(truncated_line_then_exit=True, exit_code=9)
    with trio.fail_after(30):
        async with open_daemon(fake_config(tmp_path, script)) as daemon:
            event = await wait_event(daemon, "app-server.transport")
            assert event.detail is not None
            assert event.detail["trailingMessageLength"] > 0
            assert event.detail["childExitCode"] == 9
            assert daemon.status().child.status == "failed"
