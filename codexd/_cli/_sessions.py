"""``codexd session create|list|show|close``: app-server threads held by the daemon."""

from __future__ import annotations

from typing import Any, get_args

import click

from .._params import Sandbox, SessionStatus
from ._app import CodexdGroup
from ._calls import call
from ._output import Output
from ._status import id_status

#: The app-server's approval policy names (``SessionSettings.approval_policy``).
APPROVAL_POLICIES = ("untrusted", "on-failure", "on-request", "never")
SANDBOXES: tuple[str, ...] = get_args(Sandbox)

#: The order in which ``session show`` lists a session's fields.
SESSION_FIELDS = (
    "sessionId",
    "status",
    "purpose",
    "threadId",
    "cwd",
    "model",
    "modelProvider",
    "serviceTier",
    "reasoningEffort",
    "currentTurnId",
    "lastTurnId",
    "lastTurnStatus",
    "lastError",
    "endpoint",
    "childPid",
    "createdAt",
    "updatedAt",
    "metadata",
    "settings",
)

#: A directory that must exist, given to the daemon as an absolute path.
EXISTING_DIR = click.Path(exists=True, file_okay=False, resolve_path=True)


@click.group("session", cls=CodexdGroup)
def session_group() -> None:
    """Manage sessions (app-server threads)."""


@session_group.command("create")
@click.option("--purpose", default="general", show_default=True)
@click.option("--cwd", type=EXISTING_DIR, help="Working directory of the thread.")
@click.option("--model")
@click.option("--approval-policy", type=click.Choice(APPROVAL_POLICIES))
@click.option("--sandbox", type=click.Choice(SANDBOXES))
@click.option("--thread-id", help="Resume this existing thread.")
@click.pass_context
def session_create(
    ctx: click.Context,
    purpose: str,
    cwd: str | None,
    model: str | None,
    approval_policy: str | None,
    sandbox: str | None,
    thread_id: str | None,
) -> None:
    """Open a session (a new thread, or --thread-id to resume one); prints its id."""
    out = Output.of(ctx)
    params = {
        "purpose": purpose,
        "cwd": cwd,
        "model": model,
        "approvalPolicy": approval_policy,
        "sandbox": sandbox,
        "threadId": thread_id,
    }
    s = call(ctx, "session/create", params)
    out.emit(s, [s["sessionId"]])


@session_group.command("list")
@click.option("--status", type=click.Choice(get_args(SessionStatus)))
@click.pass_context
def session_list(ctx: click.Context, status: str | None) -> None:
    """List sessions."""
    out = Output.of(ctx)
    result = call(ctx, "session/list", {"status": status})
    if out.as_json:
        out.json(result)
        return
    out.table(["SESSION", "STATUS", "PURPOSE", "THREAD", "LAST TURN"], session_rows(result))


def session_rows(result: dict[str, Any]) -> list[list[Any]]:
    return [
        [s["sessionId"], s["status"], s["purpose"], s.get("threadId"), s.get("lastTurnStatus")]
        for s in result["sessions"]
    ]


@session_group.command("show")
@click.argument("session_id")
@click.pass_context
def session_show(ctx: click.Context, session_id: str) -> None:
    """Show one session."""
    Output.of(ctx).record(call(ctx, "session/get", {"sessionId": session_id}), SESSION_FIELDS)


@session_group.command("close")
@click.argument("session_id")
@click.pass_context
def session_close(ctx: click.Context, session_id: str) -> None:
    """Close a session (its thread stays in CODEX_HOME)."""
    _show_session(ctx, call(ctx, "session/close", {"sessionId": session_id}))


@session_group.command("fork")
@click.argument("session_id")
@click.option("--purpose", help="The new session's purpose (default: the original's).")
@click.pass_context
def session_fork(ctx: click.Context, session_id: str, purpose: str | None) -> None:
    """Open a new session on a fork of SESSION_ID's thread (with its conversation)."""
    out = Output.of(ctx)
    s = call(ctx, "session/fork", {"sessionId": session_id, "purpose": purpose})
    out.emit(s, [s["sessionId"]])


@session_group.command("revert")
@click.argument("session_id")
@click.option("--turns", type=click.IntRange(min=1), default=1, show_default=True)
@click.pass_context
def session_revert(ctx: click.Context, session_id: str, turns: int) -> None:
    """Drop the last N turns of SESSION_ID's thread."""
    _show_session(ctx, call(ctx, "session/revert", {"sessionId": session_id, "turns": turns}))


@session_group.command("compact")
@click.argument("session_id")
@click.pass_context
def session_compact(ctx: click.Context, session_id: str) -> None:
    """Compact SESSION_ID's conversation history (Codex summarises it)."""
    _show_session(ctx, call(ctx, "session/compact", {"sessionId": session_id}))


@session_group.command("rename")
@click.argument("session_id")
@click.argument("name")
@click.pass_context
def session_rename(ctx: click.Context, session_id: str, name: str) -> None:
    """Give SESSION_ID's thread a name."""
    _show_session(ctx, call(ctx, "session/rename", {"sessionId": session_id, "name": name}))


def _show_session(ctx: click.Context, result: Any) -> None:
    s = result.get("session", result) if isinstance(result, dict) else result
    Output.of(ctx).emit(result, [id_status(s.get("sessionId", ""), s.get("status"))])
