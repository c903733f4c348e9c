"""Following a turn or a run live: the daemon's events turned into what a person wants to see.

:class:`TurnView` reads the ``app-server.*`` and ``approval.*`` events of one session (the
events the daemon records from the app-server's notifications) and shows the agent's text as it
streams, one line per command run or file changed, warnings and retries as they happen, and
every pending approval with the command that answers it. :class:`RunView` does the same for the
``run.*`` events of a ``codex exec`` run (its JSONL items).

A view also runs the inline approval prompt on a terminal. :mod:`codexd._cli._follow` feeds it
the events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import trio
from rich.text import Text

from ._approvals import approval_lines
from ._calls import compact
from ._screen import LineReader, Screen, interactive

if TYPE_CHECKING:
    from ..client import ApiClient


_ANSWERS = {
    "a": "accept",
    "accept": "accept",
    "y": "accept",
    "yes": "accept",
    "s": "acceptForSession",
    "session": "acceptForSession",
    "d": "decline",
    "decline": "decline",
    "n": "decline",
    "no": "decline",
    "c": "cancel",
    "cancel": "cancel",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _command_text(command: Any) -> str:
    if isinstance(command, list):
        return " ".join(str(c) for c in command)
    return str(command or "a command")


class View:
    """What both views share: the screen, pending approvals and the inline prompt."""

    def __init__(self, ctx: click.Context, client: ApiClient, screen: Screen) -> None:
        self.ctx = ctx
        self.client = client
        self.screen = screen
        self.ended = trio.Event()
        #: Set by every event fed (see :func:`_drain`).
        self.fed = trio.Event()
        self.nursery: trio.Nursery | None = None
        self._reader: LineReader | None = None
        #: Pending approvals shown to the person, oldest first: id -> the approval.
        self.pending: dict[str, dict[str, Any]] = {}
        self.printed: list[str] = []
        self.prompting = interactive()

    async def feed(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def finish_text(self, final: str | None) -> None:
        """Print the final message unless the stream already showed it."""
        if final and (not self.printed or self.printed[-1].strip() != final.strip()):
            self.screen.end_text()
            self.screen.text(final)
        self.screen.end_text()

    # ---- approvals ---------------------------------------------------------------------------

    async def show_approval(self, approval_id: str, session_id: str | None) -> None:
        result = await self.client.call(
            "approval/list", compact({"status": "pending", "sessionId": session_id})
        )
        for approval in result.get("approvals", []):
            if approval["approvalId"] == approval_id and approval_id not in self.pending:
                self.add_pending(approval)

    def add_pending(self, approval: dict[str, Any]) -> None:
        self.pending[approval["approvalId"]] = approval
        for line in approval_lines(self.ctx, approval):
            self.screen.progress(line)
        self.start_prompt()

    def start_prompt(self) -> None:
        """Offer the inline prompt if something is pending (the terminal is read only then)."""
        if self.prompting and self.pending and self._reader is None and self.nursery is not None:
            self._reader = LineReader()
            self._reader.start(self.nursery)
            self.nursery.start_soon(self.answer_prompts, self._reader)
        self._update_prompt()

    def approval_done(self, detail: dict[str, Any], cancelled: bool) -> None:
        approval_id = str(detail.get("approvalId"))
        if self.pending.pop(approval_id, None) is None:
            return
        if cancelled:
            line = Text(f"approval {approval_id} closed unanswered", style="yellow")
        else:
            decision = detail.get("decision") or "answered"
            line = Text(f"approval {approval_id}: {decision} (by {detail.get('decidedBy')})")
            line.stylize("green" if str(decision).startswith("accept") else "red")
        self.screen.progress(line)
        self._update_prompt()

    def _update_prompt(self) -> None:
        if not self.prompting:
            return
        if not self.pending:
            self.screen.ask(None)
            return
        approval_id = next(iter(self.pending))
        self.screen.ask(f"{approval_id}: [a]ccept, [s] for session, [d]ecline? ")

    async def answer_prompts(self, reader: LineReader) -> None:
        """Answer the oldest pending approval from the lines typed at the terminal."""
        async for line in reader.lines:
            if not self.pending:
                continue
            decision = _ANSWERS.get(line.lower())
            if decision is None:
                self.screen.progress("type a (accept), s (accept for session) or d (decline)")
                continue
            approval_id = next(iter(self.pending))
            self.screen.ask(None)
            try:
                await self.client.call(
                    "approval/respond", {"approvalId": approval_id, "decision": decision}
                )
            except Exception as exc:  # an answer that lost the race, or a refused decision
                from ..client import ApiError

                if not isinstance(exc, ApiError):
                    raise
                self.screen.progress(Text(f"could not answer {approval_id}: {exc.message}", "red"))
            self._update_prompt()


class TurnView(View):
    """The live view of one turn; see the module docstring."""

    def __init__(
        self,
        ctx: click.Context,
        client: ApiClient,
        screen: Screen,
        session_id: str,
        turn_id: str | None,
    ) -> None:
        super().__init__(ctx, client, screen)
        self.session_id = session_id
        self.turn_id = turn_id
        self.streamed: dict[str, str] = {}
        self.current_item: str | None = None

    def _ours(self, detail: dict[str, Any]) -> bool:
        turn = detail.get("turnId") or _dict(detail.get("turn")).get("id")
        return self.turn_id is None or turn is None or turn == self.turn_id

    async def feed(self, event: dict[str, Any]) -> None:
        etype = str(event.get("type", ""))
        detail = _dict(event.get("detail"))
        if etype.startswith("approval."):
            await self._approval_event(etype, detail)
            return
        if not self._ours(detail):
            return
        if etype == "app-server.item.agentMessage.delta":
            item_id = str(detail.get("itemId"))
            delta = str(detail.get("delta") or "")
            if self.current_item not in (None, item_id):
                self.screen.end_text()
            self.current_item = item_id
            self.streamed[item_id] = self.streamed.get(item_id, "") + delta
            self.screen.set_activity("writing")
            self.screen.text(delta)
        elif etype == "app-server.item.started":
            self._item_started(_dict(detail.get("item")))
        elif etype == "app-server.item.completed":
            self._item_completed(_dict(detail.get("item")))
        elif etype in ("app-server.error", "app-server.warning", "turn.watchdog.fired"):
            self._warning(etype, event, detail)
        elif etype == "app-server.turn.completed" or etype in (
            "app-server.turn.completed.missing",
            "turn.settled",
            "turn.watchdog.failed",
        ):
            self.ended.set()

    async def _approval_event(self, etype: str, detail: dict[str, Any]) -> None:
        if etype == "approval.requested":
            if self._ours(detail) and detail.get("policy") in (None, "ask"):
                await self.show_approval(str(detail.get("approvalId")), self.session_id)
        elif etype in ("approval.decided", "approval.cancelled"):
            self.approval_done(detail, cancelled=etype == "approval.cancelled")

    def _item_started(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "commandExecution":
            self.screen.set_activity(f"running {_command_text(item.get('command'))}")
        elif kind == "fileChange":
            self.screen.set_activity("changing files")
        elif kind == "reasoning":
            self.screen.set_activity("thinking")
        elif kind in ("mcpToolCall", "dynamicToolCall", "webSearch"):
            self.screen.set_activity(f"using {item.get('tool') or kind}")

    def _item_completed(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        item_id = str(item.get("id"))
        if kind == "agentMessage":
            text = str(item.get("text") or "")
            streamed = self.streamed.get(item_id, "")
            if text.startswith(streamed):
                self.screen.text(text[len(streamed) :])
            elif not streamed:
                self.screen.text(text)
            self.streamed[item_id] = text
            self.printed.append(text)
            self.screen.end_text()
            self.current_item = None
            self.screen.set_activity("")
        elif kind == "commandExecution":
            self.screen.set_activity("")
            self.screen.progress(command_line(item.get("command"), item))
        elif kind == "fileChange":
            self.screen.set_activity("")
            for line in file_lines(item.get("changes"), item.get("status")):
                self.screen.progress(line)

    def _warning(self, etype: str, event: dict[str, Any], detail: dict[str, Any]) -> None:
        if etype == "app-server.error":
            message = _dict(detail.get("error")).get("message") or event.get("message")
            if detail.get("willRetry"):
                self.screen.progress(Text(f"warning: {message} (retrying)", style="yellow"))
            else:
                self.screen.progress(Text(f"error: {message}", style="red"))
        elif etype == "app-server.warning":
            self.screen.progress(Text(f"warning: {detail.get('message')}", style="yellow"))
        else:
            self.screen.progress(Text(f"warning: {event.get('message')}", style="yellow"))


def command_line(command: Any, item: dict[str, Any]) -> Text:
    """``$ cmd  exit 0`` (or declined, failed) for a finished command."""
    line = Text("$ ", style="cyan")
    line.append(_command_text(command))
    status = str(item.get("status") or "")
    code = item.get("exitCode", item.get("exit_code"))
    if status in ("declined", "failed") or (isinstance(code, int) and code != 0):
        line.append(f"  {status or 'failed'}" + (f" (exit {code})" if code is not None else ""))
        line.stylize("red", 2)
    elif code is not None:
        line.append(f"  exit {code}", style="dim")
    return line


def file_lines(changes: Any, status: Any) -> list[Text]:
    """One ``edited PATH`` line per changed file."""
    words = {"add": "added", "delete": "deleted", "update": "edited"}
    lines = []
    for change in changes if isinstance(changes, list) else []:
        if not isinstance(change, dict):
            continue
        kind = change.get("kind")
        kind_name = _dict(kind).get("type") if isinstance(kind, dict) else kind
        line = Text(f"{words.get(str(kind_name), 'changed')} ", style="cyan")
        line.append(str(change.get("path") or "?"))
        if status in ("declined", "failed"):
            line.append(f"  ({status})", style="red")
        lines.append(line)
    return lines


class RunView(View):
    """The live view of one ``codex exec`` run."""

    def __init__(self, ctx: click.Context, client: ApiClient, screen: Screen, run_id: str) -> None:
        super().__init__(ctx, client, screen)
        self.run_id = run_id

    async def feed(self, event: dict[str, Any]) -> None:
        etype = str(event.get("type", ""))
        detail = _dict(event.get("detail"))
        if etype == "run.started":
            self.screen.set_activity(f"started (pid {detail.get('pid')})")
        elif etype == "run.item":
            self._exec_event(detail)
        elif etype == "run.output.invalid":
            self.screen.progress(Text(f"warning: {event.get('message')}", style="yellow"))
        elif etype in ("run.requeued", "run.queued"):
            self.screen.set_activity("queued")
        elif etype.startswith("run.") and etype not in ("run.item", "run.output.invalid"):
            self.ended.set()

    def _exec_event(self, detail: dict[str, Any]) -> None:
        kind = detail.get("type")
        item = _dict(detail.get("item"))
        item_type = item.get("type")
        if kind == "item.started":
            if item_type == "command_execution":
                self.screen.set_activity(f"running {_command_text(item.get('command'))}")
            elif item_type == "reasoning":
                self.screen.set_activity("thinking")
        elif kind == "item.completed":
            if item_type == "agent_message":
                text = str(item.get("text") or "")
                self.screen.end_text()
                self.screen.text(text)
                self.screen.end_text()
                self.printed.append(text)
            elif item_type == "command_execution":
                self.screen.set_activity("")
                self.screen.progress(command_line(item.get("command"), item))
            elif item_type == "file_change":
                for line in file_lines(item.get("changes"), item.get("status")):
                    self.screen.progress(line)
            elif item_type == "error":
                self.screen.progress(Text(f"warning: {item.get('message')}", style="yellow"))
        elif kind == "error":
            self.screen.progress(Text(f"warning: {detail.get('message')}", style="yellow"))
        elif kind == "turn.failed":
            message = _dict(detail.get("error")).get("message")
            self.screen.progress(Text(f"error: {message}", style="red"))
