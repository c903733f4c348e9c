"""Append-only log files with size rotation and a reopen hook for external logrotate.

Blocking file I/O: call these only from a worker thread (the store task does, through
``trio.to_thread``), never from the event loop.
"""

from __future__ import annotations

import contextlib
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
        """Append ``data`` (rotating first if it would overflow) and flush it to the OS.

        All or nothing: if the append fails (disk full), the file is cut back to its previous
        size so that a retry of the same data does not leave half a line behind.
        """
        if not data:
            return
        fh = self._open()
        if self._size > 0 and self._size + len(data) > self.max_bytes:
            self._rotate()
            fh = self._open()
        try:
            fh.write(data)
            fh.flush()
        except OSError:
            self._discard_partial()
            raise
        self._size += len(data)

    def _discard_partial(self) -> None:
        fh, self._fh = self._fh, None
        if fh is None:
            return
        # The unflushed buffer is lost with the handle, as intended.
        with contextlib.suppress(OSError):
            fh.close()
        with contextlib.suppress(OSError):
            os.truncate(self.path, self._size)

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


def last_logged_seq(path: Path) -> int:
    """The ``seq`` of the last whole line of an events.jsonl (0 if there is none).

    Used when a state store is created beside an existing event log (the database was moved
    away): numbering continues after the log instead of reusing its seqs.
    """
    import json

    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read()
    except OSError:
        return 0
    for line in reversed(tail.splitlines()):
        try:
            seq = json.loads(line).get("seq")
        except (ValueError, AttributeError):
            continue
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
            return seq
    return 0
