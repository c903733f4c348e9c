"""Driving a live view: replay from a seq taken before the start, stream, wait, drain.

:func:`follow` shows a :class:`~codexd._cli._live.View` from the events after ``since`` (a seq
read with :func:`last_seq` *before* the turn or run was started, so nothing is missed), redraws
the status line, and returns when the waiting call (``turn/wait``, ``run/wait``) answers and the
view has seen the end, or the stream went quiet (the end came before we subscribed), bounded.
A subscriber dropped for lagging resumes from its last seq; a lost daemon is exit 3.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import trio
from rich.text import Text

from ._calls import lost
from ._live import View

if TYPE_CHECKING:
    from ..client import ApiClient

#: Seconds to wait, after the waiting call answered, for the stream to show the end.
DRAIN_S = 3.0
#: ... unless the stream has been quiet this long (the end came before we subscribed).
QUIET_S = 0.5


async def last_seq(client: ApiClient) -> int:
    """The seq of the last stored event (to replay from, so nothing is missed)."""
    page = await client.call("events/list", {"limit": 1})
    return int(page["lastSeq"])


async def follow(
    client: ApiClient,
    view: View,
    since: int,
    waiter: Callable[[], Awaitable[dict[str, Any]]],
    *,
    session_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Show ``view`` from the events after ``since`` until ``waiter()`` answers; its answer.

    Raises the CLI's "lost the daemon" error (exit 3) if the connection ends first.
    """
    result: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        view.nursery = nursery
        view.start_prompt()  # for approvals shown before following (``turn wait``)
        nursery.start_soon(_stream, client, view, since, session_id, run_id)
        nursery.start_soon(view.screen.tick)
        result = await waiter()
        if result.get("status") not in ("inProgress", "queued", "running"):
            await _drain(view)
        nursery.cancel_scope.cancel()
    return result


async def _drain(view: View) -> None:
    """Until the view saw the end, or the stream went quiet, at most :data:`DRAIN_S`."""
    with trio.move_on_after(DRAIN_S):
        while not view.ended.is_set():
            view.fed = trio.Event()  # set after every event fed (the end included)
            with trio.move_on_after(QUIET_S) as quiet:
                await view.fed.wait()
            if quiet.cancelled_caught:
                return


async def _stream(
    client: ApiClient, view: View, since: int, session_id: str | None, run_id: str | None
) -> None:
    last = since
    while True:
        events = client.subscribe(last, session_id=session_id, run_id=run_id)
        async with aclosing(events) as stream:
            async for event in stream:
                if event.get("dropped"):
                    view.screen.progress(
                        Text("warning: fell behind the daemon's events; catching up", "yellow")
                    )
                    break
                last = int(event.get("seq", last))
                await view.feed(event)
                view.fed.set()
            else:
                if client.closed_reason is not None:
                    raise lost(client)
                return
