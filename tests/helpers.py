"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import trio

from codexd.records import Event
from codexd.store import EventFilter


async def wait_event(daemon: Any, type_prefix: str, timeout: float = 20.0) -> Event:
    """The first stored or live event whose type starts with ``type_prefix``."""
    with trio.fail_after(timeout):
        async for event in daemon.subscribe(since=0, type_prefix=type_prefix):
            return event  # type: ignore[no-any-return]
    raise AssertionError("unreachable")


async def events_of(daemon: Any, type_prefix: str) -> list[Event]:
    """Stored events whose type starts with ``type_prefix``."""
    found: list[Event] = await daemon.store.query_events(
        event_filter=EventFilter(type_prefix=type_prefix), limit=100_000
    )
    return found


async def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_listening(port: int, timeout: float = 20.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:``port``."""
    with trio.fail_after(timeout):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return
