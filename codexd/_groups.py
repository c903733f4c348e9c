"""Exception-group unwrapping for public context managers that hold a nursery."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


@contextmanager
def unwrap_single() -> Iterator[None]:
    """Re-raise an exception group holding exactly one exception as that exception.

    ``open_daemon`` and ``open_client`` run a nursery around the caller's block, so Trio wraps
    whatever the block raises in an ExceptionGroup; callers expect ``except ApiError`` to work.
    Groups of several real exceptions stay groups; ``Cancelled`` beside one error is dropped.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        # A Cancelled beside the real error is redelivered at the next checkpoint anyway.
        real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
        if len(real) == 1:
            raise real[0] from None
        if not real and len(leaves) == 1:
            raise leaves[0] from None
        raise
