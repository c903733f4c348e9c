"""The SQLite state of record, as plain blocking calls.

Only :mod:`codexd._store` uses this, and only from worker threads (``trio.to_thread``). Records are
stored as camelCase JSON documents beside a few indexed columns, so a schema change of a record
needs no migration. The database runs in WAL mode with ``synchronous=FULL``: a committed batch
survives ``kill -9`` and power loss, and a crash mid-batch leaves no partial rows.

A new database is built under a temporary name and renamed into place only once it holds its
schema and identity, so ``state.sqlite3`` is either absent or a whole codexd store. An existing
file that is empty or not a codexd store is refused (:class:`ForeignDatabase`), never replaced:
that would start a new identity and reuse ``seq`` numbers that logs already hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs

from ._json import loads
from ._records import Approval, Event, Run, Session, from_wire

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, status TEXT NOT NULL, thread_id TEXT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    approval_id TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, level TEXT NOT NULL, type TEXT NOT NULL,
    session_id TEXT, run_id TEXT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    source TEXT NOT NULL, key TEXT NOT NULL, error TEXT NOT NULL, data TEXT NOT NULL);
"""

_UPSERT = {
    "sessions": "INSERT OR REPLACE INTO sessions (session_id, status, thread_id, data)"
    " VALUES (?, ?, ?, ?)",
    "runs": "INSERT OR REPLACE INTO runs (run_id, status, created_at, data) VALUES (?, ?, ?, ?)",
    "approvals": "INSERT OR REPLACE INTO approvals (approval_id, status, data) VALUES (?, ?, ?)",
}

_RECORDS: dict[str, type[Session | Run | Approval]] = {
    "sessions": Session,
    "runs": Run,
    "approvals": Approval,
}


class ForeignDatabase(Exception):
    """``state.sqlite3`` exists but is empty, unreadable or not a codexd store."""


@attrs.frozen
class LoadProblem:
    """A stored row or meta key that could not be read; it was moved aside, not used."""

    source: str
    key: str
    error: str
    #: True if the entry was repaired and used; False if it was quarantined.
    repaired: bool = False


@attrs.frozen
class Loaded:
    """Everything read from the database when the store opens."""

    meta: dict[str, Any]
    sessions: list[Session]
    runs: list[Run]
    approvals: list[Approval]
    last_seq: int
    recent_events: list[Event]
    problems: list[LoadProblem]


@attrs.frozen
class Row:
    """One upsert: the table, the record id, its status, an indexed extra column, its JSON."""

    table: str
    key: str
    status: str
    extra: str | None
    data: str


#: Events are inserted as multi-row statements of these sizes (largest first): one statement
#: binds a whole chunk and steps once, where ``executemany`` steps once per row and so gives
#: the GIL up and waits to take it back once per row, against the busy event loop (under a
#: flood, measured: 25 -> 22 us of the daemon's CPU per event). A few fixed sizes keep the cache
#: of prepared statements small; 256 rows x 7 parameters stay far below SQLite's limit.
_CHUNKS = (256, 64, 16, 4, 1)
_INSERT_EVENTS = {
    size: "INSERT INTO events (seq, ts, level, type, session_id, run_id, data) VALUES "
    + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * size)
    for size in _CHUNKS
}


def _insert_events(cur: sqlite3.Connection, events: Sequence[tuple[Event, bytes]]) -> None:
    start, count = 0, len(events)
    for size in _CHUNKS:
        while count - start >= size:
            params: list[Any] = []
            for e, line in events[start : start + size]:
                params += (e.seq, e.ts, e.level, e.type, e.session_id, e.run_id, line.decode())
            cur.execute(_INSERT_EVENTS[size], params)
            start += size


def _connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def create_database(path: Path, identity: Mapping[str, Any]) -> None:
    """Build a new store at ``path`` atomically: schema and ``identity`` meta keys, then rename."""
    tmp = path.with_name(f"{path.name}.new-{os.getpid()}")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [(key, json.dumps(value)) for key, value in identity.items()],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Database:
    """A writer connection and a reader connection to an existing codexd ``state.sqlite3``."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ForeignDatabase(f"{path} does not exist") from None
        if size == 0:
            raise ForeignDatabase(
                f"{path} is empty (0 bytes): it is not a codexd store; move it away to start"
                " afresh, or restore it from a backup"
            )
        # Look before touching: a read-only probe, so a foreign file is never modified.
        try:
            probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                tables = {n for (n,) in probe.execute("SELECT name FROM sqlite_master")}
                has_identity = (
                    "meta" in tables
                    and probe.execute("SELECT 1 FROM meta WHERE key = 'daemon_id'").fetchone()
                )
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            raise ForeignDatabase(f"{path} is not a readable SQLite database: {exc}") from None
        if not has_identity or "events" not in tables:
            raise ForeignDatabase(
                f"{path} is a SQLite database but not a codexd store (no identity or events"
                " table); point state_dir elsewhere or move the file away"
            )
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self._writer = _connect(path, synchronous)
        self._writer.executescript(_SCHEMA)  # tables added by later versions
        self._reader = _connect(path)
        self._read_lock = threading.Lock()
        self._closed = False

    def load(self, recent_limit: int) -> Loaded:
        """Read the whole state; rows that do not parse are quarantined and reported."""
        cur = self._writer
        problems: list[LoadProblem] = []
        meta: dict[str, Any] = {}
        for key, value in cur.execute("SELECT key, value FROM meta"):
            try:
                meta[key] = json.loads(value)
            except ValueError as exc:
                problems.append(self._quarantine("meta", key, exc, value))
        loaded: dict[str, list[Any]] = {}
        order = {"sessions": "rowid", "runs": "created_at, rowid", "approvals": "rowid"}
        for table, cls in _RECORDS.items():
            loaded[table] = []
            key_column = table[:-1] + "_id"
            rows = cur.execute(f"SELECT {key_column}, data FROM {table} ORDER BY {order[table]}")
            for key, data in rows.fetchall():
                try:
                    value, repaired = _loads_finite(data)
                    loaded[table].append(from_wire(cls, value))
                except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
                    problems.append(self._quarantine(table, key, exc, data))
                    cur.execute(f"DELETE FROM {table} WHERE {key_column} = ?", (key,))
                    continue
                if repaired:
                    problems.append(
                        LoadProblem(
                            table, key, "non-finite numbers (NaN, Infinity) read as null", True
                        )
                    )
        (max_seq,) = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        stored_last = meta.get("last_seq", 0)
        if not isinstance(stored_last, int) or isinstance(stored_last, bool) or stored_last < 0:
            problems.append(
                LoadProblem("meta", "last_seq", f"not a seq: {stored_last!r}; using MAX(seq)")
            )
            stored_last = 0
        last_seq = max(int(max_seq), stored_last)
        recent: list[Event] = []
        for seq, data in cur.execute(
            "SELECT seq, data FROM events ORDER BY seq DESC LIMIT ?", (recent_limit,)
        ).fetchall():
            try:
                recent.append(event_from_json(data))
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(LoadProblem("events", str(seq), f"unreadable event: {exc}"))
        recent.reverse()
        return Loaded(
            meta,
            loaded["sessions"],
            loaded["runs"],
            loaded["approvals"],
            last_seq,
            recent,
            problems,
        )

    def _quarantine(self, source: str, key: str, exc: BaseException, data: str) -> LoadProblem:
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        self._writer.execute(
            "INSERT INTO quarantine (source, key, error, data) VALUES (?, ?, ?, ?)",
            (source, str(key), error, data),
        )
        return LoadProblem(source, str(key), error)

    def write(
        self,
        events: Sequence[tuple[Event, bytes]],
        rows: Iterable[Row],
        meta: Mapping[str, Any],
    ) -> None:
        """Write one batch in ONE transaction: all of it lands, or none of it.

        On failure the original error is raised, not a secondary one: SQLite may already have
        rolled the transaction back itself (``SQLITE_FULL``), so the rollback here is tolerant.
        """
        cur = self._writer
        cur.execute("BEGIN IMMEDIATE")
        try:
            _insert_events(cur, events)
            for row in rows:
                if row.table == "approvals":
                    cur.execute(_UPSERT[row.table], (row.key, row.status, row.data))
                else:
                    cur.execute(_UPSERT[row.table], (row.key, row.status, row.extra, row.data))
            cur.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(key, json.dumps(value)) for key, value in meta.items()],
            )
            cur.execute("COMMIT")
        except BaseException:
            if cur.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK")
            raise

    def query_events(
        self,
        *,
        after: int,
        up_to: int | None,
        type_prefix: str | None,
        session_id: str | None,
        run_id: str | None,
        limit: int,
        max_bytes: int | None = None,
    ) -> list[Event]:
        """Events with ``after < seq <= up_to`` matching the filters, oldest first.

        With ``max_bytes`` the page stops once its JSON passes that size (one event at least).
        """
        sql = "SELECT data FROM events WHERE seq > ?"
        args: list[Any] = [after]
        if up_to is not None:
            sql += " AND seq <= ?"
            args.append(up_to)
        if type_prefix:
            sql += " AND substr(type, 1, ?) = ?"
            args += [len(type_prefix), type_prefix]
        if session_id:
            sql += " AND session_id = ?"
            args.append(session_id)
        if run_id:
            sql += " AND run_id = ?"
            args.append(run_id)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        with self._read_lock:
            if self._closed:
                raise ForeignDatabase("the state store is closed")
            if max_bytes is None:
                return [event_from_json(d) for (d,) in self._reader.execute(sql, args)]
            page: list[Event] = []
            size = 0
            for (data,) in self._reader.execute(sql, args):
                page.append(event_from_json(data))
                size += len(data)
                if size >= max_bytes:
                    break
            return page

    def close(self) -> None:
        with self._read_lock:
            self._closed = True
            self._writer.close()
            self._reader.close()


def _loads_finite(text: str) -> tuple[Any, bool]:
    """JSON as written by older versions, with NaN/Infinity (not JSON) read as ``None``."""
    repaired = False

    def constant(_name: str) -> None:
        nonlocal repaired
        repaired = True

    return json.loads(text, parse_constant=constant), repaired


def dumps(value: Any) -> str:
    """Compact JSON that is valid JSON: a non-finite number (a bug upstream) becomes null."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), separators=(",", ":"), ensure_ascii=False)


def _finite(value: Any) -> Any:
    if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def event_from_json(text: str | bytes) -> Event:
    d = loads(text)
    return Event(
        seq=d["seq"],
        ts=d["ts"],
        level=d["level"],
        type=d["type"],
        message=d["message"],
        detail=d.get("detail"),
        session_id=d.get("sessionId"),
        run_id=d.get("runId"),
    )
