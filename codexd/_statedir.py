"""The state directory: created private, owned by exactly one daemon at a time.

:func:`claim` creates the directory if it is missing (mode 0700; a directory that already exists
is used as it is and never chmodded: it may be shared) and takes an exclusive ``flock`` on
``daemon.lock`` inside it, held for the daemon's whole life. A second daemon on the same state
dir gets :class:`~codexd._errors.StateDirInUse` naming the holder's pid, before it touches
anything. The OS drops the lock when the holder dies, even by ``kill -9``.

Blocking calls: run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from ._errors import StateDirInUse, StoreError

LOCK_NAME = "daemon.lock"


class StateDirLock:
    """The held lock; :meth:`release` gives it up (the OS does too if the process dies)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def claim(state_dir: Path) -> StateDirLock:
    """Create ``state_dir`` if needed and lock it for this process; raise if another holds it."""
    if state_dir.exists() and not state_dir.is_dir():
        raise StoreError(f"state dir {state_dir} exists but is not a directory")
    if not state_dir.exists():
        try:
            state_dir.mkdir(parents=True, mode=0o700)
            os.chmod(state_dir, 0o700)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create state dir {state_dir}: {_describe(exc)}") from None
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot write to state dir {state_dir}: {_describe(exc)}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            who = f"pid {holder}" if holder else "another process"
            raise StateDirInUse(f"state dir {state_dir} is in use by {who}") from None
        raise StoreError(f"cannot lock state dir {state_dir}: {_describe(exc)}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise StoreError(f"cannot write to state dir {state_dir}: {_describe(exc)}") from None
    return StateDirLock(path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
