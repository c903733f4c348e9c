"""Trust faults on a real `codexd serve`: one input or one environment fault never wedges it."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import trio

from codexd import Run
from codexd._store import Store
from codexd.client import ApiError, open_client
from codexd.testing import FakeAppServerScript

from ..helpers import run_codexd, start_serve


def write_config(tmp_path: Path, script: FakeAppServerScript | None = None, **extra: str) -> Path:
    """A codexd.toml: state in tmp_path/state, the fake app-server, API on a free port."""
    argv = (script or FakeAppServerScript()).command()
    lines = [
        f'state_dir = "{extra.pop("state_dir", tmp_path / "state")}"',
        "[child]",
        f"command = {json.dumps(argv[0])}",
        f"args = {json.dumps(argv[1:])}",
        "[api]",
        f'listen = "{extra.pop("listen", "ws://127.0.0.1:0")}"',
        "[stop]",
        "grace_s = 1",
    ]
    path = tmp_path / "codexd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def status_of(state: Path) -> dict[str, object]:
    with trio.fail_after(10):
        async with open_client(state) as client:
            result: dict[str, object] = await client.call("daemon/status")
            return result


async def test_a_second_serve_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state"
    async with trio.open_nursery() as nursery:
        first = await start_serve(nursery, ["--config", str(config), "serve"])
        api_json = (state / "api.json").read_text()
        second, _out, err = await run_codexd(nursery, ["--config", str(config), "serve"])
        with trio.fail_after(20):
            code = await second.wait()
        assert code == 1
        lines = bytes(err).decode().strip().splitlines()
        assert lines == [f"codexd: state dir {state} is in use by pid {first.pid}"], lines
        # The first daemon is untouched: its api.json, its child, its API.
        assert (state / "api.json").read_text() == api_json
        status = await status_of(state)
        assert status["daemon"]["status"] == "running"  # type: ignore[index]
        child_pid = status["child"]["pid"]  # type: ignore[index]
        os.kill(child_pid, 0)
        assert await first.stop() == 0


async def test_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, listen=f"ws://127.0.0.1:{port}")
        async with trio.open_nursery() as nursery:
            process, _out, err = await run_codexd(nursery, ["--config", str(config), "serve"])
            with trio.fail_after(30):
                assert await process.wait() == 1
    lines = bytes(err).decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"ws://127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines


async def test_unix_listen_serves_and_never_removes_a_foreign_file(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "api.sock"
    sock.parent.mkdir()
    config = write_config(tmp_path, listen=f"unix://{sock}")
    async with trio.open_nursery() as nursery:
        serve = await start_serve(nursery, ["--config", str(config), "serve"])
        assert serve.ready["api"] == f"unix://{sock}"
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        status = await status_of(tmp_path / "state")
        assert status["daemon"]["apiUrl"] == f"unix://{sock}"  # type: ignore[index]
        with trio.fail_after(15):
            assert await serve.stop() == 0
    assert not sock.exists()
    # A path that holds someone's file is refused, and the file is left as it was.
    sock.write_text("precious")
    async with trio.open_nursery() as nursery:
        process, _out, err = await run_codexd(nursery, ["--config", str(config), "serve"])
        with trio.fail_after(30):
            assert await process.wait() == 1
    assert sock.read_text() == "precious"
    assert b"not a socket" in err


async def test_a_non_ascii_handshake_then_sigterm_exits_promptly(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with trio.open_nursery() as nursery:
        serve = await start_serve(nursery, ["--config", str(config), "serve"])
        host, port = str(serve.ready["api"]).removeprefix("ws://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Authorization: Bearer \xe9\r\n\r\n"
        )
        answer = await stream.receive_some(4096)
        await stream.aclose()
        assert answer.startswith(b"HTTP/1.1 401"), answer
        status = await status_of(tmp_path / "state")
        assert status["daemon"]["status"] == "running"  # type: ignore[index]
        with trio.fail_after(10):
            assert await serve.stop() == 0


async def test_queued_runs_that_no_longer_validate_fail_instead_of_wedging(
    tmp_path: Path,
) -> None:
    """Runs stored by an older codexd with poison options: the next start fails them."""
    state = tmp_path / "state"
    store = await Store.open(state)
    poisons = {
        "env-key": {"env": {"A=B": "x"}},
        "nul-model": {"model": "gpt\x00"},
        "negative-timeout": {"timeoutS": -5},
    }
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for name, options in poisons.items():
            run = Run(name, None, "queued", "prompt", "general", None, "t", "t", options=options)
            await store.save(run)
        await store.close_input()
    config = write_config(tmp_path)
    async with trio.open_nursery() as nursery:
        serve = await start_serve(nursery, ["--config", str(config), "serve"])
        async with open_client(state) as client:
            runs = (await client.call("run/list"))["runs"]
        assert {r["runId"]: r["status"] for r in runs} == dict.fromkeys(poisons, "failed")
        assert all("no longer valid" in r["error"] for r in runs)
        assert await serve.stop() == 0


class SmallDisk:
    """A state dir that fills up for real and can be given space back.

    As root: a 3 MiB tmpfs with a filler file to delete later. Otherwise: the daemon runs
    with RLIMIT_FSIZE (writes past the size fail with EFBIG, SIGXFSZ ignored) and space
    "returns" when the limit is lifted with prlimit. Either way SQLite and the logs see real
    write errors from the kernel.
    """

    def __init__(self, root: Path, size_mib: int) -> None:
        self.root = root
        self.size = size_mib * 1024 * 1024
        root.mkdir(parents=True)
        self.mounted = False
        if os.geteuid() == 0:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(root)],
                capture_output=True,
            )
            self.mounted = done.returncode == 0
        self.filler = root / "filler"
        if self.mounted:
            self.filler.write_bytes(b"\0" * 700_000)

    def preexec(self) -> None:
        if not self.mounted:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.size, self.size))

    def give_space_back(self, pid: int) -> None:
        if self.mounted:
            self.filler.unlink()
        else:
            unlimited = resource.RLIM_INFINITY
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))

    def remove(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=False)


async def test_disk_full_degrades_refuses_writes_and_recovers_when_space_returns(
    tmp_path: Path,
) -> None:
    """State dir on a small filesystem, turns stream until it is full, then space returns."""
    disk = SmallDisk(tmp_path / "small", 3)
    try:
        state = disk.root / "state"
        script = FakeAppServerScript(reply_text="x" * 100_000, delta_count=200)
        config = write_config(tmp_path, script, state_dir=str(state))
        async with trio.open_nursery() as nursery:
            serve = await start_serve(
                nursery, ["--config", str(config), "serve"], preexec_fn=disk.preexec
            )
            async with open_client(state) as client:
                session = await client.call("session/create", {"purpose": "disk"})
                refused: ApiError | None = None
                with trio.fail_after(120):
                    while refused is None:
                        try:
                            turn = await client.call(
                                "turn/start", {"sessionId": session["sessionId"], "input": "go"}
                            )
                            await client.call(
                                "turn/wait",
                                {"sessionId": session["sessionId"], "turnId": turn["turnId"]},
                            )
                        except ApiError as exc:
                            refused = exc  # from turn/start, or turn/wait told it degraded
                # The real cause, not a secondary "cannot rollback" error.
                assert refused.code == -32009, refused
                assert "rollback" not in refused.message
                assert any(w in refused.message.lower() for w in ("full", "space", "large"))
                status = await client.call("daemon/status")
                assert status["store"]["status"] == "degraded"
                assert status["daemon"]["status"] == "degraded"
                disk.give_space_back(serve.pid)
                with trio.fail_after(60):
                    while (await client.call("daemon/status"))["store"]["status"] != "ok":
                        await trio.sleep(0.2)
                page = await client.call("events/list", {"type": "store.recovered"})
                assert page["events"], "store.recovered is recorded once writable again"
                await client.call("session/get", {"sessionId": session["sessionId"]})
            assert await serve.stop() == 0
        with contextlib.closing(sqlite3.connect(state / "state.sqlite3")) as conn:
            seqs = [s for (s,) in conn.execute("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        disk.remove()


async def test_stopping_while_degraded_exits_1_within_the_bound(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path / "small", 3)
    try:
        state = disk.root / "state"
        script = FakeAppServerScript(reply_text="y" * 100_000, delta_count=200)
        config = write_config(tmp_path, script, state_dir=str(state))
        async with trio.open_nursery() as nursery:
            serve = await start_serve(
                nursery, ["--config", str(config), "serve"], preexec_fn=disk.preexec
            )
            async with open_client(state) as client:
                session = await client.call("session/create", {"purpose": "disk"})
                with trio.fail_after(120):
                    while (await client.call("daemon/status"))["store"]["status"] == "ok":
                        with contextlib.suppress(ApiError):
                            turn = await client.call(
                                "turn/start", {"sessionId": session["sessionId"], "input": "go"}
                            )
                            await client.call(
                                "turn/wait",
                                {"sessionId": session["sessionId"], "turnId": turn["turnId"]},
                            )
            started = trio.current_time()
            assert await serve.stop(timeout=30) == 1
            assert trio.current_time() - started < 1 + 25
            assert b"degraded" in serve.stderr
    finally:
        disk.remove()


async def test_respawn_out_of_file_descriptors_is_retried_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE while respawning the app-server: retried with backoff, back once fds free up."""
    import errno

    from codexd import ApiConfig, ChildConfig, Config, RestartConfig, StopConfig, open_daemon

    argv = FakeAppServerScript().command()
    config = Config(
        state_dir=str(tmp_path / "state"),
        child=ChildConfig(command=argv[0], args=argv[1:]),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1.0),
        restart=RestartConfig(backoff_initial_s=0.05, backoff_max_s=0.2, max_restarts=3),
    )
    real_open_process = trio.lowlevel.open_process
    exhausted = {"left": 0}

    async def open_process(*args: object, **kwargs: object) -> trio.Process:
        if exhausted["left"] > 0:
            exhausted["left"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await real_open_process(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trio.lowlevel, "open_process", open_process)
    with trio.fail_after(60):
        async with open_daemon(config) as daemon:
            first = daemon.status().child.pid
            assert first is not None
            # More failed spawns than max_restarts: transient failures are not counted.
            exhausted["left"] = 6
            os.kill(first, signal.SIGKILL)
            while daemon.status().child.status != "running" or daemon.status().child.pid == first:
                await trio.sleep(0.05)
            assert exhausted["left"] == 0
            failed = [e for e in daemon.store.recent_events if e.type == "child.spawn.failed"]
            assert len(failed) == 6 and "Too many open files" in failed[0].message


@pytest.mark.parametrize("problem", ["empty", "foreign"])
async def test_an_empty_or_foreign_store_is_refused_not_replaced(
    tmp_path: Path, problem: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / "state.sqlite3"
    if problem == "empty":
        db.write_bytes(b"")
    else:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
            conn.commit()
    before = db.read_bytes()
    config = write_config(tmp_path)
    async with trio.open_nursery() as nursery:
        process, _out, err = await run_codexd(nursery, ["--config", str(config), "serve"])
        with trio.fail_after(30):
            assert await process.wait() == 1
    lines = bytes(err).decode().strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0], lines
    assert ("empty" if problem == "empty" else "not a codexd store") in lines[0]
    assert db.read_bytes() == before
