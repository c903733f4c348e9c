"""Waiting on a daemon's events in tests: synchronise on what happened, never on sleeps."""

from __future__ import annotations

import trio

from .._daemon import Daemon
from .._records import Event
from .._subscriptions import EventFilter


async def wait_event(daemon: Daemon, type_prefix: str, timeout: float = 20.0) -> Event:
    """The first stored or live event whose type starts with ``type_prefix``.

    Replays from the first stored event, so an event that happened before the call is found.
    Raises :class:`trio.TooSlowError` after ``timeout`` seconds.
    """
    with trio.fail_after(timeout):
        async for event in daemon.subscribe(since=0, type_prefix=type_prefix):
            return event
    raise AssertionError("the subscription ended without an event")


async def events_of(daemon: Daemon, type_prefix: str, limit: int = 100_000) -> list[Event]:
    """The stored events whose type starts with ``type_prefix``, oldest first."""
    return await daemon.store.query_events(
        event_filter=EventFilter(type_prefix=type_prefix), limit=limit
    )
