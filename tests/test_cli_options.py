"""The shared options anywhere on the line, errors under ``--json``, choices, colour rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trio

from .cli_support import SGR, cli, pty_process
from .helpers import start_serve
from .served import write_config

POSITIONS = ["before", "after"]


def _line(position: str, shared: list[str], *command: str) -> list[str]:
    return [*shared, *command] if position == "before" else [*command, *shared]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["events"],
        ["events", "--follow"],
        ["session", "list"],
        ["turn", "wait", "session-x"],
        ["run", "list"],
        ["approvals", "list"],
        ["restart-child"],
    ],
)
async def test_state_dir_reaches_every_client_command(
    tmp_path: Path, position: str, command: list[str]
) -> None:
    state = tmp_path / "nowhere"
    proc = await cli(*_line(position, ["--state-dir", str(state)], *command))
    assert proc.returncode == 3, proc.stderr
    assert f"no running daemon found in {state}" in proc.stderr.decode()


@pytest.mark.parametrize("position", POSITIONS)
async def test_config_and_json_anywhere_for_config_show(tmp_path: Path, position: str) -> None:
    config = write_config(tmp_path, {})
    proc = await cli(*_line(position, ["--config", str(config), "--json"], "config", "show"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["state_dir"] == str(tmp_path / "state")
    other = tmp_path / "other"
    mixed = await cli("--json", "config", "show", "--state-dir", str(other))
    assert json.loads(mixed.stdout)["state_dir"] == str(other)


@pytest.mark.parametrize("position", POSITIONS)
async def test_smoke_takes_the_state_dir_anywhere(tmp_path: Path, position: str) -> None:
    state = tmp_path / "smoke-state"
    proc = await cli(*_line(position, ["--state-dir", str(state), "--json"], "smoke"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stateDir"] == str(state)
    assert (state / "state.sqlite3").is_file()


@pytest.mark.parametrize("position", POSITIONS)
async def test_serve_takes_config_and_state_dir_anywhere(tmp_path: Path, position: str) -> None:
    config = write_config(tmp_path, {}, mode="exec")
    state = tmp_path / "chosen-state"
    shared = ["--config", str(config), "--state-dir", str(state), "--json"]
    async with trio.open_nursery() as nursery:
        process, out, err = await _serve_json(nursery, _line(position, shared, "serve"))
        ready = json.loads(bytes(out).split(b"\n", 1)[0])
        assert ready["ready"] is True
        assert ready["stateDir"] == str(state)
        assert ready["mode"] == "exec"  # from the config file
        status = await cli("status", "--json", "--state-dir", str(state))
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["daemon"]["mode"] == "exec"
        # An API error under --json: one object on stderr with the daemon's code.
        restarted = await cli("--state-dir", str(state), "restart-child", "--json")
        assert restarted.returncode == 1, restarted.stderr
        error = json.loads(restarted.stderr)["error"]
        assert error["kind"] == "api"
        assert isinstance(error["code"], int)
        assert "no app-server in this mode" in error["message"]
        process.terminate()
        with trio.fail_after(30):
            assert await process.wait() == 0, bytes(err)
        stopping = [json.loads(line) for line in bytes(out).splitlines()[1:]]
        assert stopping == [{"stopping": True, "signal": "SIGTERM"}]


async def _serve_json(
    nursery: trio.Nursery, args: list[str]
) -> tuple[trio.Process, bytearray, bytearray]:
    from .helpers import run_codexd

    process, out, err = await run_codexd(nursery, args)
    with trio.fail_after(60):
        while b"\n" not in out:
            assert process.poll() is None, bytes(err)
            await trio.sleep(0.02)
    return process, out, err


async def test_serve_reads_a_config_given_after_the_subcommand(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    proc = await cli("serve", "--config", str(missing))
    assert proc.returncode == 1
    assert f"config file not found: {missing}" in proc.stderr.decode()
    as_json = await cli("serve", "--config", str(missing), "--json")
    error = json.loads(as_json.stderr)["error"]
    assert error == {
        "kind": "config",
        "message": f"config file not found: {missing}",
        "exitCode": 1,
    }


async def test_errors_under_json_are_one_object_on_stderr(tmp_path: Path) -> None:
    unreachable = await cli("status", "--json", "--state-dir", str(tmp_path))
    assert unreachable.returncode == 3
    assert unreachable.stdout == b""
    error = json.loads(unreachable.stderr)["error"]
    assert (error["kind"], error["exitCode"]) == ("unreachable", 3)
    usage = await cli("--json", "session", "list", "--status", "bogus")
    assert usage.returncode == 2
    error = json.loads(usage.stderr)["error"]
    assert (error["kind"], error["exitCode"]) == ("usage", 2)
    assert "'bogus' is not one of 'active', 'closed'" in error["message"]


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["session", "create", "--cwd", "/nonexistent/dir"], "'/nonexistent/dir' does not exist"),
        (["session", "create", "--approval-policy", "bogus"], "'bogus' is not one of"),
        (["session", "create", "--sandbox", "yolo"], "'yolo' is not one of"),
        (["run", "create", "x", "--cwd", "/nonexistent/dir"], "does not exist"),
        (["run", "list", "--status", "bogus"], "'bogus' is not one of"),
        (["approvals", "list", "--status", "maybe"], "'maybe' is not one of"),
        (["approvals", "respond", "approval-1", "maybe"], "'maybe' is not one of"),
        (["events", "--since", "-1"], "-1 is not in the range x>=0"),
        (["api", "no/such-method"], "'no/such-method' is not one of"),
        (["api", "daemon/status", "[1]"], "must be a JSON object"),
    ],
)
async def test_choices_and_paths_are_checked_before_the_daemon(
    tmp_path: Path, args: list[str], wanted: str
) -> None:
    # No daemon: a usage error (2) proves the value was refused before any connection.
    proc = await cli(*args, "--state-dir", str(tmp_path / "none"))
    assert proc.returncode == 2, proc.stderr
    assert wanted in proc.stderr.decode()


async def test_run_create_config_is_codexd_and_codex_overrides_are_dash_c(tmp_path: Path) -> None:
    missing = tmp_path / "other.toml"
    proc = await cli("run", "create", "hello", "--config", str(missing), "-c", "model=x")
    assert proc.returncode == 1
    assert f"config file not found: {missing}" in proc.stderr.decode()


async def test_colour_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    args = ["status", "--state-dir", str(tmp_path / "none")]
    async with pty_process(*args) as pty:
        assert await pty.wait() == 3
    assert SGR.search(bytes(pty.output)), bytes(pty.output)
    async with pty_process(*args, env={"NO_COLOR": "1"}) as pty:
        assert await pty.wait() == 3
    assert not SGR.search(bytes(pty.output)), bytes(pty.output)
    assert "no running daemon found" in pty.text
    piped = await cli(*args)  # not a terminal: never colour
    assert not SGR.search(piped.stderr)


async def test_help_lists_the_shared_options_on_subcommands() -> None:
    proc = await cli("turn", "wait", "--help")
    text = proc.stdout.decode()
    for option in ("--config", "--state-dir", "--json", "--timeout"):
        assert re.search(rf"^\s+{option}\b", text, re.M), option


async def test_start_serve_helper_still_reads_the_ready_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, {}, mode="exec")
    async with trio.open_nursery() as nursery:
        serve = await start_serve(nursery, ["serve", "--config", str(config)])
        assert serve.ready["stateDir"] == str(tmp_path / "state")
        assert await serve.stop() == 0
