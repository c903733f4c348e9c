"""Event subscriptions: stored events after ``since`` first, then live ones, with no gap.

A :class:`Subscription` notes the last committed seq when it is created: events up to it are
replayed from the store in pages, later ones arrive live through a bounded buffer that the store
fills after each commit. A subscriber that lets the buffer fill is dropped rather than allowed
to grow memory or slow the daemon: iteration then raises :class:`SubscriberOverflow` naming the
last seq it got, so it can subscribe again with ``since`` and miss nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import attrs
import trio

from ._errors import SubscriberOverflow
from ._records import Event


@attrs.frozen
class EventFilter:
    """Which events a subscriber wants: a type prefix, a session, a run (all optional)."""

    type_prefix: str | None = None
    session_id: str | None = None
    run_id: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (self.type_prefix is None or event.type.startswith(self.type_prefix))
            and (self.session_id is None or event.session_id == self.session_id)
            and (self.run_id is None or event.run_id == self.run_id)
        )


#: Events replayed per store query.
REPLAY_PAGE = 1000


class Subscription:
    """An async iterator over events: stored ones after ``since`` first, then live ones.

    Created by :meth:`codexd._store.Store.subscribe`. ``offer`` is the store's side (called after
    each commit with the batch's events); :meth:`close` ends the iteration after what is
    buffered.
    """

    def __init__(
        self,
        query: Callable[..., Awaitable[list[Event]]],
        last_committed: int,
        since: int | None,
        event_filter: EventFilter,
        buffer: int,
        *,
        on_close: Callable[[Subscription], None],
    ) -> None:
        self._query = query
        self.filter = event_filter
        self._send, self._recv = trio.open_memory_channel[Event](buffer)
        # Everything up to here is on disk; everything after arrives live. No gap, no duplicate.
        self._replay_upto = last_committed
        self._cursor = since if since is not None else last_committed
        self.last_seq = self._cursor
        self._on_close = on_close
        self.overflowed = False
        self.closed = False

    def offer(self, events: Sequence[Event]) -> None:
        """Hand over committed events (the store calls this; never blocks)."""
        if self.closed:
            return
        matches = self.filter.matches
        send = self._send.send_nowait
        for event in events:
            if not matches(event):
                continue
            try:
                send(event)
            except trio.WouldBlock:
                self.overflowed = True
                self._close_live()
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._close_live()
                return

    def _close_live(self) -> None:
        self._on_close(self)
        self._send.close()

    def close(self) -> None:
        """Stop receiving; iteration ends after what is already buffered."""
        self.closed = True
        self._close_live()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while self._cursor < self._replay_upto:
            page = await self._query(
                after=self._cursor,
                up_to=self._replay_upto,
                event_filter=self.filter,
                limit=REPLAY_PAGE,
            )
            if not page:
                break
            for event in page:
                self._cursor = event.seq
                self.last_seq = event.seq
                yield event
        while True:
            try:
                event = await self._recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                break
            self.last_seq = event.seq
            yield event
            # Hand over what is already buffered without a scheduler pass per event.
            while True:
                try:
                    event = self._recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                self.last_seq = event.seq
                yield event
        if self.overflowed:
            raise SubscriberOverflow(self.last_seq)
