"""The daemons the properties run against: their configs and the ids created at start."""

from __future__ import annotations

import atexit
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import trio

from codexd.testing import FakeAppServerScript

from ._cases import Rpc, _event_of
from ._daemon import Target, open_api, short_tmp_dir

FUZZ_CHILD = Path(__file__).resolve().parent / "fuzz_child.py"


def _base(child_command: list[str], **extra: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "child": {"command": child_command[0], "args": child_command[1:]},
        "api": {"listen": "ws://127.0.0.1:0"},
        "stop": {"grace_s": 1.0},
        "runs": {"default_timeout_s": 30.0},
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def fake_appserver_config(**script: Any) -> Callable[[Path], dict[str, Any]]:
    """codexd's own fake app-server as the child (sessions and turns work without Codex)."""
    command = FakeAppServerScript(**script).command()

    def build(_root: Path) -> dict[str, Any]:
        return _base(
            command,
            approvals={"timeout_s": 600.0},
            turns={"interrupt_timeout_s": 3.0},
        )

    return build


def fuzz_child_config(root: Path) -> dict[str, Any]:
    """fuzz_child.py as the child; its control socket path is kept short in /tmp."""
    socket_dir = short_tmp_dir()
    atexit.register(shutil.rmtree, socket_dir, ignore_errors=True)
    socket_path = str(socket_dir / "control.sock")
    config = _base(
        [sys.executable, "-I", "-u", str(FUZZ_CHILD), "--control", socket_path],
        approvals={"timeout_s": 600.0},
    )
    (root / "control-path").parent.mkdir(parents=True, exist_ok=True)
    (root / "control-path").write_text(socket_path)
    return config


# ---- setups (run once per daemon; their ids become @@NAME@@ refs) ------------------------------


async def _api_setup(target: Target) -> dict[str, str]:
    with trio.fail_after(60):
        async with open_api(target.url, target.token) as ws:
            rpc = Rpc(ws, "setup of the params daemon")
            s1 = await rpc.result("session/create", {"purpose": "general", "cwd": "/tmp"})
            await rpc.result(
                "events/subscribe", {"type": "approval.requested", "sessionId": s1["sessionId"]}
            )
            turn = await rpc.result("turn/start", {"sessionId": s1["sessionId"], "input": "hello"})
            note = await rpc.notification(
                lambda n: _event_of(n).get("type") == "approval.requested", 20
            )
            assert note is not None, "the fake app-server's approval request never arrived"
            approval = (_event_of(note).get("detail") or {})["approvalId"]
            s2 = await rpc.result("session/create", {"purpose": "review", "cwd": "/tmp"})
            run = await rpc.result("run/create", {"prompt": "hi", "timeoutS": 30})
            return {
                "SESSION": s1["sessionId"],
                "THREAD": s1["threadId"],
                "TURN": turn["turnId"],
                "APPROVAL": approval,
                "SESSION2": s2["sessionId"],
                "RUN": run["runId"],
            }


def api_setup(target: Target) -> dict[str, str]:
    return trio.run(_api_setup, target)


async def _child_setup(target: Target) -> dict[str, str]:
    assert target.daemon is not None
    control = (target.daemon.root / "control-path").read_text()
    with trio.fail_after(30):
        async with open_api(target.url, target.token) as ws:
            rpc = Rpc(ws, "setup of the child-output daemon")
            session = await rpc.result("session/create", {"purpose": "general", "cwd": "/tmp"})
    return {"SESSION": session["sessionId"], "THREAD": session["threadId"], "CONTROL": control}


def child_setup(target: Target) -> dict[str, str]:
    return trio.run(_child_setup, target)


def managed(target: Target) -> Iterator[Target]:
    """Fixture body: yield the target, then stop its daemon and check its store."""
    try:
        yield target
    finally:
        target.finish()
