"""``codexd events``: the event log, stored and (with ``--follow``) live.

Without ``--follow`` it prints the stored events after ``--since`` (page by page through
``events/list``) and ends. ``--follow`` streams live events, from now unless ``--since`` asks
for a replay first; a subscriber the daemon drops for lagging resubscribes from its last seq;
losing the daemon exits 3. For people, consecutive text deltas of one message are merged into
one line; ``--json`` prints every event as it is, one JSON object per line.
"""

from __future__ import annotations

import json
import sys
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import trio
from rich.text import Text

from ._calls import compact, lost, run_async, with_client
from ._output import Output

if TYPE_CHECKING:
    from ..client import ApiClient

DELTA = "app-server.item.agentMessage.delta"
#: Seconds without events after which merged deltas are printed (``--follow``).
FLUSH_S = 0.5
LEVEL_STYLES = {"warn": "yellow", "error": "bold red"}


class DeltaMerger:
    """Merges runs of text deltas of one message into one printable event."""

    def __init__(self) -> None:
        self._first: dict[str, Any] | None = None
        self._last_seq = 0
        self._text: list[str] = []

    def _key(self, event: dict[str, Any]) -> Any:
        detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
        assert isinstance(detail, dict)
        return (event.get("sessionId"), detail.get("itemId"))

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to print now (merged deltas come out when their run ends)."""
        out: list[dict[str, Any]] = []
        if event.get("type") == DELTA:
            if self._first is not None and self._key(self._first) != self._key(event):
                out.extend(self.flush())
            if self._first is None:
                self._first = event
            detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
            assert isinstance(detail, dict)
            self._text.append(str(detail.get("delta") or ""))
            self._last_seq = int(event.get("seq", 0))
            return out
        out.extend(self.flush())
        out.append(event)
        return out

    def flush(self) -> list[dict[str, Any]]:
        if self._first is None:
            return []
        first, text = self._first, "".join(self._text)
        self._first, self._text = None, []
        merged = dict(first)
        merged["seqLabel"] = (
            f"{first['seq']}-{self._last_seq}" if self._last_seq != first["seq"] else None
        )
        merged["message"] = f"text: {' '.join(text.split())}"
        return [merged]


def event_line(event: dict[str, Any]) -> Text:
    """``SEQ  TS  LEVEL  TYPE  MESSAGE`` (styled on a colour terminal)."""
    seq = event.get("seqLabel") or str(event.get("seq"))
    level = str(event.get("level") or "info")
    line = Text(f"{seq:>8}  ")
    line.append(str(event.get("ts") or ""), style="dim")
    line.append("  ")
    line.append(f"{level:<5}", style=LEVEL_STYLES.get(level, ""))
    line.append("  ")
    line.append(str(event.get("type")), style="cyan")
    line.append(f"  {event.get('message') or ''}")
    return line


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep streaming live events.")
@click.option(
    "--since",
    type=click.IntRange(min=0),
    default=None,
    help="Events after this seq (default: all stored; with --follow: only new ones).",
)
@click.option("--type", "type_prefix", help="Only event types starting with this.")
@click.option("--session", "session_id", help="Only this session's events.")
@click.option("--run", "run_id", help="Only this run's events.")
@click.pass_context
def events(
    ctx: click.Context,
    follow: bool,
    since: int | None,
    type_prefix: str | None,
    session_id: str | None,
    run_id: str | None,
) -> None:
    """Print stored events and end; with --follow, stream live ones until Ctrl-C."""
    out = Output.of(ctx)
    merger = DeltaMerger()
    filters = {"type": type_prefix, "sessionId": session_id, "runId": run_id}

    def show(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            if out.as_json:
                sys.stdout.write(json.dumps(event) + "\n")
            else:
                out.line(event_line(event))
        sys.stdout.flush()

    def feed(event: dict[str, Any]) -> None:
        show([event] if out.as_json else merger.feed(event))

    async def stored(client: ApiClient) -> None:
        after = since or 0
        while True:
            page = await client.call("events/list", compact({"after": after, **filters}))
            for event in page["events"]:
                feed(event)
            if not page["events"] or page["events"][-1]["seq"] >= page["lastSeq"]:
                show(merger.flush())
                return
            after = page["events"][-1]["seq"]

    async def live(state_dir: Path) -> None:
        send, receive = trio.open_memory_channel[dict[str, Any]](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, state_dir, since, filters, send, out)
            async with receive:
                while True:
                    with trio.move_on_after(FLUSH_S) as idle:
                        try:
                            event = await receive.receive()
                        except trio.EndOfChannel:
                            break
                        feed(event)
                    if idle.cancelled_caught:
                        show(merger.flush())
            show(merger.flush())

    if follow:
        run_async(ctx, live)
    else:
        with_client(ctx, stored)


async def _pump(
    state_dir: Path,
    since: int | None,
    filters: dict[str, Any],
    send: trio.MemorySendChannel[dict[str, Any]],
    out: Output,
) -> None:
    """Feed ``send`` with events until the daemon goes away (then raise: exit 3).

    A subscriber the daemon (or the client) drops for lagging reconnects and resubscribes
    from its last seq, so nothing is lost or repeated.
    """
    from ..client import open_client

    last = since
    async with send:
        while True:
            async with open_client(state_dir) as client:
                stream = client.subscribe(
                    last,
                    type_prefix=filters["type"],
                    session_id=filters["sessionId"],
                    run_id=filters["runId"],
                )
                dropped = False
                async with aclosing(stream) as events:
                    async for event in events:
                        if event.get("dropped"):
                            dropped = True
                            break
                        last = int(event.get("seq", last or 0))
                        await send.send(event)
                if not dropped:
                    raise lost(client)
            out.note("codexd: fell behind the live events; catching up", style="yellow")
