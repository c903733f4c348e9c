"""The blocking client: the typed client's API for plain scripts and for asyncio programs.

``connect_sync()`` starts one thread that runs ``trio.run`` and holds a :func:`codexd.connect`
client open in it; every method of :class:`SyncClient` hands its call to that thread
(``trio.from_thread.run``) and blocks the calling thread until the answer comes. Nothing of
Trio runs in the caller's thread, so it works in any thread that is not itself running Trio:
a script's main thread, a worker thread, or an asyncio event loop's thread.

From asyncio, a call blocks the event loop for as long as it takes; for anything long (waiting
for a turn, reading a stream) run it in a worker thread so the loop keeps going::

    with codexd.connect_sync() as client:
        handle = client.start_turn(session.session_id, "Hello")
        result = await asyncio.to_thread(handle.wait)

Results are the same records as the Trio client's. Streams are plain iterators. ``close()``
(or leaving the ``with`` block) closes the connections and ends the thread.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from os import PathLike
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import trio

from ._client_connect import connect
from ._client_events import RunEvent, TurnEvent
from ._client_handles import ApprovalStream, RunHandle, RunStream, TurnHandle, TurnStream
from ._client_stream import STREAM_BUFFER, EventStream
from ._errors import ApiError, NotActive, NotFound
from ._params import Decision
from ._records import Approval, Event, Run, Session, TurnResult
from ._typed_client import DEFAULT_RECONNECT_TIMEOUT_S, Client
from .client import DEFAULT_TIMEOUT_S

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: Seconds ``close()`` waits for the client's thread to end.
CLOSE_TIMEOUT_S = 10.0


class _Portal:
    """A thread running Trio with a connected :class:`Client`, and a way to call into it."""

    def __init__(self, connect_args: dict[str, Any]) -> None:
        self._connect_args = connect_args
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._closing: trio.Event | None = None
        self.client: Client | None = None
        self._thread = threading.Thread(target=self._thread_main, name="codexd-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # handed to the thread that asked to connect
            if not self._ready.is_set():
                self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._closing = trio.Event()
        async with connect(**self._connect_args) as client:
            self.client = client
            self._ready.set()
            await self._closing.wait()

    def run(self, call: Callable[[], Awaitable[R]]) -> R:
        """Run ``call()`` in the client's thread; block until it returns (or raises)."""
        if self._token is None or self.client is None or not self._thread.is_alive():
            raise RuntimeError("the codexd client is closed")
        return trio.from_thread.run(call, trio_token=self._token)

    def close(self) -> None:
        if self._thread.is_alive() and self._token is not None and self._closing is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._closing.set, trio_token=self._token)
            self._thread.join(CLOSE_TIMEOUT_S)
        self.client = None


def _same(_portal: _Portal, value: R) -> R:
    return value


@overload
def _blocking(
    method: Callable[Concatenate[Client, P], Awaitable[R]],
) -> Callable[Concatenate[SyncClient, P], R]: ...


@overload
def _blocking(
    method: Callable[Concatenate[Client, P], Awaitable[R]],
    wrap: Callable[[_Portal, R], T],
) -> Callable[Concatenate[SyncClient, P], T]: ...


def _blocking(
    method: Callable[Concatenate[Client, P], Awaitable[Any]],
    wrap: Callable[[_Portal, Any], Any] = _same,
) -> Callable[Concatenate[SyncClient, P], Any]:
    """A SyncClient method running the Client method of the same name in the Trio thread,
    its result passed through ``wrap`` (handles and streams get their blocking form)."""

    def call(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        portal = self._portal
        return wrap(portal, portal.run(functools.partial(method, self._client, *args, **kwargs)))

    call.__name__ = method.__name__
    call.__qualname__ = f"SyncClient.{method.__name__}"
    call.__doc__ = method.__doc__
    return call


class _SyncIterator(Iterator[T]):
    """A blocking iterator over one of the typed client's async streams."""

    def __init__(self, portal: _Portal, stream: Any) -> None:
        self._portal = portal
        self._stream = stream

    def __iter__(self) -> _SyncIterator[T]:
        return self

    def __next__(self) -> T:
        stream = self._stream

        async def step() -> tuple[bool, Any]:
            try:
                return True, await stream.__anext__()
            except StopAsyncIteration:
                return False, None

        more, item = self._portal.run(step)
        if not more:
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the stream and its connection (idempotent)."""
        with contextlib.suppress(RuntimeError):  # a closed client: its streams are closed
            self._portal.run(self._stream.aclose)

    def __enter__(self) -> _SyncIterator[T]:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()


class SyncEventStream(_SyncIterator[Event]):
    """:class:`~codexd.EventStream`, blocking."""

    @property
    def last_seq(self) -> int | None:
        return self._stream.last_seq  # type: ignore[no-any-return]


class SyncTurnStream(_SyncIterator[TurnEvent]):
    """:class:`~codexd.TurnStream`, blocking."""


class SyncRunStream(_SyncIterator[RunEvent]):
    """:class:`~codexd.RunStream`, blocking."""


class SyncApprovalStream(_SyncIterator[Approval]):
    """:class:`~codexd.ApprovalStream`, blocking."""


class SyncTurnHandle:
    """:class:`~codexd.TurnHandle`, blocking."""

    def __init__(self, portal: _Portal, handle: TurnHandle) -> None:
        self._portal = portal
        self.handle = handle
        self.session_id = handle.session_id
        self.turn_id = handle.turn_id
        self.steered = handle.steered
        self.session: Session | None = handle.session
        self.since = handle.since

    def stream(self, *, merge_deltas: bool = True) -> SyncTurnStream:
        stream: TurnStream = self.handle.stream(merge_deltas=merge_deltas)
        return SyncTurnStream(self._portal, stream)

    def wait(self, timeout: float | None = None) -> TurnResult:
        return self._portal.run(functools.partial(self.handle.wait, timeout))

    def interrupt(self) -> TurnResult:
        return self._portal.run(self.handle.interrupt)

    def steer(self, input: str | list[dict[str, object]]) -> SyncTurnHandle:
        handle = self._portal.run(functools.partial(self.handle.steer, input))
        return SyncTurnHandle(self._portal, handle)


class SyncRunHandle:
    """:class:`~codexd.RunHandle`, blocking."""

    def __init__(self, portal: _Portal, handle: RunHandle) -> None:
        self._portal = portal
        self.handle = handle
        self.run_id = handle.run_id
        self.run = handle.run
        self.since = handle.since

    def stream(self) -> SyncRunStream:
        stream: RunStream = self.handle.stream()
        return SyncRunStream(self._portal, stream)

    def wait(self, timeout: float | None = None) -> Run:
        return self._portal.run(functools.partial(self.handle.wait, timeout))

    def cancel(self) -> Run:
        return self._portal.run(self.handle.cancel)

    def get(self) -> Run:
        return self._portal.run(self.handle.get)


class SyncClient:
    """The typed client, blocking; made by :func:`connect_sync`. Same methods, same records."""

    def __init__(self, portal: _Portal) -> None:
        self._portal = portal
        assert portal.client is not None
        self._client: Client = portal.client

    def close(self) -> None:
        """Close every connection and stream, and end the client's thread."""
        self._portal.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    request = _blocking(Client.request)
    last_seq = _blocking(Client.last_seq)
    status = _blocking(Client.status)
    restart_child = _blocking(Client.restart_child)
    create_session = _blocking(Client.create_session)
    list_sessions = _blocking(Client.list_sessions)
    get_session = _blocking(Client.get_session)
    close_session = _blocking(Client.close_session)
    fork_session = _blocking(Client.fork_session)
    revert_session = _blocking(Client.revert_session)
    compact_session = _blocking(Client.compact_session)
    rename_session = _blocking(Client.rename_session)
    interrupt = _blocking(Client.interrupt)
    wait_turn = _blocking(Client.wait_turn)
    get_run = _blocking(Client.get_run)
    list_runs = _blocking(Client.list_runs)
    cancel_run = _blocking(Client.cancel_run)
    wait_run = _blocking(Client.wait_run)
    list_approvals = _blocking(Client.list_approvals)
    respond = _blocking(Client.respond)
    find_pending_approval = _blocking(Client.find_pending_approval)
    list_events = _blocking(Client.list_events)
    list_threads = _blocking(Client.list_threads)
    list_models = _blocking(Client.list_models)
    read_account = _blocking(Client.read_account)
    app_server_request = _blocking(Client.app_server_request)

    start_turn = _blocking(Client.start_turn, lambda portal, h: SyncTurnHandle(portal, h))
    start_review = _blocking(Client.start_review, lambda portal, h: SyncTurnHandle(portal, h))
    create_run = _blocking(Client.create_run, lambda portal, h: SyncRunHandle(portal, h))

    def events(
        self,
        since: int | None = None,
        *,
        type: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        buffer: int = STREAM_BUFFER,
    ) -> SyncEventStream:
        """:meth:`codexd.Client.events`, as a blocking iterator that resumes by itself."""

        async def make() -> EventStream:
            return self._client.events(
                since, type=type, session_id=session_id, run_id=run_id, buffer=buffer
            )

        return SyncEventStream(self._portal, self._portal.run(make))

    def approvals(self, session_id: str | None = None) -> SyncApprovalStream:
        """:meth:`codexd.Client.approvals`, as a blocking iterator."""

        async def make() -> ApprovalStream:
            return self._client.approvals(session_id)

        return SyncApprovalStream(self._portal, self._portal.run(make))

    def answer_approvals(
        self,
        policy: Callable[[Approval], Decision | None],
        *,
        session_id: str | None = None,
    ) -> None:
        """Answer pending approvals with ``policy`` (called in this thread) until the client
        closes; ``None`` leaves an approval pending."""
        with self.approvals(session_id) as pending:
            for approval in pending:
                decision = policy(approval)
                if decision is None:
                    continue
                try:
                    self.respond(approval.approval_id, decision)
                except ApiError as exc:
                    if exc.code not in (NotActive.code, NotFound.code):
                        raise


def connect_sync(
    state_dir: str | PathLike[str] | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    reconnect_timeout: float | None = DEFAULT_RECONNECT_TIMEOUT_S,
) -> SyncClient:
    """Connect to a running daemon and return a blocking client (use it with ``with``).

    The arguments are :func:`codexd.connect`'s. Raises
    :class:`~codexd.client.DaemonUnreachable` if no daemon answers.
    """
    portal = _Portal(
        {
            "state_dir": state_dir,
            "url": url,
            "token": token,
            "timeout": timeout,
            "reconnect_timeout": reconnect_timeout,
        }
    )
    return SyncClient(portal)
