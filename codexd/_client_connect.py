"""``codexd.connect()``: find the daemon, open the typed client, close everything after.

The daemon is found through ``<state_dir>/api.json`` and ``api-token`` (read again at each
connection, so a restarted daemon on a new port is found) or a given url and token. The client
lives in a nursery of its own; leaving the block closes its connections and streams (bounded).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path

import trio

from ._client_stream import Links
from ._config import load_config
from ._groups import unwrap_single
from ._typed_client import DEFAULT_RECONNECT_TIMEOUT_S, Client
from .client import DEFAULT_TIMEOUT_S


def resolve_state_dir(state_dir: str | PathLike[str] | None) -> Path:
    """``state_dir`` (``~`` expanded), else the daemon's default: its config without flags
    (``CODEXD_CONFIG``, ``CODEXD_STATE_DIR``, ``$XDG_STATE_HOME/codexd``)."""
    if state_dir is None:
        return load_config().state_path
    return Path(os.path.expanduser(state_dir))


@asynccontextmanager
async def connect(
    state_dir: str | PathLike[str] | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    reconnect_timeout: float | None = DEFAULT_RECONNECT_TIMEOUT_S,
) -> AsyncIterator[Client]:
    """Connect to a running daemon (Trio): ``async with codexd.connect() as client: ...``.

    The daemon is found through ``<state_dir>/api.json`` and ``api-token`` (``state_dir``
    defaults to the daemon's own default), or ``url`` and ``token``. ``timeout`` bounds each
    call (``None``: no bound); ``reconnect_timeout`` is how long streams and waits keep trying
    when the daemon went away (``None``: forever). Raises
    :class:`~codexd.client.DaemonUnreachable` if no daemon answers now.

    Leaving the block closes every connection and stream of the client.
    """
    path: Path | None = None
    if state_dir is not None or url is None or token is None:
        path = await trio.to_thread.run_sync(resolve_state_dir, state_dir)
    with unwrap_single():
        async with trio.open_nursery() as nursery:
            links = Links(
                nursery,
                state_dir=path,
                url=url,
                token=token,
                timeout=timeout,
                reconnect_timeout=reconnect_timeout,
            )
            client = Client(links)
            try:
                await client._connection()
                yield client
            finally:
                client._close()
                # The connections' tasks close them (bounded); then nothing is left.
                nursery.cancel_scope.deadline = trio.current_time() + 3
