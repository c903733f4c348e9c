"""``codexd approvals list|respond``, and how a pending approval is shown to a person.

:func:`approval_lines` is shared with the live turn view: what is asked, where, why, how long
is left, and the exact command that answers it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, get_args

import click
from rich.text import Text

from .._params import ApprovalStatusFilter, Decision
from ._app import CodexdGroup, command_line
from ._calls import call
from ._output import Output
from ._status import id_status, styled

DECISIONS: tuple[str, ...] = get_args(Decision)


def respond_command(ctx: click.Context, approval_id: str, decision: str = "accept|decline") -> str:
    """The exact command line that answers ``approval_id`` (with this invocation's
    ``--config``/``--state-dir``, so it reaches the same daemon)."""
    return command_line(ctx, "approvals", "respond", approval_id, raw=decision)


def time_left(deadline: str | None, now: dt.datetime | None = None) -> str | None:
    """``4m59s`` until an ISO ``deadline`` (``None`` without one, ``0s`` once passed)."""
    if not deadline:
        return None
    try:
        when = dt.datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = max(0, int((when - (now or dt.datetime.now(dt.UTC))).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _paths(params: dict[str, Any]) -> list[str]:
    changes = params.get("fileChanges") or params.get("changes")
    if isinstance(changes, dict):
        return [str(p) for p in changes]
    if isinstance(changes, list):
        return [str(c.get("path")) for c in changes if isinstance(c, dict) and c.get("path")]
    return []


def approval_lines(ctx: click.Context, approval: dict[str, Any]) -> list[Text]:
    """A pending approval for a person: the request, its details, the answering command."""
    params = approval.get("params") if isinstance(approval.get("params"), dict) else {}
    assert isinstance(params, dict)
    head = Text()
    head.append("approval needed", style="bold yellow")
    head.append(f"  {approval['approvalId']}: ")
    head.append(approval.get("summary") or approval.get("method") or "a server request")
    lines = [head]
    details: list[tuple[str, str]] = [("request", str(approval.get("method") or "-"))]
    if params.get("reason"):
        details.append(("reason", str(params["reason"])))
    if params.get("cwd"):
        details.append(("cwd", str(params["cwd"])))
    paths = _paths(params)
    if paths:
        details.append(("files", ", ".join(paths)))
    if params.get("grantRoot"):
        details.append(("grant root", str(params["grantRoot"])))
    left = time_left(approval.get("deadlineAt"))
    if left is not None:
        details.append(("expires", f"in {left} (then answered by approvals.on_timeout)"))
    for label, value in details:
        line = Text("    ")
        line.append(label.ljust(10), style="dim")
        line.append(value)
        lines.append(line)
    answer = Text("    ")
    answer.append("answer".ljust(10), style="dim")
    answer.append(respond_command(ctx, approval["approvalId"]), style="bold")
    lines.append(answer)
    return lines


@click.group("approvals", cls=CodexdGroup)
def approvals_group() -> None:
    """Pending server requests (approvals, user input) and their answers."""


@approvals_group.command("list")
@click.option("--status", type=click.Choice(get_args(ApprovalStatusFilter)))
@click.option("--session", "session_id", help="Only this session's approvals.")
@click.pass_context
def approvals_list(ctx: click.Context, status: str | None, session_id: str | None) -> None:
    """List approvals (pending ones show the command that answers them)."""
    out = Output.of(ctx)
    result = call(ctx, "approval/list", {"status": status, "sessionId": session_id})
    if out.as_json:
        out.json(result)
        return
    rows: list[Sequence[Any]] = [
        [
            a["approvalId"],
            styled(a["status"]).plain,
            a.get("sessionId"),
            (a.get("summary") or a.get("method") or "")[:70],
            time_left(a.get("deadlineAt")) if a["status"] == "pending" else a.get("decidedBy"),
        ]
        for a in result["approvals"]
    ]
    out.table(["APPROVAL", "STATUS", "SESSION", "SUMMARY", "LEFT/BY"], rows)
    pending = [a for a in result["approvals"] if a["status"] == "pending"]
    if pending:
        out.note(f"answer with: {respond_command(ctx, 'ID')}")


@approvals_group.command("respond")
@click.argument("approval_id")
@click.argument("decision", type=click.Choice(DECISIONS))
@click.pass_context
def approvals_respond(ctx: click.Context, approval_id: str, decision: str) -> None:
    """Answer a pending approval."""
    a = call(ctx, "approval/respond", {"approvalId": approval_id, "decision": decision})
    Output.of(ctx).emit(a, [id_status(a["approvalId"], a["status"])])
