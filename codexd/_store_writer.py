"""The store's disk side: one prepared batch into SQLite, then into the log files.

Plain blocking calls, run by the store task in a worker thread (``trio.to_thread``), one batch at
a time. The SQLite transaction is the commit point; ``events.jsonl`` and the child's output logs
are appended after it, and a log that cannot be written does not undo the commit: its lines
wait in a bounded backlog and are appended with a later batch.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from . import _statedir, _time
from ._database import Database, ForeignDatabase, create_database
from ._errors import StoreError
from ._logfiles import RotatingFile, last_logged_seq
from ._store_batch import Prepared
from ._store_events import row_of

#: Event-log bytes kept for a later append when events.jsonl cannot be written.
LOG_BACKLOG_BYTES = 8 * 1024 * 1024


T = TypeVar("T")


def open_state(
    state_dir: Path,
    build: Callable[[Database, _statedir.StateDirLock], T],
    synchronous: str = "FULL",
) -> T:
    """Claim the state directory, open (or create) its database, and ``build`` on them.

    Blocking (run it in a thread). Raises :class:`~codexd._errors.StateDirInUse` when another
    daemon holds the directory, :class:`~codexd._errors.StoreError` naming the problem when the
    directory or its ``state.sqlite3`` cannot be used; the lock is released on any failure.
    """
    lock = _statedir.claim(state_dir)
    try:
        path = state_dir / "state.sqlite3"
        if not path.exists():
            start = last_logged_seq(state_dir / "events.jsonl")
            create_database(
                path,
                {
                    "daemon_id": f"codexd-{secrets.token_hex(6)}",
                    "created_at": _time.now_iso(),
                    "last_seq": start,
                },
            )
        return build(Database(path, synchronous=synchronous), lock)
    except ForeignDatabase as exc:
        lock.release()
        raise StoreError(f"refusing to use the state store: {exc}") from None
    except OSError as exc:
        lock.release()
        raise StoreError(
            f"cannot open the state store in {state_dir}: {exc.strerror or exc}"
        ) from None
    except BaseException:
        lock.release()
        raise


def log(message: str) -> None:
    """A line on stderr for the operator (the store cannot record its own failures)."""
    print(f"codexd: {message}", file=sys.stderr, flush=True)


class StoreFiles:
    """``state.sqlite3`` and the log files of one state directory, with the directory's lock."""

    def __init__(
        self,
        state_dir: Path,
        db: Database,
        lock: _statedir.StateDirLock,
        *,
        log_max_bytes: int,
        log_backups: int,
    ) -> None:
        self.db = db
        self._lock = lock
        self._event_log = RotatingFile(
            state_dir / "events.jsonl", max_bytes=log_max_bytes, backups=log_backups
        )
        self._output_logs = {
            stream: RotatingFile(
                state_dir / f"child-{stream}.log", max_bytes=log_max_bytes, backups=log_backups
            )
            for stream in ("stdout", "stderr")
        }
        self._log_backlog = b""
        #: Appends to a log file that failed (the commit stood).
        self.log_failures = 0

    def write(self, prepared: Prepared) -> None:
        """Commit the batch (raises if the database write fails), then append the logs."""
        self.db.write(
            prepared.events,
            [row_of(r) for r in prepared.records.values()],
            prepared.meta,
        )
        if prepared.reopen:
            self._event_log.reopen()
            for output_log in self._output_logs.values():
                output_log.reopen()
        if prepared.events:
            lines = [line for _event, line in prepared.events]
            lines.append(b"")
            data = self._log_backlog + b"\n".join(lines)
        else:
            data = self._log_backlog
        if data:
            try:
                self._event_log.write(data)
                self._log_backlog = b""
            except OSError as exc:
                self.log_failures += 1
                cut = max(0, len(data) - LOG_BACKLOG_BYTES)
                if cut:
                    cut = data.find(b"\n", cut) + 1
                self._log_backlog = data[cut:]
                log(f"events.jsonl could not be appended (kept for later): {exc}")
        for stream, output in prepared.outputs:
            try:
                self._output_logs[stream].write(output)
            except OSError:
                self.log_failures += 1

    def close(self) -> None:
        """Close the logs and the database, and release the state directory."""
        self._event_log.close()
        for output_log in self._output_logs.values():
            output_log.close()
        self.db.close()
        self._lock.release()
