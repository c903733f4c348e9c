"""Smoke checks that prove a build works end to end.

:func:`run_embedded_smoke` is the seed's embedded smoke: a tiny Python child that writes to
stdout and stderr and exits; a smoke session is registered and closed; then the files and records
a healthy daemon leaves behind are checked. :func:`run_real_smoke` (``smoke --real``) does the
same with the real bundled Codex app-server against the fake model provider: one session, one turn.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Literal

import attrs
import trio

from ._config import ChildConfig, Config
from ._daemon import open_daemon
from ._records import Snapshot

SMOKE_CHILD = (
    "import sys, time\n"
    "sys.stdout.write('codexd smoke ready\\n'); sys.stdout.flush()\n"
    "sys.stderr.write('codexd smoke stderr\\n'); sys.stderr.flush()\n"
    "time.sleep(0.025)\n"
    "sys.stdout.write('codexd smoke done\\n'); sys.stdout.flush()\n"
)

#: The events a smoke run must leave in the store, in this order.
SMOKE_EVENTS = (
    "daemon.started",
    "child.started",
    "session.registered",
    "session.closed",
    "child.exited",
    "daemon.stopped",
)


@attrs.frozen
class SmokeCheck:
    name: str
    status: Literal["ok", "failed"]
    detail: str


@attrs.frozen
class SmokeResult:
    checks: list[SmokeCheck]
    snapshot: Snapshot | None
    state_dir: str
    message: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.checks)


def _file_check(name: str, path: Path) -> SmokeCheck:
    if path.is_file():
        return SmokeCheck(name, "ok", f"{path} ({path.stat().st_size} bytes)")
    return SmokeCheck(name, "failed", f"missing: {path}")


def _stored_event_types(db_path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db_path) as conn:
        return [
            (int(s), str(t)) for s, t in conn.execute("SELECT seq, type FROM events ORDER BY seq")
        ]


def _sequence_check(name: str, seen: list[tuple[int, str]], wanted: tuple[str, ...]) -> SmokeCheck:
    """``wanted`` must appear as a subsequence of ``seen`` (types), with increasing seq."""
    index = 0
    last_seq = 0
    for seq, etype in seen:
        if index < len(wanted) and etype == wanted[index]:
            if seq <= last_seq:
                break
            last_seq = seq
            index += 1
    if index == len(wanted):
        return SmokeCheck(name, "ok", " < ".join(wanted))
    missing = wanted[index] if index < len(wanted) else "?"
    return SmokeCheck(name, "failed", f"missing or out of order: {missing}")


async def run_embedded_smoke(config: Config, *, lifetime_s: float = 0.1) -> SmokeResult:
    """Run the embedded smoke against ``config.state_dir``; never raises for a failed check."""
    smoke_config = attrs.evolve(
        config,
        mode="app-server",
        child=ChildConfig(strategy="spawn", command=sys.executable, args=["-c", SMOKE_CHILD]),
    )
    state = smoke_config.state_path
    async with open_daemon(smoke_config, plain_child=True) as daemon:
        session = await daemon.register_session("smoke", metadata={"source": "embedded-smoke"})
        child = daemon.child
        await trio.sleep(lifetime_s)
        if child is not None:
            with trio.move_on_after(10):
                await child.exited.wait()
        await daemon.close_session(session.session_id)
    snapshot = daemon.status()
    seen = await trio.to_thread.run_sync(_stored_event_types, state / "state.sqlite3")
    jsonl_types = await trio.to_thread.run_sync(_jsonl_types, state / "events.jsonl")
    closed = [s for s in snapshot.sessions if s.purpose == "smoke" and s.status == "closed"]
    checks = [
        _file_check("structured_event_log", state / "events.jsonl"),
        _file_check("stdout_log", state / "child-stdout.log"),
        _file_check("stderr_log", state / "child-stderr.log"),
        _file_check("daemon_state", state / "state.sqlite3"),
        SmokeCheck(
            "recent_event_cache",
            "ok" if snapshot.recent_events else "failed",
            f"{len(snapshot.recent_events)} cached events",
        ),
        SmokeCheck(
            "session_registry",
            "ok" if closed and session.session_id in {s.session_id for s in closed} else "failed",
            f"{len(snapshot.sessions)} recorded sessions, smoke session closed: {bool(closed)}",
        ),
        SmokeCheck(
            "child_output",
            "ok"
            if _contains(state / "child-stdout.log", b"codexd smoke done")
            and _contains(state / "child-stderr.log", b"codexd smoke stderr")
            else "failed",
            "stdout and stderr of the child captured",
        ),
        _sequence_check("stored_events", seen, SMOKE_EVENTS),
        _sequence_check("jsonl_events", jsonl_types, SMOKE_EVENTS),
    ]
    return SmokeResult(checks, snapshot, str(state))


def _contains(path: Path, needle: bytes) -> bool:
    try:
        return needle in path.read_bytes()
    except OSError:
        return False


def _jsonl_types(path: Path) -> list[tuple[int, str]]:
    import json

    out: list[tuple[int, str]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                out.append((int(record["seq"]), str(record["type"])))
    except OSError:
        pass
    return out


def format_checks(result: SmokeResult) -> str:
    """A fixed-width table of the checks."""
    width = max((len(c.name) for c in result.checks), default=10)
    lines = [f"{'check'.ljust(width)}  status  detail"]
    for check in result.checks:
        lines.append(f"{check.name.ljust(width)}  {check.status.ljust(6)}  {check.detail}")
    verdict = "all checks ok" if result.ok else "SMOKE FAILED"
    lines.append(f"{verdict} (state in {result.state_dir})")
    return "\n".join(lines)


REAL_SMOKE_REPLY = "codexd smoke: the real app-server answered"


async def run_real_smoke(config: Config, *, timeout_s: float = 60.0) -> SmokeResult:
    """Spawn the real Codex app-server against the fake model provider; run one turn.

    The app-server is ``child.command`` (with ``child.args``), else the bundled binary.

    Everything stays on this machine: the binary gets a throw-away ``CODEX_HOME`` and ``HOME``
    whose config points it at the fake provider on 127.0.0.1 with every network feature off.
    """
    from .testing import Reply, open_fake_provider, write_codex_home

    state = config.state_path
    checks: list[SmokeCheck] = []
    final: str | None = None
    snapshot: Snapshot | None = None
    started = trio.current_time()
    with trio.move_on_after(timeout_s) as scope:
        async with open_fake_provider(Reply.text(REAL_SMOKE_REPLY)) as provider:
            home = await trio.to_thread.run_sync(
                lambda: write_codex_home(state / "smoke-codex", base_url=provider.base_url)
            )
            # The configured command (and args) is what the smoke proves: a broken
            # child.command must fail it. The environment points Codex at the fake provider.
            real_config = attrs.evolve(
                config,
                mode="app-server",
                child=attrs.evolve(
                    config.child, strategy="spawn", env={**config.child.env, **home.env({})}
                ),
            )
            async with open_daemon(real_config) as daemon:
                child_state = daemon.status().child
                checks.append(
                    SmokeCheck(
                        "app_server_started",
                        "ok" if child_state.status == "running" else "failed",
                        f"child {child_state.status} pid {child_state.pid}"
                        + (f": {child_state.last_error}" if child_state.last_error else ""),
                    )
                )
                if child_state.status == "running":
                    session = await daemon.create_session("smoke", cwd=str(state))
                    checks.append(
                        SmokeCheck("session_created", "ok", f"thread {session.thread_id}")
                    )
                    accepted = await daemon.start_turn(session.session_id, "Say hello.")
                    result = await daemon.wait_turn(
                        session.session_id, accepted.turn_id, timeout=timeout_s / 2
                    )
                    final = result.final_message
                    checks.append(
                        SmokeCheck(
                            "turn_completed",
                            "ok" if result.status == "completed" else "failed",
                            f"turn {result.turn_id} {result.status}",
                        )
                    )
                    checks.append(
                        SmokeCheck(
                            "final_message",
                            "ok" if final == REAL_SMOKE_REPLY else "failed",
                            repr(final),
                        )
                    )
                    checks.append(
                        SmokeCheck(
                            "provider_called",
                            "ok" if provider.requests else "failed",
                            f"{len(provider.requests)} request(s) to the fake provider",
                        )
                    )
            snapshot = daemon.status()
    if scope.cancelled_caught:
        checks.append(SmokeCheck("deadline", "failed", f"did not finish within {timeout_s:g}s"))
    seen = await trio.to_thread.run_sync(_stored_event_types, state / "state.sqlite3")
    checks.append(
        _sequence_check(
            "stored_events",
            seen,
            (
                "daemon.started",
                "child.started",
                "app-server.connected",
                "session.created",
                "turn.accepted",
                "app-server.turn.completed",
                "daemon.stopped",
            ),
        )
    )
    checks.append(
        SmokeCheck(
            "child_stopped",
            "ok" if snapshot is not None and snapshot.child.status == "stopped" else "failed",
            f"child {snapshot.child.status if snapshot else '?'} after shutdown",
        )
    )
    elapsed = trio.current_time() - started
    checks.append(SmokeCheck("elapsed", "ok", f"{elapsed:.2f}s"))
    return SmokeResult(checks, snapshot, str(state), message=final)
