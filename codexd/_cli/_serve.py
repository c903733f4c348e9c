"""``codexd serve``: the daemon in the foreground until SIGINT or SIGTERM.

It prints one ready line when it is up (``codexd ready {...}``, or the bare JSON object under
``--json``), reopens its log files on SIGHUP, and exits 0 after a clean stop (1 if the store was
degraded or it could not start). ``--fake-provider`` adds the offline demo model
(:mod:`codexd._cli._fake`).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from typing import Any

import click
import trio

from .._config import Config, default_state_dir
from .._errors import CodexdError
from .._gc import tune_gc
from ._app import EXIT_FAILED, load, report_error, settings
from ._fake import FakeSetup, open_fake_setup

#: Seconds the fake-provider mode spends closing its sessions when it stops.
CLOSE_SESSIONS_S = 10.0


@click.command()
@click.option("--mode", type=click.Choice(["app-server", "exec"]), help="Override config mode.")
@click.option("--listen", help="API address (ws://HOST:PORT or unix:///path).")
@click.option("--no-api", is_flag=True, help="Do not serve the local API.")
@click.option(
    "--fake-provider",
    is_flag=True,
    help="Run Codex offline against a built-in fake model (no API key): a demo daemon.",
)
@click.pass_context
def serve(
    ctx: click.Context, mode: str | None, listen: str | None, no_api: bool, fake_provider: bool
) -> None:
    """Run the daemon in the foreground until SIGINT or SIGTERM."""
    overrides: dict[str, Any] = {"mode": mode, "api.listen": listen}
    if no_api:
        overrides["api.enabled"] = False
    config = load(ctx, overrides)
    as_json = settings(ctx).as_json
    code = trio.run(_serve, config, fake_provider, as_json)
    sys.exit(code)


def _say(as_json: bool, text: str, payload: dict[str, Any], *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write((json.dumps(payload) if as_json else text) + "\n")
    stream.flush()


async def _serve(config: Config, fake_provider: bool, as_json: bool) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop, 1 if anything went wrong.

    A second SIGINT/SIGTERM while stopping exits at once (the app-server child exits when
    its stdin closes; exec children are reaped by the next start).
    """
    from .._daemon import Daemon, open_daemon

    stop = trio.Event()
    running: list[Daemon] = []

    async def watch(signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                for daemon in running:
                    daemon.store.request_reopen()
                continue
            name = signal.Signals(signum).name
            if stop.is_set():
                _say(
                    as_json,
                    f"codexd: {name} received again, exiting now",
                    {"exiting": True, "signal": name},
                    err=True,
                )
                os._exit(EXIT_FAILED)
            _say(as_json, f"codexd: {name} received, stopping", {"stopping": True, "signal": name})
            stop.set()

    code = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, signals)
            try:
                async with AsyncExitStack() as stack:
                    fake: FakeSetup | None = None
                    if fake_provider:
                        fake = await stack.enter_async_context(open_fake_setup())
                        config = fake.apply(config)
                    daemon = await stack.enter_async_context(open_daemon(config))
                    running.append(daemon)
                    _ready(daemon, config, fake, as_json)
                    await stop.wait()
                    if fake is not None:
                        await _close_sessions(daemon)
                    await stack.aclose()
                    if daemon.store.health().status == "degraded":
                        _say(
                            as_json,
                            "codexd: stopped with the state store degraded: "
                            f"{daemon.store.health().error}",
                            {"error": {"kind": "degraded", "message": daemon.store.health().error}},
                            err=True,
                        )
                        code = EXIT_FAILED
            except CodexdError as exc:
                report_error(as_json, exc.message, EXIT_FAILED, kind="start")
                code = EXIT_FAILED
            nursery.cancel_scope.cancel()
    return code


def _ready(daemon: Any, config: Config, fake: FakeSetup | None, as_json: bool) -> None:
    snapshot = daemon.status()
    ready: dict[str, Any] = {
        "ready": True,
        "pid": snapshot.daemon.pid,
        "daemonId": snapshot.daemon_id,
        "mode": config.mode,
        "stateDir": str(config.state_path),
        "api": daemon.info.api_url,
        "child": snapshot.child.status,
    }
    if fake is not None:
        ready["fakeProvider"] = fake.provider.base_url
        ready["codexHome"] = str(fake.codex_home)
    _say(as_json, f"codexd ready {json.dumps(ready)}", ready)
    # Everything start-up built lives as long as the process: freeze it out of the collector's
    # walks and raise the thresholds (no full-GC pause in a turn; docs/performance.md).
    tune_gc()
    if fake is not None and not as_json:
        custom = config.state_dir != default_state_dir() and "CODEXD_STATE_DIR" not in os.environ
        here = f" --state-dir {shlex.quote(config.state_dir)}" if custom else ""
        sys.stderr.write(
            "codexd: offline demo: Codex talks to a fake model at "
            f"{fake.provider.base_url} (CODEX_HOME {fake.codex_home}, removed on exit).\n"
            "  In another terminal:\n"
            "    codexd session create --cwd . --approval-policy untrusted"
            f" --sandbox workspace-write{here}\n"
            f"    codexd turn SESSION 'run touch hello.txt' --wait{here}\n"
        )
        sys.stderr.flush()


async def _close_sessions(daemon: Any) -> None:
    """Close the active sessions: their threads lived in a CODEX_HOME that is about to go."""
    with trio.move_on_after(CLOSE_SESSIONS_S):
        for session in daemon.list_sessions(status="active"):
            with suppress(CodexdError):
                await daemon.close_session(session.session_id)
