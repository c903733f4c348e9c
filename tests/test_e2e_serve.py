"""End to end: `codexd serve` as a subprocess (real Codex binary), driven by the CLI and the API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from codexd.client import open_client
from codexd.testing import Reply, open_fake_provider, write_codex_home

from .served import write_config


async def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "codexd", "--config", str(config), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )


async def test_serve_cli_turn_and_subscriber_see_everything(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.text("The end-to-end answer.")) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        config = write_config(tmp_path, home.env({}), [])
        with trio.fail_after(120):
            serve = await trio.lowlevel.open_process(
                [sys.executable, "-m", "codexd", "--config", str(config), "serve"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                assert serve.stdout is not None
                ready_line = b""
                while b"\n" not in ready_line:
                    chunk = await serve.stdout.receive_some(4096)
                    assert chunk, "serve exited before it was ready"
                    ready_line += chunk
                assert ready_line.startswith(b"codexd ready ")
                ready = json.loads(ready_line.split(b" ", 2)[2].split(b"\n")[0])
                assert ready["child"] == "running"
                assert ready["api"].startswith("ws://127.0.0.1:")

                events: list[dict[str, Any]] = []
                async with trio.open_nursery() as nursery:
                    subscribed = trio.Event()

                    async def subscriber() -> None:
                        async with open_client(tmp_path / "state") as client:
                            stream = client.subscribe(since=0)
                            async for event in stream:
                                events.append(event)
                                subscribed.set()
                                if event["type"] == "session.closed":
                                    return

                    nursery.start_soon(subscriber)
                    await subscribed.wait()

                    created = await _cli(
                        config,
                        "session",
                        "create",
                        "--purpose",
                        "e2e",
                        "--cwd",
                        str(tmp_path),
                        "--json",
                    )
                    assert created.returncode == 0, created.stderr
                    session_id = json.loads(created.stdout)["sessionId"]

                    turn = await _cli(config, "turn", session_id, "Answer me.", "--wait")
                    assert turn.returncode == 0, turn.stderr
                    assert turn.stdout.decode().strip() == "The end-to-end answer."

                    status = await _cli(config, "status", "--json")
                    assert status.returncode == 0
                    snapshot = json.loads(status.stdout)
                    assert snapshot["child"]["status"] == "running"
                    assert snapshot["sessions"][0]["lastTurnStatus"] == "completed"

                    listed = await _cli(config, "session", "list")
                    assert session_id in listed.stdout.decode()
                    closed = await _cli(config, "session", "close", session_id)
                    assert closed.returncode == 0

                seqs = [e["seq"] for e in events]
                assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate in the stream"
                types = [e["type"] for e in events]
                for wanted in (
                    "daemon.started",
                    "app-server.connected",
                    "session.created",
                    "turn.accepted",
                    "app-server.turn.completed",
                    "session.closed",
                ):
                    assert wanted in types, wanted

                unknown = await _cli(config, "session", "show", "session-nope")
                assert unknown.returncode == 1
                assert b"unknown session" in unknown.stderr
            finally:
                serve.send_signal(signal.SIGTERM)
                with trio.move_on_after(20):
                    await serve.wait()
                if serve.returncode is None:
                    serve.kill()
                    await serve.wait()
            assert serve.returncode == 0
        # Once stopped, the CLI says the daemon is unreachable with exit code 3.
        gone = await _cli(config, "status")
        assert gone.returncode == 3
        assert b"no running daemon" in gone.stderr
