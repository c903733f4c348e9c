"""``codexd turn [start] SESSION TEXT [--wait]``, ``codexd turn wait SESSION [TURN]``,
``codexd interrupt SESSION``.

With ``--wait`` (and always for ``turn wait``) the turn is followed live (see
:mod:`codexd._cli._live`): the agent's text on stdout as it streams, progress and approvals on
stderr. Exit 0 only if the turn completed; 1 if it failed, was interrupted or is still running
when ``--timeout`` passes (``codexd turn wait`` then waits again); 3 if the daemon is lost.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ._app import EXIT_FAILED, DefaultCommandGroup, command_line, settings
from ._calls import call, compact, interrupted, with_client
from ._follow import follow, last_seq
from ._live import TurnView
from ._output import Output, human
from ._screen import Screen, elapsed_text

if TYPE_CHECKING:
    from ..client import ApiClient

_timeout_option = click.option(
    "--timeout", type=click.FloatRange(min=0), help="Seconds to wait before giving up waiting."
)


@click.group("turn", cls=DefaultCommandGroup, default="start")
def turn_group() -> None:
    """Start a turn (`turn SESSION TEXT` is `turn start`), or wait for one (`turn wait`)."""


@turn_group.command("start")
@click.argument("session_id")
@click.argument("text")
@click.option("--wait", is_flag=True, help="Follow the turn live until it ends.")
@click.option("--steer", "steer_turn_id", help="Steer this running turn instead of starting one.")
@_timeout_option
@click.option(
    "--prompt/--no-prompt",
    "prompt",
    default=None,
    help="Ask accept/decline inline for approvals (default: when on a terminal).",
)
@click.pass_context
def turn_start(
    ctx: click.Context,
    session_id: str,
    text: str,
    wait: bool,
    steer_turn_id: str | None,
    timeout: float | None,
    prompt: bool | None,
) -> None:
    """Start (or --steer) a turn; with --wait, follow it and exit 1 unless it completed."""
    out = Output.of(ctx)
    params = {"sessionId": session_id, "input": text, "expectedTurnId": steer_turn_id}
    if not wait:
        accepted = call(ctx, "turn/start", params)
        out.emit(accepted, [accepted["turnId"]])
        return

    async def work(client: ApiClient) -> dict[str, Any]:
        accepted = await client.call("turn/start", compact(params))
        # The answer's since: every event of the turn has a larger seq.
        return await _follow_turn(
            ctx, client, session_id, accepted["turnId"], accepted["since"], timeout, prompt
        )

    _finish(ctx, with_client(ctx, work))


@turn_group.command("wait")
@click.argument("session_id")
@click.argument("turn_id", required=False)
@_timeout_option
@click.option("--prompt/--no-prompt", "prompt", default=None, help="Inline approval prompt.")
@click.pass_context
def turn_wait(
    ctx: click.Context,
    session_id: str,
    turn_id: str | None,
    timeout: float | None,
    prompt: bool | None,
) -> None:
    """Follow a turn (default: the session's current or last one) until it ends."""

    async def work(client: ApiClient) -> dict[str, Any]:
        since = await last_seq(client)
        target = turn_id
        if target is None:
            session = await client.call("session/get", {"sessionId": session_id})
            target = session.get("currentTurnId") or session.get("lastTurnId")
        return await _follow_turn(ctx, client, session_id, target, since, timeout, prompt)

    _finish(ctx, with_client(ctx, work))


async def _follow_turn(
    ctx: click.Context,
    client: ApiClient,
    session_id: str,
    turn_id: str | None,
    since: int,
    timeout: float | None,
    prompt: bool | None,
) -> dict[str, Any]:
    wait_params = compact({"sessionId": session_id, "turnId": turn_id, "timeoutS": timeout})
    if settings(ctx).as_json:
        result: dict[str, Any] = await client.call("turn/wait", wait_params)
        return result
    screen = Screen("turn")
    view = TurnView(ctx, client, screen, session_id, turn_id)
    if prompt is not None:
        view.prompting = prompt and view.prompting
    # Approvals already pending (``turn wait`` after a timeout) are shown first.
    pending = await client.call("approval/list", {"status": "pending", "sessionId": session_id})
    for approval in pending.get("approvals", []):
        if turn_id is None or approval.get("turnId") in (None, turn_id):
            view.add_pending(approval)

    async def waiter() -> dict[str, Any]:
        answer: dict[str, Any] = await client.call("turn/wait", wait_params)
        return answer

    last: Text | None = None
    try:
        result = await follow(client, view, since, waiter, session_id=session_id)
        view.finish_text(result.get("finalMessage"))
        if screen.status_enabled:
            last = Text(f"turn {result['status']} after {elapsed_text(screen.elapsed)}", "dim")
    except BaseException as exc:
        if interrupted(exc):
            again = command_line(ctx, "turn", "wait", session_id, turn_id or "")
            stop = command_line(ctx, "interrupt", session_id)
            last = Text(
                f"stopped waiting; the turn goes on (follow it: {again}; stop it: {stop})",
                "yellow",
            )
            raise KeyboardInterrupt from None
        raise
    finally:
        screen.close(last)
    return result


def _finish(ctx: click.Context, result: dict[str, Any]) -> None:
    """Print how the turn ended (JSON, or a line on stderr) and exit with its code."""
    out = Output.of(ctx)
    if out.as_json:
        out.json(result)
    elif result["status"] == "inProgress":
        command = command_line(ctx, "turn", "wait", result["sessionId"], result["turnId"])
        out.err.print(
            Text(f"turn {result['turnId']} is still running; wait again with: {command}", "yellow")
        )
    elif result["status"] != "completed":
        error = result.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else error
        out.err.print(
            Text(f"turn {result['turnId']} {result['status']}: {human(message)}", "bold red")
        )
    sys.exit(0 if result["status"] == "completed" else EXIT_FAILED)


@click.command()
@click.argument("session_id")
@click.pass_context
def interrupt(ctx: click.Context, session_id: str) -> None:
    """Interrupt the session's current turn."""
    out = Output.of(ctx)
    result = call(ctx, "turn/interrupt", {"sessionId": session_id})
    out.emit(result, [f"turn {result['turnId']} {result['status']}"])
