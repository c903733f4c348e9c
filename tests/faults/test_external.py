"""An external app-server over WebSocket: a lost link reconnects; refused auth does not retry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio

from codexd import ChildConfig, RestartConfig, open_daemon
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


class CuttableProxy:
    """A TCP proxy to the external server whose connections the test can cut at will."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._scopes: list[trio.CancelScope] = []

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", self.upstream_port) as up:
            with trio.CancelScope() as scope:
                self._scopes.append(scope)
                async with trio.open_nursery() as nursery:

                    async def pipe(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                        async for chunk in src:
                            await dst.send_all(chunk)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(pipe, client, up)
                    nursery.start_soon(pipe, up, client)

    def cut(self) -> None:
        """Drop every relayed connection (both sides), as a network blip would."""
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()


async def test_reconnect_keeps_a_pending_approval_answerable(tmp_path: Path) -> None:
    """The link drops while a turn waits for approval; the server survives and replays the
    request after thread/resume: the same approval is still pending and answering it lets the
    turn finish on the server."""
    from codexd import ApprovalsConfig

    marker = tmp_path / "work" / "approved.txt"
    marker.parent.mkdir()
    async with open_fake_provider(
        Reply.shell(f"touch {marker}"), Reply.text("Created it.")
    ) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        port = await free_port()
        server = await _serve_ws(port, home.env())
        proxy = CuttableProxy(port)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(proxy.serve)
                config = real_config(
                    tmp_path,
                    provider,
                    home=home,
                    child=ChildConfig(strategy="external", endpoint=f"ws://127.0.0.1:{proxy.port}"),
                    restart=RestartConfig(backoff_initial_s=0.1, backoff_max_s=0.5),
                    approvals=ApprovalsConfig(policy="ask", timeout_s=120),
                )
                with trio.fail_after(90):
                    async with open_daemon(config) as daemon:
                        session = await daemon.create_session(
                            "test",
                            cwd=str(marker.parent),
                            approval_policy="untrusted",
                            sandbox="workspace-write",
                        )
                        accepted = await daemon.start_turn(session.session_id, "Make the file.")
                        requested = await wait_event(daemon, "approval.requested")
                        assert requested.detail is not None
                        approval_id = requested.detail["approvalId"]
                        proxy.cut()
                        await wait_event(daemon, "approval.rebound")
                        assert daemon.get_approval(approval_id).status == "pending"
                        answered = await daemon.respond_approval(approval_id, "accept")
                        assert answered.status == "accepted"
                        result = await daemon.wait_turn(session.session_id, accepted.turn_id, 60)
                        assert result.status == "completed", result
                        assert marker.exists()
                        assert await events_of(daemon, "app-server.transport.closed")
                        assert len(await events_of(daemon, "approval.requested")) == 1
                nursery.cancel_scope.cancel()
        finally:
            server.kill()
            await server.wait()
