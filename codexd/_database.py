"""The SQLite state of record, as plain blocking calls.

Only :mod:`codexd.store` uses this, and only from worker threads (``trio.to_thread``). Records are
stored as camelCase JSON documents beside a few indexed columns, so a schema change of a record
needs no migration. The database runs in WAL mode with ``synchronous=FULL``: a committed batch
survives ``kill -9`` and power loss, and a crash mid-batch leaves no partial rows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .records import Approval, Event, Run, Session, from_wire

SCHEMA_VERSION = 1

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
"""


@attrs.frozen
class Loaded:
    """Everything read from the database when the store opens."""

    meta: dict[str, Any]
    sessions: list[Session]
    runs: list[Run]
    approvals: list[Approval]
    last_seq: int
    recent_events: list[Event]


@attrs.frozen
class Row:
    """One upsert: the table, the record id, its status and its JSON document."""

    table: str
    key: str
    status: str
    extra: str | None
    data: str


class Database:
    """A writer connection and a reader connection to ``state.sqlite3``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)
        self._reader = self._connect()
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def load(self, recent_limit: int) -> Loaded:
        cur = self._writer
        meta = {k: json.loads(v) for k, v in cur.execute("SELECT key, value FROM meta")}
        sessions = [
            from_wire(Session, json.loads(d))
            for (d,) in cur.execute("SELECT data FROM sessions ORDER BY rowid")
        ]
        runs = [
            from_wire(Run, json.loads(d))
            for (d,) in cur.execute("SELECT data FROM runs ORDER BY created_at, rowid")
        ]
        approvals = [
            from_wire(Approval, json.loads(d))
            for (d,) in cur.execute("SELECT data FROM approvals ORDER BY rowid")
        ]
        (max_seq,) = cur.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        last_seq = max(int(max_seq), int(meta.get("last_seq", 0)))
        recent = [
            event_from_json(d)
            for (d,) in cur.execute(
                "SELECT data FROM events ORDER BY seq DESC LIMIT ?", (recent_limit,)
            )
        ]
        recent.reverse()
        return Loaded(meta, sessions, runs, approvals, last_seq, recent)

    def write(
        self,
        events: Sequence[tuple[Event, str]],
        rows: Iterable[Row],
        meta: Mapping[str, Any],
    ) -> None:
        """Write one batch in ONE transaction: all of it lands, or none of it."""
        cur = self._writer
        cur.execute("BEGIN IMMEDIATE")
        try:
            if events:
                cur.executemany(
                    "INSERT INTO events (seq, ts, level, type, session_id, run_id, data)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (e.seq, e.ts, e.level, e.type, e.session_id, e.run_id, line)
                        for e, line in events
                    ],
                )
            for row in rows:
                if row.table == "sessions":
                    cur.execute(
                        "INSERT OR REPLACE INTO sessions (session_id, status, thread_id, data)"
                        " VALUES (?, ?, ?, ?)",
                        (row.key, row.status, row.extra, row.data),
                    )
                elif row.table == "runs":
                    cur.execute(
                        "INSERT OR REPLACE INTO runs (run_id, status, created_at, data)"
                        " VALUES (?, ?, ?, ?)",
                        (row.key, row.status, row.extra, row.data),
                    )
                else:
                    cur.execute(
                        "INSERT OR REPLACE INTO approvals (approval_id, status, data)"
                        " VALUES (?, ?, ?)",
                        (row.key, row.status, row.data),
                    )
            for key, value in meta.items():
                cur.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (key, json.dumps(value)),
                )
            cur.execute("COMMIT")
        except BaseException:
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
    ) -> list[Event]:
        """Events with ``after < seq <= up_to`` matching the filters, oldest first."""
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
            return [event_from_json(d) for (d,) in self._reader.execute(sql, args)]

    def close(self) -> None:
        self._writer.close()
        self._reader.close()


def event_to_json(event: Event) -> str:
    """An Event as one compact JSON line (the same text goes to SQLite and events.jsonl)."""
    return json.dumps(
        {
            "seq": event.seq,
            "ts": event.ts,
            "level": event.level,
            "type": event.type,
            "message": event.message,
            "detail": event.detail,
            "sessionId": event.session_id,
            "runId": event.run_id,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def event_from_json(text: str) -> Event:
    d = json.loads(text)
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
