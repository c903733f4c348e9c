"""Append-only log files with size rotation and a reopen hook for external logrotate.

Blocking file I/O: call these only from a worker thread (the store task does, through
``trio.to_thread``), never from the event loop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class RotatingFile:
    """An append-only file rotated to ``name.1 .. name.N`` when it would pass ``max_bytes``.

    ``backups == 0`` truncates instead of keeping old files. :meth:`reopen` closes and reopens the
    path so a file moved away by an external logrotate is recreated (SIGHUP handling).
    """

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fh: BinaryIO | None = None
        self._size = 0

    def _open(self) -> BinaryIO:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 - long-lived handle, closed in close()
            self._size = self._fh.tell()
        return self._fh

    def write(self, data: bytes) -> None:
        """Append ``data`` (rotating first if it would overflow) and flush it to the OS."""
        if not data:
            return
        fh = self._open()
        if self._size > 0 and self._size + len(data) > self.max_bytes:
            self._rotate()
            fh = self._open()
        fh.write(data)
        fh.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self.close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def reopen(self) -> None:
        """Close the handle; the next write opens the path afresh."""
        self.close()

    def fsync(self) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
