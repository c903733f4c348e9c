"""Commands that need no running daemon: ``smoke`` and ``config show``."""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

import click
import trio
from rich.text import Text

from .._config import config_to_dict
from ._app import EXIT_FAILED, CodexdGroup, load, state_dir_given
from ._output import Output


@click.command()
@click.option("--real", is_flag=True, help="Run the real Codex app-server against a fake provider.")
@click.pass_context
def smoke(ctx: click.Context, real: bool) -> None:
    """Prove the build works end to end; exit 0 only if every check passes."""
    out = Output.of(ctx)
    with tempfile.TemporaryDirectory(prefix="codexd-smoke-") as tmp:
        config = load(ctx, {} if state_dir_given(ctx) else {"state_dir": tmp})
        if real:
            from .._smoke import run_real_smoke

            result = trio.run(run_real_smoke, config)
        else:
            from .._smoke import run_embedded_smoke

            result = trio.run(run_embedded_smoke, config)
        from .._records import to_wire
        from .._smoke import format_checks

        if out.as_json:
            out.json(
                {
                    "ok": result.ok,
                    "stateDir": result.state_dir,
                    "message": result.message,
                    "checks": [
                        {"name": c.name, "status": c.status, "detail": c.detail}
                        for c in result.checks
                    ],
                    "snapshot": to_wire(result.snapshot) if result.snapshot else None,
                }
            )
        else:
            if result.message is not None:
                out.line(f"final message: {result.message}")
            for line in format_checks(result).splitlines():
                failed = "  failed  " in line or line.startswith("SMOKE FAILED")
                ok = line.startswith("all checks ok")
                out.line(line, style="red" if failed else "green" if ok else None)
    sys.exit(0 if result.ok else EXIT_FAILED)


@click.group("config", cls=CodexdGroup)
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the resolved configuration (defaults < file < CODEXD_* env < flags)."""
    out = Output.of(ctx)
    data = config_to_dict(load(ctx))
    if out.as_json:
        out.json(data)
        return
    for line in _toml_lines(data):
        out.line(Text(line, style="bold" if line.startswith("[") else ""))


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


@click.command("api-schema")
def api_schema() -> None:
    """Print the JSON Schema (draft 2020-12) of every API method's params and result.

    Generated from the method table and its records; docs/api.schema.json is this output.
    """
    from .._schema import api_schema_json

    sys.stdout.write(api_schema_json())
