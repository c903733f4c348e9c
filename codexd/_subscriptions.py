"""Event subscriptions: stored events after ``since`` first, then live ones, with no gap.

A :class:`Subscription` notes the last committed seq when it is created: events up to it are
replayed from the store in pages, later ones arrive live through a bounded buffer that the store
fills after each commit. A subscriber that lets the buffer fill is dropped rather than allowed
to grow memory or slow the daemon: iteration then raises :class:`SubscriberOverflow` naming the
last seq it got, so it can subscribe again with ``since`` and miss nothing.

Fan-out is per batch, not per event: the store hands each subscriber a whole commit at once
(:meth:`Subscription.offer`: a filter test and a ``deque`` append per event, no lock, no task
switch), and a consumer takes everything buffered at once with :meth:`Subscription.receive_batch`.
Each live event comes with its stored JSON line, so an API connection builds its frames by
splicing that line into a fixed envelope (:func:`event_frames`) instead of encoding the event
again, and writes a whole batch of frames with one write (:func:`send_raw_frames`).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import attrs
import orjson
import trio

from ._errors import SubscriberOverflow
from ._records import Event, to_wire

#: A committed event and its stored JSON line (UTF-8, no newline).
StoredEvent = tuple[Event, bytes]


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

    @property
    def everything(self) -> bool:
        return self.type_prefix is None and self.session_id is None and self.run_id is None


#: Events replayed per store query.
REPLAY_PAGE = 1000


class Subscription:
    """An async iterator over events: stored ones after ``since`` first, then live ones.

    Created by :meth:`codexd._store.Store.subscribe`. ``offer`` is the store's side (called after
    each commit with the batch's events); :meth:`close` ends the iteration after what is
    buffered. Iterate it for events one by one, or call :meth:`receive_batch` for all that is
    ready at once (with their JSON lines); one consumer task at a time.
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
        self._limit = max(1, buffer)
        self._buffer: deque[StoredEvent] = deque()
        self._wake: trio.Event | None = None
        # Everything up to here is on disk; everything after arrives live. No gap, no duplicate.
        self._replay_upto = last_committed
        self._cursor = since if since is not None else last_committed
        self.last_seq = self._cursor
        self._on_close = on_close
        self._live = True
        self.overflowed = False
        self.closed = False

    def offer(self, stored: Sequence[StoredEvent]) -> None:
        """Hand over committed events with their lines (the store calls this; never blocks)."""
        if not self._live:
            return
        buffer = self._buffer
        room = self._limit - len(buffer)
        if self.filter.everything:
            wanted: Sequence[StoredEvent] = stored
        else:
            matches = self.filter.matches
            wanted = [pair for pair in stored if matches(pair[0])]
        if not wanted:
            return
        if len(wanted) > room:
            buffer.extend(wanted[:room])
            self.overflowed = True
            self._close_live()
        else:
            buffer.extend(wanted)
        if self._wake is not None:
            self._wake.set()

    def _close_live(self) -> None:
        if self._live:
            self._live = False
            self._on_close(self)
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        """Stop receiving; iteration ends after what is already buffered."""
        self.closed = True
        self._close_live()

    async def receive_batch(self, limit: int | None = None) -> list[StoredEvent]:
        """Every event ready now (at most ``limit``), oldest first, waiting for at least one.

        Replayed events come a page at a time first. Returns ``[]`` once the subscription is
        closed and drained; raises :class:`SubscriberOverflow` (after the buffered events were
        taken) if it was dropped for falling behind. :attr:`last_seq` becomes the batch's last
        seq. Cancelling it loses nothing.
        """
        batch = await self._next_batch(limit)
        if batch:
            self.last_seq = batch[-1][0].seq
        return batch

    async def _next_batch(self, limit: int | None = None) -> list[StoredEvent]:
        if self._cursor < self._replay_upto:
            page = await self._query(
                after=self._cursor,
                up_to=self._replay_upto,
                event_filter=self.filter,
                limit=min(REPLAY_PAGE, limit or REPLAY_PAGE),
            )
            if page:
                self._cursor = page[-1].seq
                return [(event, event_line(event)) for event in page]
            self._cursor = self._replay_upto
        while not self._buffer:
            if not self._live:
                if self.overflowed:
                    raise SubscriberOverflow(self.last_seq)
                return []
            self._wake = trio.Event()
            try:
                await self._wake.wait()
            finally:
                self._wake = None
        buffer = self._buffer
        if limit is not None and len(buffer) > limit:
            return [buffer.popleft() for _ in range(limit)]
        batch = list(buffer)
        buffer.clear()
        return batch

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            batch = await self._next_batch()
            if not batch:
                return
            for event, _line in batch:
                self.last_seq = event.seq
                yield event


# ---- frames for API subscribers -----------------------------------------------------------------


def event_line(event: Event) -> bytes:
    """An event as the store writes it (for replayed events, which come without their line)."""
    return orjson.dumps(to_wire(event))


def _envelope(subscription_id: str) -> tuple[bytes, bytes]:
    head = orjson.dumps(
        {"jsonrpc": "2.0", "method": "event", "params": {"subscriptionId": subscription_id}}
    )
    # {"jsonrpc":"2.0","method":"event","params":{"subscriptionId":"sub-1"}}  ->  prefix, suffix
    return head[:-2] + b',"event":', b"}}"


def event_payloads(subscription_id: str, batch: Sequence[StoredEvent]) -> list[bytes]:
    """Each event's ``event`` notification, as the API's JSON-RPC encoder would write it.

    ``{"jsonrpc":"2.0","method":"event","params":{"subscriptionId":ID,"event":LINE}}``: the
    stored line is spliced in, nothing is encoded again.
    """
    prefix, suffix = _envelope(subscription_id)
    return [prefix + line + suffix for _event, line in batch]


def _frame_header(size: int) -> bytes:
    # FIN + text opcode; a server's frames are not masked (RFC 6455 5.1).
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)


def text_frame(payload: str | bytes) -> bytes:
    """One unmasked WebSocket text frame (server side) holding ``payload`` (UTF-8)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return _frame_header(len(data)) + data


def frame_blob(frames: Sequence[str | bytes]) -> bytes:
    """Queued frames as one blob for :func:`send_raw_frames`: ``str`` items are one text
    frame each; ``bytes`` items are already frames (from :func:`event_frames`)."""
    return b"".join(f if isinstance(f, bytes) else text_frame(f) for f in frames)


def event_frames(subscription_id: str, batch: Sequence[StoredEvent]) -> bytes:
    """One bytes blob holding one WebSocket text frame per event (server side, unmasked).

    For a connection without extensions (see :func:`raw_frames_supported`), writing the blob
    is the same as one ``send_message`` per :func:`event_payloads` item, in one write.
    """
    parts: list[bytes] = []
    append = parts.append
    for payload in event_payloads(subscription_id, batch):
        append(_frame_header(len(payload)))
        append(payload)
    return b"".join(parts)


def _frame_protocol(ws: Any) -> Any:
    connection = getattr(getattr(ws, "_wsproto", None), "connection", None)
    return getattr(connection, "_proto", None)


def raw_frames_supported(ws: Any) -> bool:
    """True if frames built by :func:`event_frames` can be written to ``ws`` as they are.

    A trio-websocket server connection with no extension negotiated (trio-websocket offers
    none): plain RFC 6455 frames. Anything else (a client side, which must mask; an extension
    such as permessage-deflate; another library's internals) says False: use ``send_message``.
    """
    proto = _frame_protocol(ws)
    return (
        proto is not None
        and getattr(ws, "is_server", False)
        and getattr(proto, "extensions", None) == []
        and hasattr(ws, "_stream_lock")
        and hasattr(ws, "_stream")
    )


async def send_raw_frames(ws: Any, blob: bytes) -> None:
    """Write a blob of :func:`event_frames` to a trio-websocket connection in one write.

    Serialized with the connection's own writers (its stream lock), like ``send_message``.
    Raises ``trio_websocket.ConnectionClosed`` if the connection is closed or breaks (the
    connection is then aborted, as ``send_message`` does). Cancellation mid-write leaves the
    connection unusable, exactly as for ``send_message``.
    """
    import trio_websocket

    reason = getattr(ws, "_close_reason", None)
    if reason:
        raise trio_websocket.ConnectionClosed(reason)
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(blob)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            raise trio_websocket.ConnectionClosed(ws._close_reason) from None
