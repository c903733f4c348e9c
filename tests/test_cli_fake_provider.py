"""``codexd serve --fake-provider``: a live daemon, turns and approvals, no key, one command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from .cli_support import cli
from .helpers import run_codexd, start_serve


async def test_fake_provider_daemon_runs_turns_and_approvals(tmp_path: Path) -> None:
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    shared = ["--state-dir", str(state)]
    async with trio.open_nursery() as nursery:
        serve = await start_serve(
            nursery, ["serve", "--fake-provider", "--listen", "ws://127.0.0.1:0", *shared]
        )
        assert serve.ready["child"] == "running"
        codex_home = Path(serve.ready["codexHome"])
        assert codex_home.is_dir()
        assert serve.ready["fakeProvider"].startswith("http://127.0.0.1:")

        created = await cli("session", "create", "--cwd", str(work), *shared)
        created_policy = await cli(
            "session",
            "create",
            "--cwd",
            str(work),
            "--approval-policy",
            "untrusted",
            "--sandbox",
            "workspace-write",
            *shared,
        )
        plain_session = created.stdout.decode().strip()
        asking_session = created_policy.stdout.decode().strip()

        hello = await cli("turn", plain_session, "hello daemon", "--wait", *shared)
        assert hello.returncode == 0, hello.stderr
        assert "You said: hello daemon" in hello.stdout.decode()

        argv = ["turn", asking_session, "run touch demo.txt", "--wait", *shared]
        turn, out, err = await run_codexd(nursery, argv)
        with trio.fail_after(60):
            while not re.search(rb"codexd approvals respond (\S+) accept\|decline", err):
                assert turn.poll() is None, bytes(err)
                await trio.sleep(0.05)
        match = re.search(rb"codexd approvals respond (\S+) accept\|decline", err)
        assert match is not None
        answered = await cli("approvals", "respond", match.group(1).decode(), "accept", *shared)
        assert answered.returncode == 0, answered.stderr
        with trio.fail_after(60):
            assert await turn.wait() == 0, bytes(err)
        transcript = (bytes(out) + bytes(err)).decode()
        assert (work / "demo.txt").exists(), transcript
        assert "The command exited with code 0" in bytes(out).decode(), transcript

        restarted = await cli("restart-child", "--json", *shared)
        assert json.loads(restarted.stdout) == {"restarting": True}

        assert await serve.stop() == 0
    # Its threads lived in the throw-away CODEX_HOME: the sessions were closed, the home removed.
    assert not codex_home.exists()
    import sqlite3

    with sqlite3.connect(state / "state.sqlite3") as conn:
        statuses = {json.loads(d)["status"] for (d,) in conn.execute("SELECT data FROM sessions")}
    assert statuses == {"closed"}
