"""``codexd run create|list|show|cancel``: one-shot ``codex exec`` runs.

``run create --wait`` follows the run live like ``turn --wait`` (agent messages on stdout,
commands, file changes and warnings on stderr) and exits 0 only if it completed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, get_args

import click
from rich.text import Text

from .._params import RunStatusFilter
from ._app import EXIT_FAILED, CodexdGroup, settings
from ._calls import call, compact, with_client
from ._follow import follow, last_seq
from ._live import RunView
from ._output import Output, human
from ._screen import Screen, elapsed_text
from ._sessions import EXISTING_DIR, SANDBOXES
from ._status import id_status

if TYPE_CHECKING:
    from ..client import ApiClient

RUN_FIELDS = (
    "runId",
    "status",
    "purpose",
    "sessionId",
    "cwd",
    "prompt",
    "summary",
    "error",
    "createdAt",
    "startedAt",
    "finishedAt",
    "result",
    "options",
    "metadata",
)


@click.group("run", cls=CodexdGroup)
def run_group() -> None:
    """Queue and inspect one-shot `codex exec` runs."""


@run_group.command("create")
@click.argument("prompt")
@click.option("--cwd", type=EXISTING_DIR, help="Working directory of the run.")
@click.option("--sandbox", type=click.Choice(SANDBOXES))
@click.option("--model")
@click.option("--profile")
@click.option("--purpose")
@click.option("--session", "session_id", help="Attach the run to this session.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds before it is stopped."
)
@click.option(
    "-c",
    "--codex-config",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="A Codex config override (`codex exec -c`); repeatable.",
)
@click.option("--wait", is_flag=True, help="Follow the run live; exit 1 unless it completed.")
@click.pass_context
def run_create(
    ctx: click.Context,
    prompt: str,
    cwd: str | None,
    sandbox: str | None,
    model: str | None,
    profile: str | None,
    purpose: str | None,
    session_id: str | None,
    timeout: float | None,
    overrides: tuple[str, ...],
    wait: bool,
) -> None:
    """Queue a run; prints its id (or, with --wait, follows it)."""
    out = Output.of(ctx)
    params = {
        "prompt": prompt,
        "cwd": cwd,
        "sandbox": sandbox,
        "model": model,
        "profile": profile,
        "purpose": purpose,
        "sessionId": session_id,
        "timeoutS": timeout,
        "config": list(overrides) or None,
    }
    if not wait:
        created = call(ctx, "run/create", params)
        out.emit(created, [created["runId"]])
        return

    async def work(client: ApiClient) -> dict[str, Any]:
        since = await last_seq(client)
        created = await client.call("run/create", compact(params))
        return await _follow_run(ctx, client, created["runId"], since)

    result = with_client(ctx, work)
    if out.as_json:
        out.json(result)
    elif result["status"] != "completed":
        out.err.print(
            Text(f"run {result['runId']} {result['status']}: {human(result.get('error'))}", "red")
        )
    sys.exit(0 if result["status"] == "completed" else EXIT_FAILED)


async def _follow_run(
    ctx: click.Context, client: ApiClient, run_id: str, since: int
) -> dict[str, Any]:
    if settings(ctx).as_json:
        result: dict[str, Any] = await client.call("run/wait", {"runId": run_id})
        return result
    screen = Screen("run")
    screen.set_activity("queued")
    view = RunView(ctx, client, screen, run_id)
    view.prompting = False  # exec runs never ask

    async def waiter() -> dict[str, Any]:
        answer: dict[str, Any] = await client.call("run/wait", {"runId": run_id})
        return answer

    last: Text | None = None
    try:
        result = await follow(client, view, since, waiter, run_id=run_id)
        view.finish_text(result.get("summary"))
        if screen.status_enabled:
            last = Text(f"run {result['status']} after {elapsed_text(screen.elapsed)}", "dim")
    finally:
        screen.close(last)
    return result


@run_group.command("list")
@click.option("--status", type=click.Choice(get_args(RunStatusFilter)))
@click.option("--session", "session_id", help="Only this session's runs.")
@click.pass_context
def run_list(ctx: click.Context, status: str | None, session_id: str | None) -> None:
    """List runs."""
    out = Output.of(ctx)
    result = call(ctx, "run/list", {"status": status, "sessionId": session_id})
    if out.as_json:
        out.json(result)
        return
    rows = [
        [
            r["runId"],
            r["status"],
            r["purpose"],
            " ".join(str(r.get("summary") or r.get("error") or "").split())[:60],
        ]
        for r in result["runs"]
    ]
    out.table(["RUN", "STATUS", "PURPOSE", "SUMMARY"], rows)


@run_group.command("show")
@click.argument("run_id")
@click.pass_context
def run_show(ctx: click.Context, run_id: str) -> None:
    """Show one run."""
    Output.of(ctx).record(call(ctx, "run/get", {"runId": run_id}), RUN_FIELDS)


@run_group.command("cancel")
@click.argument("run_id")
@click.pass_context
def run_cancel(ctx: click.Context, run_id: str) -> None:
    """Cancel a queued or running run."""
    r = call(ctx, "run/cancel", {"runId": run_id})
    Output.of(ctx).emit(r, [id_status(r["runId"], r["status"])])
