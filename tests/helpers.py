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
