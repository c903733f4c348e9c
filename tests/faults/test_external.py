"""An external app-server over WebSocket: a lost link reconnects; refused auth does not retry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio

from codexd.config import ChildConfig, RestartConfig
from codexd.daemon import open_daemon
from codexd.testing import Reply, codex_binary, open_fake_provider, write_codex_home

from ..helpers import events_of, free_port, wait_event, wait_listening
from ..real import real_config


async def _serve_ws(port: int, env: dict[str, str], *extra: str) -> trio.Process:
    process = await trio.lowlevel.open_process(
        [str(codex_binary()), "app-server", "--listen", f"ws://127.0.0.1:{port}", *extra],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await wait_listening(port)
    return process


async def test_lost_websocket_reconnects_and_resumes(tmp_path: Path) -> None:
    async with open_fake_provider(
        Reply.text("first"), default=Reply.text("after reconnect")
    ) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        port = await free_port()
        server = await _serve_ws(port, home.env())
        config = real_config(
            tmp_path,
            provider,
            home=home,
            child=ChildConfig(strategy="external", endpoint=f"ws://127.0.0.1:{port}"),
            restart=RestartConfig(policy="on-failure", backoff_initial_s=0.2, backoff_max_s=1),
        )
        try:
            with trio.fail_after(90):
                async with open_daemon(config) as daemon:
                    session = await daemon.create_session("test", cwd=str(tmp_path))
                    accepted = await daemon.start_turn(session.session_id, "one")
                    first = await daemon.wait_turn(session.session_id, accepted.turn_id, 30)
                    assert first.status == "completed"
                    server.kill()
                    await server.wait()
                    await wait_event(daemon, "app-server.transport.closed")
                    server = await _serve_ws(port, home.env())
                    with trio.fail_after(30):
                        while len(await events_of(daemon, "session.resumed")) < 1:
                            await trio.sleep(0.1)
                    accepted = await daemon.start_turn(session.session_id, "two")
                    second = await daemon.wait_turn(session.session_id, accepted.turn_id, 30)
                    assert second.status == "completed"
                    assert second.final_message == "after reconnect"
                    assert len(await events_of(daemon, "child.restarting")) >= 1
        finally:
            server.kill()
            await server.wait()


async def test_refused_auth_fails_without_retry_storm(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        token_file = tmp_path / "ws-token"
        token_file.write_text("s3cret-token-for-test-only\n")
        port = await free_port()
        server = await _serve_ws(
            port, home.env(), "--ws-auth", "capability-token", "--ws-token-file", str(token_file)
        )
        config = real_config(
            tmp_path,
            provider,
            home=home,
            child=ChildConfig(strategy="external", endpoint=f"ws://127.0.0.1:{port}"),
            restart=RestartConfig(policy="always", backoff_initial_s=0.05, backoff_max_s=0.1),
        )
        try:
            with trio.fail_after(60):
                async with open_daemon(config) as daemon:
                    failed = await wait_event(daemon, "app-server.connect.failed")
                    assert failed.level == "error"
                    await trio.sleep(1.0)
                    assert await events_of(daemon, "child.restarting") == []
                    child = daemon.status().child
                    assert child.status == "failed"
                    assert child.last_error is not None and "refused" in child.last_error
        finally:
            server.kill()
            await server.wait()
