"""Where the API listens: its token file, and its TCP or unix-socket listeners.

Split from :mod:`codexd._api_server` (which serves the connections): the token is created or
replaced here before anything listens, and a unix socket is claimed only from nobody.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
import urllib.parse
from pathlib import Path

import attrs
import trio

from ._errors import ListenError

#: Shortest token accepted from the token file; a shorter one is replaced.
MIN_TOKEN_BYTES = 32


# ---- the token --------------------------------------------------------------------------------


def load_or_create_token(state_dir: Path) -> tuple[str, str | None]:
    """The API token in ``state_dir/api-token`` (0600), and why it was replaced, if it was.

    A token is kept across restarts unless it is unsafe: readable by other users (it may have
    leaked), shorter than :data:`MIN_TOKEN_BYTES`, or not plain printable text. Then a new one
    is written (atomically, 0600) and the reason returned so it can be recorded.
    """
    path = state_dir / "api-token"
    reason: str | None = None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        token = path.read_bytes().strip()
        if mode & 0o077:
            reason = f"it was readable by other users (mode {mode:o})"
        elif len(token) < MIN_TOKEN_BYTES:
            reason = f"it was shorter than {MIN_TOKEN_BYTES} bytes"
        elif not (token.isascii() and token.decode().isprintable()):
            reason = "it was not plain printable text"
        else:
            return token.decode(), None
    except FileNotFoundError:
        pass
    token_text = secrets.token_urlsafe(32)
    tmp = path.with_name(f"api-token.new-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token_text + "\n")
    os.replace(tmp, path)
    return token_text, reason


# ---- listening --------------------------------------------------------------------------------


@attrs.frozen
class UnixSocket:
    path: str
    dev: int
    ino: int

    def remove_if_ours(self) -> None:
        try:
            st = os.lstat(self.path)
        except OSError:
            return
        if (st.st_dev, st.st_ino) == (self.dev, self.ino):
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def claim_unix_path(path: str) -> None:
    """Make room for our socket at ``path``: only a stale socket of nobody is removed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ListenError(f"cannot listen on unix://{path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: a socket left by a dead process
        return
    finally:
        probe.close()
    raise ListenError(f"cannot listen on unix://{path}: another process is listening on it")


async def listen_on(listen: str) -> tuple[list[trio.SocketListener], str, UnixSocket | None]:
    """Open the listeners for ``listen``; one-line :class:`ListenError` if that fails."""
    if listen.startswith("unix://"):
        path = listen[len("unix://") :]
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await trio.to_thread.run_sync(claim_unix_path, path)
            old_umask = os.umask(0o177)  # the socket is created 0600, never wider
            try:
                await sock.bind(path)
            finally:
                os.umask(old_umask)
            st = os.lstat(path)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        except BaseException:
            sock.close()
            raise
        return [trio.SocketListener(sock)], listen, UnixSocket(path, st.st_dev, st.st_ino)
    parsed = urllib.parse.urlsplit(listen)
    host = parsed.hostname or "127.0.0.1"
    try:
        listeners = list(await trio.open_tcp_listeners(parsed.port or 0, host=host))
    except OSError as exc:
        raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    port = listeners[0].socket.getsockname()[1]
    return listeners, f"ws://{host}:{port}", None
