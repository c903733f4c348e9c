"""The ``codexd`` command line: ``serve``, ``smoke``, ``config show``, and API client commands.

Exit codes a script can rely on: 0 ok, 1 a failed turn/run/check or an error, 2 usage error,
3 daemon unreachable.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from typing import Any

import click
import trio

from . import __version__
from .config import Config, config_to_dict, load_config
from .errors import ConfigError

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
    from .daemon import open_daemon

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with open_daemon(config) as daemon:
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
            async for signum in signals:
                if signum == signal.SIGHUP:
                    daemon.store.request_reopen()
                    continue
                print(f"codexd: {signal.Signals(signum).name} received, stopping", flush=True)
                break
    return 0


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
            from .smoke import run_real_smoke

            result = trio.run(run_real_smoke, config)
        else:
            from .smoke import run_embedded_smoke

            result = trio.run(run_embedded_smoke, config)
        from .records import to_wire
        from .smoke import format_checks

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
