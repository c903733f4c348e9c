"""One place to configure Codex: exec runs and ``smoke --real`` follow the child's settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from codexd import ApiConfig, ChildConfig, Config, RunsConfig, StopConfig, open_daemon
from codexd._smoke import run_real_smoke
from codexd.testing import Reply, open_fake_provider, write_codex_home


def exec_config(tmp_path: Path, child: ChildConfig, runs: RunsConfig | None = None) -> Config:
    return Config(
        mode="exec",
        state_dir=str(tmp_path / "state"),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1.0),
        child=child,
        runs=runs or RunsConfig(),
    )


async def test_run_without_env_uses_child_env(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.text("from child.env")) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        config = exec_config(tmp_path, ChildConfig(env=home.env({})))
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                run = await daemon.create_run("Say it.", cwd=str(tmp_path))
                done = await daemon.wait_run(run.run_id, timeout=45)
        assert done.status == "completed", done.error
        assert done.summary == "from child.env"
        assert provider.requests


async def test_runs_command_and_env_override_the_child(tmp_path: Path) -> None:
    # The child's command would fail; runs.command / runs.env say otherwise and win.
    recorder = tmp_path / "record.py"
    recorder.write_text(
        "import json, os, sys\n"
        "open(os.environ['OUT'], 'w').write(json.dumps({'argv': sys.argv[1:], "
        "'flag': os.environ.get('FLAG'), 'child': os.environ.get('CHILD_ONLY')}))\n"
        "print(json.dumps({'type': 'turn.completed', 'usage': {}}))\n"
    )
    launcher = tmp_path / "codex-like"
    launcher.write_text(f'#!/bin/sh\nexec {sys.executable} {recorder} "$@"\n')
    launcher.chmod(0o755)
    out = tmp_path / "seen.json"
    config = exec_config(
        tmp_path,
        ChildConfig(command="/bin/false", env={"CHILD_ONLY": "1"}),
        RunsConfig(command=str(launcher), env={"FLAG": "runs", "OUT": str(out)}),
    )
    with trio.fail_after(30):
        async with open_daemon(config) as daemon:
            run = await daemon.create_run("hi", cwd=str(tmp_path))
            done = await daemon.wait_run(run.run_id, timeout=20)
    assert done.status == "completed", done.error
    import json

    seen = json.loads(out.read_text())
    assert seen["argv"][:2] == ["exec", "--json"]
    assert seen["flag"] == "runs"
    assert seen["child"] is None  # runs.env replaces child.env, it does not add to it
    assert "CODEXD_DAEMON_ID" not in os.environ


async def test_real_smoke_honours_child_command(tmp_path: Path) -> None:
    config = Config(
        state_dir=str(tmp_path / "state"),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1.0),
        child=ChildConfig(command="/bin/false"),
    )
    with trio.fail_after(60):
        result = await run_real_smoke(config, timeout_s=30)
    assert not result.ok
    started = next(c for c in result.checks if c.name == "app_server_started")
    assert started.status == "failed"
