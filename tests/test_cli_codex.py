"""The CLI commands that reach Codex through the daemon: call, threads, models, account,
session fork/rename/compact/revert, review, console."""

from __future__ import annotations

import json
from pathlib import Path

from codexd.testing import Reply

from .cli_support import running_daemon


async def test_codex_commands_against_the_real_binary(tmp_path: Path) -> None:
    replies = [Reply.text("First answer."), Reply.text("Review: looks fine.")]
    async with running_daemon(tmp_path, *replies) as daemon:
        created = await daemon.cli("session", "create", "--cwd", str(tmp_path), "--json")
        assert created.returncode == 0, created.stderr
        session = json.loads(created.stdout)["sessionId"]
        turn = await daemon.cli("turn", session, "Say something.", "--wait")
        assert turn.returncode == 0, turn.stderr

        # The pass-through returns the app-server's own result; threads marks our session.
        raw = await daemon.cli("call", "thread/list", '{"limit": 10}')
        assert raw.returncode == 0, raw.stderr
        thread_ids = {t["id"] for t in json.loads(raw.stdout)["data"]}
        listed = await daemon.cli("threads")
        assert listed.returncode == 0, listed.stderr
        assert session in listed.stdout.decode()
        assert thread_ids & set(listed.stdout.decode().split())

        denied = await daemon.cli("call", "account/logout", "--json")
        assert denied.returncode == 1
        error = json.loads(denied.stderr)["error"]
        assert "account/logout" in error["message"] and "appserver.allow" in error["message"]
        bad = await daemon.cli("call", "thread/list", "[1]")
        assert bad.returncode == 2 and b"must be a JSON object" in bad.stderr

        models = await daemon.cli("models", "--json")
        assert models.returncode == 0, models.stderr
        assert isinstance(json.loads(models.stdout)["data"], list)
        account = await daemon.cli("account")
        assert account.returncode == 0, account.stderr
        assert account.stdout.decode().startswith(("not logged in", "logged in"))

        renamed = await daemon.cli("session", "rename", session, "cli-named")
        assert renamed.returncode == 0, renamed.stderr
        forked = await daemon.cli("session", "fork", session, "--json")
        assert forked.returncode == 0, forked.stderr
        fork_id = json.loads(forked.stdout)["sessionId"]
        assert fork_id != session

        review = await daemon.cli("review", session, "--instructions", "Check it.", "--json")
        assert review.returncode == 0, review.stderr
        review_turn = json.loads(review.stdout)["turnId"]
        waited = await daemon.cli("turn", "wait", session, review_turn, "--json", timeout=90)
        assert waited.returncode == 0, waited.stderr

        link = await daemon.cli("console")
        assert link.returncode == 0, link.stderr
        assert "/console/login?ticket=" in link.stdout.decode()
