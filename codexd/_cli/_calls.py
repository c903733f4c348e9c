"""Reaching the running daemon from a command: one call, or a whole Trio conversation.

The daemon is found through ``<state_dir>/api.json`` and ``api-token`` (the state dir comes from
``--state-dir``, ``CODEXD_STATE_DIR``, the config file or the default). Failures become
:class:`~codexd._cli._app.CliError`: exit 3 when no daemon answers or the connection is lost,
1 for an API error (with the daemon's code and the field it names).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import trio

from ._app import EXIT_FAILED, EXIT_UNREACHABLE, CliError, load

if TYPE_CHECKING:
    from ..client import ApiClient

T = TypeVar("T")


def compact(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the keys whose value is ``None`` (not given)."""
    return {k: v for k, v in params.items() if v is not None}


def api_failure(exc: BaseException) -> CliError | None:
    """The CLI error for a client-side failure, or ``None`` if ``exc`` is not one."""
    from ..client import ApiError, CallTimeout, DaemonUnreachable

    if isinstance(exc, DaemonUnreachable):
        return CliError(str(exc), exit_code=EXIT_UNREACHABLE, kind="unreachable")
    if isinstance(exc, ApiError):
        return CliError(exc.message, kind="api", code=exc.code, field=exc.field)
    if isinstance(exc, CallTimeout):
        return CliError(str(exc), kind="timeout")
    return None


def with_client(ctx: click.Context, work: Callable[[ApiClient], Awaitable[T]]) -> T:
    """Run ``work(client)`` in a fresh Trio run, connected to the daemon of this state dir.

    ``work`` is cancelled by Ctrl-C like any Trio code (the client closes its connection).
    """
    from ..client import open_client

    async def go(state_dir: Path) -> T:
        async with open_client(state_dir) as client:
            return await work(client)

    return run_async(ctx, go)


def run_async(ctx: click.Context, work: Callable[[Path], Awaitable[T]]) -> T:
    """Run ``work(state_dir)`` in a fresh Trio run; client failures become CLI errors."""
    state_dir = load(ctx).state_path
    try:
        return trio.run(work, state_dir)
    except CliError:
        raise
    except BaseException as exc:
        if interrupted(exc):
            raise KeyboardInterrupt from None  # Ctrl-C, wherever in the task tree it landed
        failure = _first_failure(exc)
        if failure is None:
            raise
        raise failure from None


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C (alone, or in the exception group of a nursery)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(interrupted(e) for e in exc.exceptions)
    return False


def _first_failure(exc: BaseException) -> CliError | None:
    """The CLI error for ``exc`` or, in an exception group (a stream and a call failing
    together when the daemon goes away), for the most telling of its exceptions."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc if isinstance(exc, CliError) else api_failure(exc)
    found = [f for f in (_first_failure(e) for e in exc.exceptions) if f is not None]
    if len(found) < len([e for e in exc.exceptions if not isinstance(e, trio.Cancelled)]):
        return None  # something else failed too: let it show
    found.sort(key=lambda f: f.exit_code != EXIT_UNREACHABLE)
    return found[0] if found else None


def call(ctx: click.Context, method: str, params: dict[str, Any] | None = None) -> Any:
    """Call one API method of the running daemon (``None`` values of ``params`` are left out)."""

    async def one(client: ApiClient) -> Any:
        return await client.call(method, compact(params or {}))

    return with_client(ctx, one)


def lost(client: ApiClient) -> CliError:
    """The error for a stream that ended because the daemon went away."""
    reason = client.closed_reason or "closed"
    return CliError(
        f"lost the connection to the daemon ({reason})",
        exit_code=EXIT_UNREACHABLE,
        kind="unreachable",
    )


__all__ = [
    "EXIT_FAILED",
    "api_failure",
    "call",
    "compact",
    "interrupted",
    "lost",
    "run_async",
    "with_client",
]
