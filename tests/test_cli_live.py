"""``turn --wait``, ``turn wait`` and ``run create --wait`` followed live, through a terminal.

Each test runs ``codexd serve`` (real Codex binary, fake model provider) and the CLI as separate
processes, the CLI on a pseudo-terminal where a person would see it.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from codexd.testing import Reply

from .cli_support import Daemon, cli, pty_process, running_daemon

SLOW_TEXT = "The first words arrive early while the rest of this answer follows slowly."
SLOW_WORDS = SLOW_TEXT.split(" ")


async def _session(daemon: Daemon, cwd: Path, *extra: str) -> str:
    created = await daemon.cli("session", "create", "--cwd", str(cwd), *extra, "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["sessionId"])


async def test_turn_wait_streams_the_first_words_long_before_the_turn_ends(
    tmp_path: Path,
) -> None:
    reply = Reply.text(
        " ".join(SLOW_WORDS), deltas=[w + " " for w in SLOW_WORDS], delta_interval_s=0.4
    )
    async with running_daemon(tmp_path, reply) as daemon:
        session = await _session(daemon, tmp_path)
        args = ["--config", str(daemon.config), "turn", session, "Tell me slowly.", "--wait"]
        async with pty_process(*args) as pty:
            await pty.expect("The first words")
            code = await pty.wait()
        first = pty.seen_at("The first words")
        last = pty.seen_at("follows slowly.")
        assert code == 0, pty.text
        assert first is not None and last is not None
        print(f"first words at {first:.2f}s, last words at {last:.2f}s after start")
        # 13 words 0.4 s apart: the first ones are on the screen seconds before the last.
        assert last - first >= 3.0, (first, last)
        assert pty.text.count("follows slowly.") == 1  # streamed, not printed again at the end
        assert "turn completed after" in pty.text  # the elapsed time, on a terminal


async def test_a_pending_approval_is_shown_with_its_command_and_answered_elsewhere(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "approved.txt"
    replies = (Reply.shell(f"touch {marker}"), Reply.text("Created it."))
    async with running_daemon(tmp_path, *replies) as daemon:
        session = await _session(
            daemon, tmp_path, "--approval-policy", "untrusted", "--sandbox", "workspace-write"
        )
        args = ["--config", str(daemon.config), "turn", session, "Make the file.", "--wait"]
        async with pty_process(*args) as pty:
            match = await pty.expect(r"answer\s+(codexd approvals respond \S+ accept\|decline.*)")
            assert f"touch {marker}" in pty.text
            await pty.expect(r"\[a\]ccept")  # the inline prompt is offered on a terminal
            assert pty.process.returncode is None, "the turn must still be waiting"
            # The exact printed command, answered from another process.
            words = shlex.split(match.group(1).strip().replace("accept|decline", "accept"))
            assert words[:3] == ["codexd", "approvals", "respond"]
            answered = await cli(*words[1:])
            assert answered.returncode == 0, answered.stderr
            code = await pty.wait()
        assert code == 0, pty.text
        assert marker.exists()
        assert "Created it." in pty.text
        assert f"$ /bin/bash -lc 'touch {marker}'" in pty.text or f"touch {marker}" in pty.text
        assert "accept (by api)" in pty.text


async def test_the_inline_prompt_accepts_an_approval(tmp_path: Path) -> None:
    marker = tmp_path / "inline.txt"
    replies = (Reply.shell(f"touch {marker}"), Reply.text("Done inline."))
    async with running_daemon(tmp_path, *replies) as daemon:
        session = await _session(
            daemon, tmp_path, "--approval-policy", "untrusted", "--sandbox", "workspace-write"
        )
        args = ["--config", str(daemon.config), "turn", session, "Make it.", "--wait"]
        async with pty_process(*args) as pty:
            await pty.expect(r"\[a\]ccept, \[s\] for session, \[d\]ecline\? ")
            pty.write("a\n")
            code = await pty.wait()
        assert code == 0, pty.text
        assert marker.exists()
        assert "Done inline." in pty.text
        listed = await daemon.cli("approvals", "list", "--json")
        (approval,) = json.loads(listed.stdout)["approvals"]
        assert (approval["status"], approval["decidedBy"]) == ("accepted", "api")


async def test_turn_wait_waits_again_after_a_timeout(tmp_path: Path) -> None:
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    reply = Reply.text(" ".join(words), deltas=[w + " " for w in words], delta_interval_s=0.5)
    async with running_daemon(tmp_path, reply) as daemon:
        session = await _session(daemon, tmp_path)
        first = await daemon.cli("turn", session, "Count.", "--wait", "--timeout", "0.5")
        assert first.returncode == 1
        hint = first.stderr.decode()
        assert "is still running; wait again with: codexd turn wait" in hint
        # The printed command, exactly as a person would paste it.
        words = shlex.split(hint.split("wait again with: ", 1)[1])
        assert words[:4] == ["codexd", "turn", "wait", session]
        turn_id = words[4]
        again = await cli(*words[1:])
        assert again.returncode == 0, again.stderr
        assert "eight" in again.stdout.decode()
        # --json gives the result record only.
        done = await daemon.cli("turn", "wait", session, turn_id, "--json")
        assert json.loads(done.stdout)["status"] == "completed"


async def test_run_create_wait_shows_commands_and_the_answer(tmp_path: Path) -> None:
    marker = tmp_path / "run-marker"
    replies = (Reply.shell(f"touch {marker}"), Reply.text("The run is done."))
    async with running_daemon(tmp_path, *replies, mode="exec", exec_env=True) as daemon:
        args = ["--config", str(daemon.config), "run", "create", "Do the run."]
        args += ["--cwd", str(tmp_path), "--sandbox", "danger-full-access", "--wait"]
        async with pty_process(*args) as pty:
            code = await pty.wait(timeout=90)
        assert code == 0, pty.text
        assert marker.exists()
        assert f"touch {marker}" in pty.text
        assert "exit 0" in pty.text
        assert "The run is done." in pty.text
        assert "run completed after" in pty.text


async def test_ctrl_c_stops_waiting_but_not_the_turn(tmp_path: Path) -> None:
    words = ["still", "going", "after", "you", "stopped", "watching", "it", "end."]
    reply = Reply.text(" ".join(words), deltas=[w + " " for w in words], delta_interval_s=0.4)
    async with running_daemon(tmp_path, reply) as daemon:
        session = await _session(daemon, tmp_path)
        args = ["--config", str(daemon.config), "turn", session, "Go on.", "--wait"]
        async with pty_process(*args) as pty:
            await pty.expect("still going")
            pty.write("\x03")  # Ctrl-C at the terminal
            code = await pty.wait()
        assert code == 130, pty.text
        assert "stopped waiting; the turn goes on" in pty.text
        match = re.search(r"follow it: (codexd turn wait [^;]+);", pty.text)
        assert match is not None, pty.text
        again = await cli(*shlex.split(match.group(1))[1:], "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["finalMessage"] == " ".join(words)
