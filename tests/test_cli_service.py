"""docs/codexd.service starts codexd with no configuration file present."""

from __future__ import annotations

import shlex
from pathlib import Path

import trio

from .helpers import start_serve

UNIT = Path(__file__).resolve().parent.parent / "docs" / "codexd.service"


def _unit_settings() -> tuple[dict[str, str], list[str], list[str]]:
    env: dict[str, str] = {}
    files: list[str] = []
    argv: list[str] = []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("Environment="):
            key, _, value = line[len("Environment=") :].partition("=")
            env[key] = value
        elif line.startswith("EnvironmentFile="):
            files.append(line[len("EnvironmentFile=") :])
        elif line.startswith("ExecStart="):
            argv = shlex.split(line[len("ExecStart=") :])
    return env, files, argv


async def test_the_unit_runs_without_a_config_file(tmp_path: Path) -> None:
    env, files, argv = _unit_settings()
    assert argv[0].endswith("/codexd") and argv[1:] == ["serve"]
    assert "CODEXD_CONFIG" not in env, "a missing config file would stop the unit from starting"
    assert all(f.startswith("-") for f in files), "environment files must be optional"
    env["CODEXD_STATE_DIR"] = str(tmp_path / "state")  # the unit's /var/lib/codexd
    env["CODEXD_API__LISTEN"] = "ws://127.0.0.1:0"
    async with trio.open_nursery() as nursery:
        serve = await start_serve(nursery, argv[1:], env={"CODEXD_CONFIG": "", **env})
        assert serve.ready["stateDir"] == str(tmp_path / "state")
        assert await serve.stop() == 0
