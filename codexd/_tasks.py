"""Containment: background tasks whose failure is reported instead of ending the daemon.

Every task in the daemon's nursery is started through a :class:`TaskHost`. A one-shot task (a
turn watchdog, an approval, a run) that raises is reported to ``on_failure`` and forgotten; a
service (the API server, the run queue, the app-server supervisor) is restarted after a backoff.
Only cancellation passes through: an exception in one request, connection, turn or run can
never cancel the store or the rest of the daemon (see docs/architecture.md, "What may end the
daemon").
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import trio

OnFailure = Callable[[str, BaseException], None]

#: Restart delays of a crashed service: doubling from the first to the last.
SERVICE_BACKOFF_S = (0.1, 5.0)


def describe_failure(exc: BaseException) -> str:
    """The last frame and the error, on one line: enough to find the bug, short enough to log."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class TaskHost:
    """Starts tasks in ``nursery`` so that their exceptions stay theirs."""

    def __init__(self, nursery: trio.Nursery, on_failure: OnFailure) -> None:
        self._nursery = nursery
        self._on_failure = on_failure

    @property
    def cancel_scope(self) -> trio.CancelScope:
        return self._nursery.cancel_scope

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str = "") -> None:
        """Run ``fn(*args)`` as a one-shot task; an exception is reported, not raised."""
        self._nursery.start_soon(self._contained, name or _name_of(fn), fn, args)

    async def _contained(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            await fn(*args)
        except Exception as exc:
            self._on_failure(name, exc)

    async def start_service(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
    ) -> Any:
        """Start a long-lived service (``fn`` takes ``task_status``) and keep it running.

        Waits until the first incarnation called ``task_status.started(value)`` and returns
        that value. If the service raises later, it is reported and started again after a
        backoff; if it raises before it started, the exception is raised here.
        """
        return await self._nursery.start(self._service, name, fn, args)

    async def _service(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        delay, max_delay = SERVICE_BACKOFF_S
        status: trio.TaskStatus[Any] = _Once(task_status)
        while True:
            try:
                await fn(*args, task_status=status)
                return
            except Exception as exc:
                if isinstance(status, _Once) and not status.called:
                    raise
                self._on_failure(name, exc)
            # Restarted incarnations report readiness to nobody.
            status = trio.TASK_STATUS_IGNORED
            await trio.sleep(delay)
            delay = min(delay * 2, max_delay)


class _Once(trio.TaskStatus[Any]):
    """Forwards ``started`` and remembers that it was called."""

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self._inner = inner
        self.called = False

    def started(self, value: Any = None) -> None:
        self.called = True
        self._inner.started(value)


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
