"""The daemon under test: a real ``codexd serve`` subprocess, and the checks every case ends with.

:class:`DaemonProcess` starts ``.venv/bin/python -m codexd --config FILE serve`` in its own process
group, waits for the ``codexd ready {...}`` line (an event, not a sleep), drains its stdout and
stderr for its whole life, and kills the whole group when asked, whatever state it is in.

:class:`Target` is what a property test holds (one per test module): the current daemon plus the
ids created when it started (``refs``, substituted for ``@@NAME@@`` placeholders in cases).
After an example the test calls :meth:`Target.check_alive`: ``daemon/status`` must answer within
10 s on a fresh authenticated connection, the store must not be degraded, and the committed
``events`` table must have no gap. If that fails the target is marked broken and the next example
gets a fresh daemon, so Hypothesis can keep generating and shrinking instead of timing out on a
corpse. :meth:`Target.finish` stops the daemon (SIGTERM, then SIGKILL to the group) and checks the
store it left: ``state.sqlite3`` opens, passes ``integrity_check``, its ``events`` seqs are
exactly 1..N, and ``events.jsonl`` (with its rotated backups) holds the same seqs in order.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from codexd.testing import write_codex_home

from ._render import describe

HERE = Path(__file__).resolve().parent
SITE_DIR = HERE / "_site"
PYTHON = sys.executable

#: How long daemon/status may take before the daemon counts as wedged.
STATUS_TIMEOUT_S = 10.0
#: How long a daemon may take to print its ready line.
READY_TIMEOUT_S = 30.0
#: How long a daemon may take to exit after SIGTERM.
STOP_TIMEOUT_S = 30.0
#: Client-side message size limit: big enough for any answer the daemon may legitimately send.
CLIENT_MAX_MESSAGE = 256 * 1024 * 1024

JsonObject = dict[str, Any]


#: Every daemon started and not yet reaped, killed at exit whatever happened.
_LIVE: set[DaemonProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    for daemon in list(_LIVE):
        daemon.kill()


class DaemonDown(AssertionError):
    """The daemon did not answer daemon/status (wedged, crashed or refusing connections)."""


# ---- the process ----------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(type(value))


def write_toml(path: Path, tree: Mapping[str, Any]) -> None:
    lines = [f"{k} = {_toml_value(v)}" for k, v in tree.items() if not isinstance(v, dict)]
    for section, table in tree.items():
        if isinstance(table, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")


def daemon_environment(root: Path) -> dict[str, str]:
    """An offline environment: CODEX_HOME/HOME in ``root``, provider on a closed local port."""
    home = write_codex_home(root, base_url="http://127.0.0.1:9/v1")
    env = home.env()
    env = {k: v for k, v in env.items() if not k.startswith("CODEXD_")}
    env["PYTHONPATH"] = str(SITE_DIR)
    env["FUZZ_CODEXD_FAULTHANDLER"] = "1"
    env.pop("PYTHONSTARTUP", None)
    return env


def _collapse(lines: list[str]) -> str:
    """Lines with runs of identical ones folded into one."""
    out: list[str] = []
    previous, repeats = None, 0
    for line in [*lines, None]:
        if line == previous:
            repeats += 1
            continue
        if repeats:
            out.append(f"    [the line above repeated {repeats} more times]")
        if line is not None:
            out.append(line)
        previous, repeats = line, 0
    return "\n".join(out)


class DaemonProcess:
    """One ``codexd serve`` subprocess in its own process group."""

    def __init__(self, root: Path, config: Mapping[str, Any]) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.config_path = root / "codexd.toml"
        self.config = {"state_dir": str(self.state_dir), **config}
        self.stdout_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=400)
        self.stderr_head: list[str] = []
        self._lines = threading.Condition()
        self._stderr_count = 0
        self._ready = threading.Event()
        self.ready_info: JsonObject = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.token = ""
        self.exit_code: int | None = None

    # -- life cycle --

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_toml(self.config_path, self.config)
        env = daemon_environment(self.root)
        argv = [PYTHON, "-m", "codexd", "--config", str(self.config_path), "serve"]
        self.proc = subprocess.Popen(
            argv,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _LIVE.add(self)
        for name, pipe, tail in (
            ("stdout", self.proc.stdout, self.stdout_tail),
            ("stderr", self.proc.stderr, self.stderr_tail),
        ):
            thread = threading.Thread(
                target=self._drain, args=(pipe, tail, name), daemon=True, name=f"drain-{name}"
            )
            thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(
                    f"codexd serve did not print its ready line within {READY_TIMEOUT_S:g} s"
                    f" (exit code {self.proc.returncode})\n{self.tails()}"
                )
        self.url = str(self.ready_info["api"])
        self.token = (self.state_dir / "api-token").read_text().strip()
        api_json = json.loads((self.state_dir / "api.json").read_text())
        assert api_json["url"] == self.url, (api_json, self.ready_info)

    def _drain(self, pipe: Any, tail: collections.deque[str], name: str) -> None:
        log = (self.root / f"daemon-{name}.log").open("ab")
        with log:
            for raw_line in iter(pipe.readline, b""):
                log.write(raw_line)
                log.flush()
                line = raw_line.decode("utf-8", "replace").rstrip("\n")
                if name == "stdout" and line.startswith("codexd ready "):
                    self.ready_info = json.loads(line[len("codexd ready ") :])
                    self._ready.set()
                with self._lines:
                    tail.append(line[:2000])
                    if name == "stderr":
                        self._stderr_count += 1
                        if len(self.stderr_head) < 30:
                            self.stderr_head.append(line[:2000])
                    self._lines.notify_all()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tails(self, lines: int = 40) -> str:
        """The first stderr lines (the cause is often there), the last ones, the stdout tail."""
        with self._lines:
            count = self._stderr_count
            head = list(self.stderr_head)
            err = (
                list(self.stderr_tail)[-min(lines, max(0, count - len(head))) :]
                if count > len(head)
                else []
            )
            out = list(self.stdout_tail)[-10:]
        text = "--- daemon stdout (tail) ---\n" + "\n".join(out)
        text += f"\n--- daemon stderr ({count} lines; first {len(head)}) ---\n" + _collapse(head)
        if err:
            text += f"\n--- daemon stderr (last {len(err)}) ---\n" + _collapse(err)
        return text + f"\n--- full logs: {self.root}/daemon-std*.log"

    def dump_stacks(self, timeout: float = 3.0) -> str:
        """SIGUSR1 (faulthandler, see _site/sitecustomize.py) and the dump it wrote."""
        if not self.alive():
            return ""
        with self._lines:
            before = self._stderr_count
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        with self._lines:
            # The dump ends with the main thread's stack; wait for lines to stop arriving.
            while time.monotonic() < deadline:
                count = self._stderr_count
                self._lines.wait(0.3)
                if self._stderr_count == count and count > before:
                    break
            new = list(self.stderr_tail)[-(self._stderr_count - before) :]
        stack_lines = [
            line
            for line in new
            if line.startswith(("Thread 0x", "Current thread 0x", "  File ", "  <no Python frame>"))
        ]
        return "--- daemon thread stacks (SIGUSR1) ---\n" + "\n".join(stack_lines[-80:])

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit code, or None if it had to be SIGKILLed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.exit_code = self.proc.returncode
        self.kill()  # whatever is left of the group
        return self.exit_code

    def kill(self) -> None:
        """SIGKILL the daemon's whole process group (idempotent)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        _LIVE.discard(self)


# ---- talking to it ---------------------------------------------------------------------------


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@contextlib.asynccontextmanager
async def open_api(url: str, token: str | None, headers: list[tuple[bytes, bytes]] | None = None):  # type: ignore[no-untyped-def]
    """An authenticated WebSocket to the daemon (exception groups unwrapped)."""
    extra = list(headers or [])
    if token is not None:
        extra.append((b"Authorization", f"Bearer {token}".encode()))
    try:
        async with trio_websocket.open_websocket_url(
            url,
            extra_headers=extra,
            max_message_size=CLIENT_MAX_MESSAGE,
            message_queue_size=64,
            connect_timeout=STATUS_TIMEOUT_S,
            disconnect_timeout=2,
        ) as ws:
            yield ws
    except BaseExceptionGroup as group:
        leaf = _first_leaf(group)
        if isinstance(leaf, Exception):
            raise leaf from group
        raise


async def call(
    url: str, token: str, method: str, params: Any = None, *, timeout: float = STATUS_TIMEOUT_S
) -> JsonObject:
    """One request on a fresh connection; the whole answer message. Raises DaemonDown."""
    with trio.move_on_after(timeout) as scope:
        try:
            async with open_api(url, token) as ws:
                request = {"jsonrpc": "2.0", "id": "fz-call", "method": method}
                request["params"] = {} if params is None else params
                await ws.send_message(json.dumps(request))
                while True:
                    answer = json.loads(await ws.get_message())
                    if isinstance(answer, dict) and answer.get("id") == "fz-call":
                        return answer
        except (OSError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed) as exc:
            raise DaemonDown(f"{method} failed: {exc!r}") from exc
    assert scope.cancelled_caught
    raise DaemonDown(f"{method} not answered within {timeout:g} s")


async def call_result(url: str, token: str, method: str, params: Any = None) -> Any:
    answer = await call(url, token, method, params)
    if "result" not in answer:
        raise AssertionError(f"{method} {describe(params)} failed: {answer}")
    return answer["result"]


# ---- the store -------------------------------------------------------------------------------


def _open_ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def live_store_problem(state_dir: Path, last_seq: int | None) -> str | None:
    """While the daemon runs: committed events have seqs 1..N and include ``last_seq``."""
    db = state_dir / "state.sqlite3"
    try:
        con = _open_ro(db)
        try:
            count, low, high = con.execute(
                "SELECT COUNT(*), MIN(seq), MAX(seq) FROM events"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"state.sqlite3 could not be read while the daemon runs: {exc!r}"
    if count and (low != 1 or high != count):
        return f"the events table has a gap: {count} rows, seqs {low}..{high}"
    if last_seq is not None and (high or 0) < last_seq:
        return f"daemon/status reports lastSeq {last_seq} but only {high or 0} events are on disk"
    return None


def _first_gap(seqs: list[int]) -> str:
    for index, seq in enumerate(seqs, start=1):
        if seq != index:
            return f"expected seq {index}, found {seq} (row {index} of {len(seqs)})"
    return "?"


def store_problems(state_dir: Path) -> list[str]:
    """After the daemon stopped: the store opens, is intact, and the events have no gap."""
    problems: list[str] = []
    db = state_dir / "state.sqlite3"
    if not db.exists():
        return [f"{db} does not exist"]
    try:
        con = _open_ro(db)
        try:
            check = con.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                problems.append(f"integrity_check: {check[:5]}")
            rows = con.execute("SELECT seq, data FROM events ORDER BY seq").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return [f"state.sqlite3 does not open: {exc!r}"]
    seqs = [row[0] for row in rows]
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"events seqs are not 1..{len(seqs)}: {_first_gap(seqs)}")
    for seq, data in rows:
        try:
            json.loads(data)
        except (ValueError, TypeError) as exc:
            problems.append(f"events.data of seq {seq} is not JSON: {exc!r}")
            break
    problems.extend(_jsonl_problems(state_dir, seqs))
    return problems


def _jsonl_problems(state_dir: Path, db_seqs: list[int]) -> list[str]:
    base = state_dir / "events.jsonl"
    backups = sorted(
        (p for p in state_dir.glob("events.jsonl.*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    files = [*backups, base] if base.exists() else backups
    if not files:
        return []
    seqs: list[int] = []
    for path in files:
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            try:
                seq = json.loads(line.decode("utf-8"))["seq"]
            except Exception as exc:
                return [f"{path.name} line {number} is not a JSON event: {exc!r}: {line[:120]!r}"]
            seqs.append(seq)
    if not seqs:
        return []
    # With rotated backups the oldest lines may be gone: the log holds a suffix of the store.
    ok = seqs == db_seqs[-len(seqs) :] if backups else seqs == db_seqs
    if not ok:
        expected = db_seqs[-len(seqs) :] if backups else db_seqs
        index = next(
            (i for i, (a, b) in enumerate(zip(seqs, expected, strict=False)) if a != b),
            min(len(seqs), len(expected)),
        )
        got = seqs[index] if index < len(seqs) else "nothing"
        want = expected[index] if index < len(expected) else "nothing"
        detail = f"line {index + 1} holds seq {got}, the store has {want} there"
        return [
            f"events.jsonl holds {len(seqs)} events (seqs {seqs[0]}..{seqs[-1]}) that are not"
            f" the store's seqs 1..{len(db_seqs)} in order: {detail}"
        ]
    return []


# ---- the target ------------------------------------------------------------------------------


Setup = Callable[["Target"], dict[str, str]]


class Target:
    """The daemon a property test's examples run against (replaced after one is broken)."""

    def __init__(
        self,
        name: str,
        base_dir: Path,
        config: Callable[[Path], Mapping[str, Any]],
        setup: Setup | None = None,
    ) -> None:
        self.name = name
        self.base_dir = base_dir
        self._config = config
        self._setup = setup
        self.daemon: DaemonProcess | None = None
        self.refs: dict[str, str] = {}
        self.broken: str | None = None
        self.generation = 0
        self.retired: list[tuple[DaemonProcess, str]] = []

    # -- life cycle --

    def ensure(self) -> DaemonProcess:
        """The current daemon; a fresh one if there is none or the last one broke."""
        if self.daemon is not None and (self.broken or not self.daemon.alive()):
            self.daemon.kill()
            self.retired.append((self.daemon, self.broken or "exited"))
            self.daemon = None
        if self.daemon is None:
            self.generation += 1
            self.broken = None
            root = self.base_dir / f"{self.name}-{self.generation}"
            daemon = DaemonProcess(root, self._config(root))
            try:
                daemon.start()
            except BaseException:
                daemon.kill()
                raise
            self.daemon = daemon
            self.refs = {"TOKEN": daemon.token}
            if self._setup is not None:
                try:
                    self.refs.update(self._setup(self))
                except BaseException:
                    self.broken = "setup failed"
                    raise
        return self.daemon

    def finish(self) -> None:
        """Stop the current daemon and check what it left; kills the group whatever happens."""
        daemon, self.daemon = self.daemon, None
        if daemon is None:
            return
        try:
            was_alive = daemon.alive()
            code = daemon.stop()
            problems = []
            if not was_alive:
                problems.append(f"the daemon had already exited (code {daemon.proc.returncode})")  # type: ignore[union-attr]
            elif code is None:
                problems.append(f"the daemon did not exit within {STOP_TIMEOUT_S:g} s of SIGTERM")
            elif code != 0:
                problems.append(f"the daemon exited with code {code} after SIGTERM (expected 0)")
            problems.extend(store_problems(daemon.state_dir))
            if problems:
                raise AssertionError(
                    f"[{self.name}] after the daemon stopped:\n  "
                    + "\n  ".join(problems)
                    + "\n"
                    + daemon.tails()
                )
        finally:
            daemon.kill()

    # -- checks --

    @property
    def url(self) -> str:
        assert self.daemon is not None
        return self.daemon.url

    @property
    def token(self) -> str:
        assert self.daemon is not None
        return self.daemon.token

    @property
    def host_port(self) -> tuple[str, int]:
        rest = self.url.split("://", 1)[1]
        host, _, port = rest.rpartition(":")
        return host, int(port)

    async def check_alive(self, context: str) -> JsonObject:
        """daemon/status answers, the store is healthy and gap-free; else fail (and mark broken)."""
        daemon = self.daemon
        assert daemon is not None
        problem: str | None = None
        snapshot: JsonObject = {}
        if not daemon.alive():
            problem = f"the daemon process exited with code {daemon.proc.returncode}"  # type: ignore[union-attr]
        else:
            try:
                answer = await call(daemon.url, daemon.token, "daemon/status")
            except DaemonDown as exc:
                problem = str(exc)
                if not daemon.alive():
                    problem += f"; the daemon exited with code {daemon.proc.returncode}"  # type: ignore[union-attr]
            else:
                if not isinstance(answer.get("result"), dict):
                    problem = f"daemon/status answered without a result: {describe(answer)}"
                else:
                    snapshot = answer["result"]
                    store = snapshot.get("store") or {}
                    if store.get("status", "ok") != "ok":
                        problem = f"the state store is {store.get('status')}: {store.get('error')}"
                    else:
                        problem = await trio.to_thread.run_sync(
                            live_store_problem, daemon.state_dir, snapshot.get("lastSeq")
                        )
        if problem is None:
            return snapshot
        self.broken = problem
        tails = daemon.tails()
        stacks = await trio.to_thread.run_sync(daemon.dump_stacks)
        raise DaemonDown(f"[{self.name}] {problem}\n  after: {context}\n{tails}\n{stacks}".rstrip())


def short_tmp_dir() -> Path:
    """A short directory (unix socket paths must stay under ~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="cxfz-", dir="/tmp"))
