"""Codex through the daemon: ``call`` (the pass-through), ``threads``, ``models``, ``account``,
``review`` and ``console`` (the web console's login link)."""

from __future__ import annotations

import json
import webbrowser
from typing import Any

import click

from .._config import Config
from .._console._login import console_login_url
from .._errors import DaemonUnreachable
from ._app import EXIT_FAILED, CliError, load
from ._calls import call
from ._output import Output, human


def _json_object(value: str | None, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=name) from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=name)
    return parsed


@click.command("call")
@click.argument("method")
@click.argument("params", required=False)
@click.pass_context
def call_command(ctx: click.Context, method: str, params: str | None) -> None:
    """Send METHOD (with PARAMS, a JSON object) to the app-server through the daemon.

    Guarded by the daemon's appserver.allow / appserver.deny; prints the result as JSON.
    """
    body: dict[str, Any] = {"method": method}
    given = _json_object(params, "PARAMS")
    if given is not None:
        body["params"] = given
    Output.of(ctx).json(call(ctx, "appServer/request", body))


@click.command("threads")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--search", "search_term", help="Only threads whose text contains this.")
@click.pass_context
def threads(ctx: click.Context, limit: int, search_term: str | None) -> None:
    """List Codex's own threads (those held by a codexd session are marked)."""
    out = Output.of(ctx)
    result = call(ctx, "thread/list", {"limit": limit, "searchTerm": search_term})
    if out.as_json:
        out.json(result)
        return
    rows = [
        [t.get("id"), t.get("codexdSessionId"), t.get("cwd"), (t.get("preview") or "")[:60]]
        for t in result["data"]
    ]
    out.table(["THREAD", "SESSION", "CWD", "PREVIEW"], rows)


@click.command("models")
@click.option("--all", "include_hidden", is_flag=True, help="Include hidden models.")
@click.pass_context
def models(ctx: click.Context, include_hidden: bool) -> None:
    """List the models Codex offers."""
    out = Output.of(ctx)
    result = call(ctx, "model/list", {"includeHidden": include_hidden or None})
    if out.as_json:
        out.json(result)
        return
    rows = [[m.get("id") or m.get("model"), m.get("displayName")] for m in result["data"]]
    out.table(["MODEL", "NAME"], rows)


@click.command("account")
@click.pass_context
def account(ctx: click.Context) -> None:
    """Show Codex's login state."""
    out = Output.of(ctx)
    result = call(ctx, "account/read", {})
    if out.as_json:
        out.json(result)
        return
    acct = result.get("account")
    out.line("not logged in" if not acct else f"logged in: {human(acct)}")


@click.command("review")
@click.argument("session_id")
@click.option("--base", "base_branch", help="Review against this branch.")
@click.option("--commit", "sha", help="Review this commit.")
@click.option("--instructions", help="A custom review prompt.")
@click.pass_context
def review(
    ctx: click.Context,
    session_id: str,
    base_branch: str | None,
    sha: str | None,
    instructions: str | None,
) -> None:
    """Start a code review as a turn of SESSION_ID (default: the uncommitted changes).

    Prints the review turn's id; wait for it with ``codexd turn wait SESSION_ID TURN_ID``.
    """
    if sum(x is not None for x in (base_branch, sha, instructions)) > 1:
        raise CliError("give at most one of --base, --commit, --instructions", exit_code=2)
    target: dict[str, Any] = {"type": "uncommittedChanges"}
    if base_branch is not None:
        target = {"type": "baseBranch", "branch": base_branch}
    elif sha is not None:
        target = {"type": "commit", "sha": sha}
    elif instructions is not None:
        target = {"type": "custom", "instructions": instructions}
    out = Output.of(ctx)
    result = call(ctx, "review/start", {"sessionId": session_id, "target": target})
    out.emit(result, [result["turnId"]])


@click.command("console")
@click.option("--open", "open_browser", is_flag=True, help="Open the link in a web browser.")
@click.pass_context
def console(ctx: click.Context, open_browser: bool) -> None:
    """Print a login link for the web console (it works once, within 10 minutes)."""
    out = Output.of(ctx)
    call(ctx, "daemon/status")  # exits 3 with a message when no daemon answers
    config: Config = load(ctx)
    try:
        url = console_login_url(config.state_path)
    except DaemonUnreachable as exc:  # a unix-socket listener: no browser can reach it
        raise CliError(f"no console: {exc}", exit_code=EXIT_FAILED) from exc
    opened = bool(open_browser and webbrowser.open(url))
    if open_browser and not opened:
        out.note("could not start a browser; open this link yourself:")
    out.emit({"url": url, "opened": opened}, [url])
