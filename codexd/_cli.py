"""The ``codexd`` command line: ``serve``, ``smoke``, ``config show``, and API client commands.

Exit codes a script can rely on: 0 ok, 1 a failed turn/run/check or an error, 2 usage error,
3 daemon unreachable.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import click
import trio

from ._config import Config, config_to_dict, load_config
from ._errors import CodexdError, ConfigError
from ._version import __version__

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def _load(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Config:
    path = ctx.obj.get("config_path") if ctx.obj else None
    merged = dict(ctx.obj.get("overrides", {}) if ctx.obj else {})
    merged.update(overrides or {})
    try:
        return load_config(path, overrides=merged)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(__version__, prog_name="codexd")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="CODEXD_CONFIG",
    help="TOML configuration file (default: $CODEXD_CONFIG; none needed).",
)
@click.option("--state-dir", type=click.Path(file_okay=False), help="State directory.")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, state_dir: str | None) -> None:
    """codexd: a local supervisor for OpenAI's Codex app-server."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["overrides"] = {"state_dir": state_dir} if state_dir else {}


@main.command()
@click.option("--mode", type=click.Choice(["app-server", "exec"]), help="Override config mode.")
@click.option("--listen", help="API address (ws://HOST:PORT or unix:///path).")
@click.option("--no-api", is_flag=True, help="Do not serve the local API.")
@click.pass_context
def serve(ctx: click.Context, mode: str | None, listen: str | None, no_api: bool) -> None:
    """Run the daemon in the foreground until SIGINT or SIGTERM."""
    overrides: dict[str, Any] = {"mode": mode, "api.listen": listen}
    if no_api:
        overrides["api.enabled"] = False
    config = _load(ctx, overrides)
    code = trio.run(_serve, config)
    sys.exit(code)


async def _serve(config: Config) -> int:
    """Run until SIGINT/SIGTERM; 0 after a clean stop, 1 if anything went wrong.

    A second SIGINT/SIGTERM while stopping exits at once (the app-server child exits when
    its stdin closes; exec children are reaped by the next start).
    """
    from ._daemon import Daemon, open_daemon

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
                print(f"codexd: {name} received again, exiting now", file=sys.stderr, flush=True)
                os._exit(EXIT_FAILED)
            print(f"codexd: {name} received, stopping", flush=True)
            stop.set()

    code = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, signals)
            try:
                async with open_daemon(config) as daemon:
                    running.append(daemon)
                    snapshot = daemon.status()
                    ready = {
                        "ready": True,
                        "pid": snapshot.daemon.pid,
                        "daemonId": snapshot.daemon_id,
                        "mode": config.mode,
                        "stateDir": str(config.state_path),
                        "api": daemon.info.api_url,
                        "child": snapshot.child.status,
                    }
                    print(f"codexd ready {json.dumps(ready)}", flush=True)
                    await stop.wait()
                if daemon.store.health().status == "degraded":
                    print(
                        "codexd: stopped with the state store degraded: "
                        f"{daemon.store.health().error}",
                        file=sys.stderr,
                        flush=True,
                    )
                    code = EXIT_FAILED
            except CodexdError as exc:
                print(f"codexd: {exc.message}", file=sys.stderr, flush=True)
                code = EXIT_FAILED
            nursery.cancel_scope.cancel()
    return code


@main.command()
@click.option("--real", is_flag=True, help="Run the real Codex app-server against a fake provider.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def smoke(ctx: click.Context, real: bool, as_json: bool) -> None:
    """Prove the build works end to end; exit 0 only if every check passes."""
    state_dir = ctx.obj["overrides"].get("state_dir")
    with tempfile.TemporaryDirectory(prefix="codexd-smoke-") as tmp:
        overrides = {} if state_dir else {"state_dir": tmp}
        config = _load(ctx, overrides)
        if real:
            from ._smoke import run_real_smoke

            result = trio.run(run_real_smoke, config)
        else:
            from ._smoke import run_embedded_smoke

            result = trio.run(run_embedded_smoke, config)
        from ._records import to_wire
        from ._smoke import format_checks

        if as_json:
            payload = {
                "ok": result.ok,
                "stateDir": result.state_dir,
                "message": result.message,
                "checks": [
                    {"name": c.name, "status": c.status, "detail": c.detail} for c in result.checks
                ],
                "snapshot": to_wire(result.snapshot) if result.snapshot else None,
            }
            click.echo(json.dumps(payload, indent=2))
        else:
            if result.message is not None:
                click.echo(f"final message: {result.message}")
            click.echo(format_checks(result))
    sys.exit(0 if result.ok else EXIT_FAILED)


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the resolved configuration (defaults < file < CODEXD_* env < flags)."""
    cfg = _load(ctx)
    data = config_to_dict(cfg)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for line in _toml_lines(data):
        click.echo(line)


def _toml_lines(data: dict[str, Any], prefix: str = "") -> list[str]:
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict) or k == "env"]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict) and k != "env"]
    lines = [f"{k} = {_toml_value(v)}" for k, v in scalars]
    for key, table in tables:
        lines.append("")
        lines.append(f"[{prefix}{key}]")
        lines.extend(_toml_lines(table, f"{prefix}{key}."))
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    if value is None:
        return '""  # unset'
    return json.dumps(value)


# ---- API client commands -----------------------------------------------------------------


def _state_dir(ctx: click.Context) -> Path:
    return _load(ctx).state_path


def _call(ctx: click.Context, method: str, params: dict[str, Any] | None = None) -> Any:
    """Call the running daemon; exit 3 if unreachable, 1 on an API error."""
    from .client import ApiError, DaemonUnreachable, open_client

    state_dir = _state_dir(ctx)

    async def go() -> Any:
        async with open_client(state_dir) as client:
            return await client.call(method, params or {})

    try:
        return trio.run(go)
    except DaemonUnreachable as exc:
        click.echo(f"codexd: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    except ApiError as exc:
        field = f" (field: {exc.field})" if exc.field else ""
        click.echo(f"codexd: {exc.message}{field}", err=True)
        sys.exit(EXIT_FAILED)


def _emit(data: Any, as_json: bool, table: list[str] | None = None) -> None:
    if as_json or table is None:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in table:
            click.echo(line)


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return [fmt.format(*headers)] + [fmt.format(*row) for row in rows]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@main.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the running daemon's status."""
    snap = _call(ctx, "daemon/status")
    d, c = snap["daemon"], snap["child"]
    lines = [
        f"daemon   {snap['daemonId']}  pid {d['pid']}  {d['status']}  mode {d['mode']}",
        f"child    {c['status']}  pid {c['pid']}  restarts {c['restartCount']}"
        + (f"  error: {c['lastError']}" if c.get("lastError") else ""),
        f"sessions {len(snap['sessions'])}  runs {snap['runs']}"
        f"  pending approvals {snap['pendingApprovals']}  last seq {snap['lastSeq']}",
    ]
    _emit(snap, as_json, lines)


@main.command("restart-child")
@click.pass_context
def restart_child(ctx: click.Context) -> None:
    """Restart an app-server child that hit its restart limit."""
    _call(ctx, "daemon/restartChild")
    click.echo("restart requested")


@main.group()
def session() -> None:
    """Manage sessions (app-server threads)."""


def _session_rows(sessions: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            s["sessionId"],
            s["status"],
            s["purpose"],
            s.get("threadId") or "-",
            s.get("lastTurnStatus") or "-",
        ]
        for s in sessions
    ]
    return _table(rows, ["SESSION", "STATUS", "PURPOSE", "THREAD", "LAST TURN"])


@session.command("create")
@click.option("--purpose", default="general")
@click.option("--cwd")
@click.option("--model")
@click.option("--approval-policy", help="untrusted, on-request or never")
@click.option(
    "--sandbox", type=click.Choice(["read-only", "workspace-write", "danger-full-access"])
)
@click.option("--thread-id", help="Resume this existing thread.")
@json_option
@click.pass_context
def session_create(
    ctx: click.Context,
    purpose: str,
    cwd: str | None,
    model: str | None,
    approval_policy: str | None,
    sandbox: str | None,
    thread_id: str | None,
    as_json: bool,
) -> None:
    """Open a session (a new thread, or --thread-id to resume one)."""
    params = {
        "purpose": purpose,
        "cwd": cwd,
        "model": model,
        "approvalPolicy": approval_policy,
        "sandbox": sandbox,
        "threadId": thread_id,
    }
    s = _call(ctx, "session/create", {k: v for k, v in params.items() if v is not None})
    _emit(s, as_json, [s["sessionId"]])


@session.command("list")
@click.option("--status", type=click.Choice(["active", "closed"]))
@json_option
@click.pass_context
def session_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List sessions."""
    result = _call(ctx, "session/list", {"status": status} if status else {})
    _emit(result, as_json, _session_rows(result["sessions"]))


@session.command("show")
@click.argument("session_id")
@json_option
@click.pass_context
def session_show(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """Show one session."""
    s = _call(ctx, "session/get", {"sessionId": session_id})
    _emit(s, as_json, [f"{k}: {v}" for k, v in s.items()])


@session.command("close")
@click.argument("session_id")
@json_option
@click.pass_context
def session_close(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """Close a session."""
    s = _call(ctx, "session/close", {"sessionId": session_id})
    _emit(s, as_json, [f"{s['sessionId']} {s['status']}"])


@main.command()
@click.argument("session_id")
@click.argument("text")
@click.option("--wait", is_flag=True, help="Wait for the turn to end; print the final message.")
@click.option("--steer", "steer_turn_id", help="Steer this running turn instead of starting one.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait with --wait.")
@json_option
@click.pass_context
def turn(
    ctx: click.Context,
    session_id: str,
    text: str,
    wait: bool,
    steer_turn_id: str | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Start (or --steer) a turn; with --wait, exit 1 unless it completed."""
    params: dict[str, Any] = {"sessionId": session_id, "input": text}
    if steer_turn_id:
        params["expectedTurnId"] = steer_turn_id
    accepted = _call(ctx, "turn/start", params)
    if not wait:
        _emit(accepted, as_json, [accepted["turnId"]])
        return
    if not as_json:
        click.echo(f"turn {accepted['turnId']} running...", err=True)
    wait_params: dict[str, Any] = {"sessionId": session_id, "turnId": accepted["turnId"]}
    if timeout is not None:
        wait_params["timeoutS"] = timeout
    result = _call(ctx, "turn/wait", wait_params)
    lines = [result.get("finalMessage") or ""]
    if result["status"] != "completed":
        lines.append(f"turn {result['turnId']} {result['status']}: {result.get('error')}")
    _emit(result, as_json, lines)
    sys.exit(0 if result["status"] == "completed" else EXIT_FAILED)


@main.command()
@click.argument("session_id")
@json_option
@click.pass_context
def interrupt(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """Interrupt the session's current turn."""
    result = _call(ctx, "turn/interrupt", {"sessionId": session_id})
    _emit(result, as_json, [f"turn {result['turnId']} {result['status']}"])


@main.group()
def run() -> None:
    """Queue and inspect one-shot `codex exec` runs."""


def _run_rows(runs: list[dict[str, Any]]) -> list[str]:
    rows = [
        [r["runId"], r["status"], r["purpose"], (r.get("summary") or r.get("error") or "")[:60]]
        for r in runs
    ]
    return _table(rows, ["RUN", "STATUS", "PURPOSE", "SUMMARY"])


@run.command("create")
@click.argument("prompt")
@click.option("--cwd")
@click.option(
    "--sandbox", type=click.Choice(["read-only", "workspace-write", "danger-full-access"])
)
@click.option("--model")
@click.option("--profile")
@click.option("--purpose")
@click.option("--timeout", type=float, help="Seconds before the run is stopped (timed_out).")
@click.option("-c", "--config", "overrides", multiple=True, help="Codex key=value override.")
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 unless completed.")
@json_option
@click.pass_context
def run_create(
    ctx: click.Context,
    prompt: str,
    cwd: str | None,
    sandbox: str | None,
    model: str | None,
    profile: str | None,
    purpose: str | None,
    timeout: float | None,
    overrides: tuple[str, ...],
    wait: bool,
    as_json: bool,
) -> None:
    """Queue a run."""
    params = {
        "prompt": prompt,
        "cwd": cwd,
        "sandbox": sandbox,
        "model": model,
        "profile": profile,
        "purpose": purpose,
        "timeoutS": timeout,
        "config": list(overrides) or None,
    }
    created = _call(ctx, "run/create", {k: v for k, v in params.items() if v is not None})
    if not wait:
        _emit(created, as_json, [created["runId"]])
        return
    if not as_json:
        click.echo(f"run {created['runId']} queued...", err=True)
    result = _call(ctx, "run/wait", {"runId": created["runId"]})
    lines = [result.get("summary") or ""]
    if result["status"] != "completed":
        lines.append(f"run {result['runId']} {result['status']}: {result.get('error')}")
    _emit(result, as_json, lines)
    sys.exit(0 if result["status"] == "completed" else EXIT_FAILED)


@run.command("list")
@click.option("--status")
@json_option
@click.pass_context
def run_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List runs."""
    result = _call(ctx, "run/list", {"status": status} if status else {})
    _emit(result, as_json, _run_rows(result["runs"]))


@run.command("show")
@click.argument("run_id")
@json_option
@click.pass_context
def run_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run."""
    r = _call(ctx, "run/get", {"runId": run_id})
    _emit(r, as_json, [f"{k}: {v}" for k, v in r.items()])


@run.command("cancel")
@click.argument("run_id")
@json_option
@click.pass_context
def run_cancel(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Cancel a queued or running run."""
    r = _call(ctx, "run/cancel", {"runId": run_id})
    _emit(r, as_json, [f"{r['runId']} {r['status']}"])


@main.group()
def approvals() -> None:
    """Pending server requests (approvals, user input) and their answers."""


@approvals.command("list")
@click.option("--status")
@json_option
@click.pass_context
def approvals_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List approvals."""
    result = _call(ctx, "approval/list", {"status": status} if status else {})
    rows = [
        [a["approvalId"], a["status"], a["method"], a.get("summary", "")[:60]]
        for a in result["approvals"]
    ]
    _emit(result, as_json, _table(rows, ["APPROVAL", "STATUS", "METHOD", "SUMMARY"]))


@approvals.command("respond")
@click.argument("approval_id")
@click.argument("decision", type=click.Choice(["accept", "acceptForSession", "decline", "cancel"]))
@json_option
@click.pass_context
def approvals_respond(ctx: click.Context, approval_id: str, decision: str, as_json: bool) -> None:
    """Answer a pending approval."""
    a = _call(ctx, "approval/respond", {"approvalId": approval_id, "decision": decision})
    _emit(a, as_json, [f"{a['approvalId']} {a['status']}"])


@main.command()
@click.option("--follow", "-f", is_flag=True, help="Keep streaming live events.")
@click.option("--since", type=int, default=0, help="Replay events after this seq.")
@click.option("--type", "type_prefix", help="Only event types starting with this.")
@click.option("--session", "session_id")
@click.option("--run", "run_id")
@json_option
@click.pass_context
def events(
    ctx: click.Context,
    follow: bool,
    since: int,
    type_prefix: str | None,
    session_id: str | None,
    run_id: str | None,
    as_json: bool,
) -> None:
    """Print stored events after --since; with --follow, keep streaming."""
    from .client import DaemonUnreachable, open_client

    state_dir = _state_dir(ctx)

    def show(event: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(event))
        else:
            click.echo(
                f"{event['seq']:>8}  {event['ts']}  {event['level']:<5}"
                f"  {event['type']}  {event['message']}"
            )

    async def go() -> None:
        async with open_client(state_dir) as client:
            if not follow:
                # The stored events after --since, page by page, then done.
                after = since
                while True:
                    page = await client.call(
                        "events/list",
                        {
                            k: v
                            for k, v in {
                                "after": after,
                                "type": type_prefix,
                                "sessionId": session_id,
                                "runId": run_id,
                            }.items()
                            if v is not None
                        },
                    )
                    for event in page["events"]:
                        show(event)
                    if not page["events"] or page["events"][-1]["seq"] >= page["lastSeq"]:
                        return
                    after = page["events"][-1]["seq"]
            async with aclosing(
                client.subscribe(
                    since, type_prefix=type_prefix, session_id=session_id, run_id=run_id
                )
            ) as stream:
                async for event in stream:
                    if event.get("dropped"):
                        click.echo(f"codexd: dropped: {event.get('reason')}", err=True)
                        sys.exit(EXIT_FAILED)
                    show(event)

    try:
        trio.run(go)
    except DaemonUnreachable as exc:
        click.echo(f"codexd: {exc}", err=True)
        sys.exit(EXIT_UNREACHABLE)
