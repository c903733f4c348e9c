"""``codexd events``: stored events end, ``--follow`` is live, deltas merged, exit 3 on loss."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from codexd.testing import Reply

from .cli_support import running_daemon
from .helpers import run_codexd

WORDS = ["Merged", "deltas", "read", "as", "one", "line."]


async def test_events_without_follow_prints_the_stored_ones_and_ends(tmp_path: Path) -> None:
    reply = Reply.text(" ".join(WORDS), deltas=[w + " " for w in WORDS])
    async with running_daemon(tmp_path, reply) as daemon:
        created = await daemon.cli("session", "create", "--cwd", str(tmp_path), "--json")
        session = json.loads(created.stdout)["sessionId"]
        turn = await daemon.cli("turn", session, "Say it.", "--wait")
        assert turn.returncode == 0, turn.stderr

        everything = await daemon.cli("events", timeout=30)
        assert everything.returncode == 0, everything.stderr
        assert " daemon.started " in everything.stdout.decode()

        only = await daemon.cli("events", "--type", "daemon.", timeout=30)
        assert only.returncode == 0
        types = {line.split()[3] for line in only.stdout.decode().splitlines()}
        assert types == {"daemon.started"}

        # For people: the deltas of the message are one line with its seq range.
        human = (await daemon.cli("events", "--session", session)).stdout.decode()
        delta_lines = [line for line in human.splitlines() if ".agentMessage.delta" in line]
        assert len(delta_lines) == 1, human
        assert re.match(r"\s*\d+-\d+\s", delta_lines[0])
        assert "text: Merged deltas read as one line." in delta_lines[0]
        assert "None" not in human and "{'" not in human

        # With --json every event is its own JSON line, deltas included.
        raw = await daemon.cli("events", "--session", session, "--json")
        events = [json.loads(line) for line in raw.stdout.decode().splitlines()]
        deltas = [e for e in events if e["type"] == "app-server.item.agentMessage.delta"]
        assert "".join(e["detail"]["delta"] for e in deltas).split() == WORDS
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

        # Any method of the API table, params as JSON.
        got = await daemon.cli("api", "session/get", json.dumps({"sessionId": session}))
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["lastTurnStatus"] == "completed"

        # An API error under --json: the daemon's code and the field it names.
        unknown = await daemon.cli("session", "show", "session-nope", "--json")
        assert unknown.returncode == 1
        error = json.loads(unknown.stderr)["error"]
        assert (error["kind"], error["field"]) == ("api", "sessionId")
        assert "unknown session" in error["message"]


async def test_follow_starts_live_and_exits_3_when_the_daemon_goes_away(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, mode="exec", exec_env=True) as daemon:
        stored = await daemon.cli("events", "--json")
        last_seq = max(json.loads(line)["seq"] for line in stored.stdout.decode().splitlines())
        argv = ["--config", str(daemon.config), "events", "--follow", "--json"]
        async with trio.open_nursery() as nursery:
            follower, out, err = await run_codexd(nursery, argv)
            # The follower subscribes at some point after it starts: queue runs until one of
            # their events reaches it (each run makes events; none of them are stored ones).
            with trio.fail_after(60):
                while b"run." not in out:
                    queued = await daemon.cli("run", "create", "hi", "--cwd", str(tmp_path))
                    assert queued.returncode == 0, queued.stderr
                    with trio.move_on_after(1):
                        while b"run." not in out:
                            await trio.sleep(0.05)
            seen = [json.loads(line) for line in bytes(out).splitlines() if line.strip()]
            assert all(e["seq"] > last_seq for e in seen), "replayed stored events"
            assert not any(e["type"] == "daemon.started" for e in seen)

            assert await daemon.serve.stop() == 0
            with trio.fail_after(30):
                code = await follower.wait()
        assert code == 3, bytes(err)
        assert b"lost the connection to the daemon" in err
        assert b"daemon.stopped" not in err
