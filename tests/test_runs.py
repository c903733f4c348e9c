"""The exec run queue, with the REAL `codex exec` against the fake model provider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import attrs
import pytest
import trio

from codexd import ApiConfig, Config, InvalidRequest, Run, RunsConfig, StopConfig, open_daemon
from codexd._store import Store
from codexd.testing import Reply, open_fake_provider, write_codex_home

from .helpers import events_of


def exec_config(tmp_path: Path, **changes: object) -> Config:
    config = Config(
        mode="exec",
        state_dir=str(tmp_path / "state"),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1.0),
        runs=RunsConfig(concurrency=2),
    )
    return attrs.evolve(config, **changes)


def exec_pids(marker: str, *, leaders_only: bool = False) -> list[int]:
    """Live `codex exec` processes whose command line mentions ``marker`` (our state dir).

    ``leaders_only``: only the run processes themselves (children of this process, where the
    daemon runs), not helpers they spawn, which die with their group a moment later.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat_fields = fh.read().rsplit(b")", 1)[1].split()
            state = stat_fields[0]
        except OSError:
            continue
        ppid = int(stat_fields[1])
        if leaders_only and ppid != os.getpid():
            continue
        if state != b"Z" and b"exec" in argv and any(marker.encode() in a for a in argv):
            found.append(int(entry))
    return found


async def test_run_completes_with_scripted_summary(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.text("Run finished: 42.")) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        with trio.fail_after(60):
            async with open_daemon(exec_config(tmp_path)) as daemon:
                run = await daemon.create_run("Compute.", cwd=str(tmp_path), env=env)
                assert run.status == "queued"
                done = await daemon.wait_run(run.run_id, timeout=30)
                assert done.status == "completed", done.error
                assert done.summary == "Run finished: 42."
                assert done.result is not None
                assert done.result["exitCode"] == 0
                assert done.result["threadId"]
                assert done.result["usage"]["output_tokens"] == 5
                items = await events_of(daemon, "run.item")
                assert {e.detail["type"] for e in items if e.detail} >= {
                    "thread.started",
                    "turn.started",
                    "item.completed",
                    "turn.completed",
                }
                assert all(e.run_id == run.run_id for e in items)
        assert "Compute." in str(provider.requests[0].body["input"])


async def test_provider_failure_ends_failed_with_error_text(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.failure("the model is on fire")) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        with trio.fail_after(60):
            async with open_daemon(exec_config(tmp_path)) as daemon:
                run = await daemon.create_run("Try.", cwd=str(tmp_path), env=env)
                done = await daemon.wait_run(run.run_id, timeout=30)
                assert done.status == "failed"
                assert done.error is not None and "the model is on fire" in done.error
                assert done.result is not None and done.result["exitCode"] == 1


async def test_concurrency_two_of_five_observed(tmp_path: Path) -> None:
    async with open_fake_provider(default=Reply.text("slow answer", delay_s=0.6)) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        marker = str(tmp_path / "state")
        peak = 0
        with trio.fail_after(120):
            async with open_daemon(exec_config(tmp_path)) as daemon:
                runs = [
                    await daemon.create_run(f"job {n}", cwd=str(tmp_path), env=env)
                    for n in range(5)
                ]
                async with trio.open_nursery() as nursery:

                    async def sample() -> None:
                        nonlocal peak
                        while True:
                            peak = max(peak, len(exec_pids(marker, leaders_only=True)))
                            await trio.sleep(0.02)

                    nursery.start_soon(sample)
                    finished = [await daemon.wait_run(r.run_id, timeout=60) for r in runs]
                    nursery.cancel_scope.cancel()
                assert [r.status for r in finished] == ["completed"] * 5
                started = [e.run_id for e in await events_of(daemon, "run.started")]
                assert started == [r.run_id for r in runs], "runs must start in FIFO order"
        assert peak == 2, f"observed {peak} codex exec processes at once"
        assert exec_pids(marker) == []


async def test_timeout_ends_timed_out_and_leaves_no_process(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.hang()) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        with trio.fail_after(60):
            async with open_daemon(exec_config(tmp_path)) as daemon:
                run = await daemon.create_run("Hang.", cwd=str(tmp_path), env=env, timeout_s=1.5)
                done = await daemon.wait_run(run.run_id, timeout=30)
                assert done.status == "timed_out"
                assert done.error == "timed out after 1.5s"
                assert exec_pids(str(tmp_path / "state")) == []


async def test_cancel_queued_and_running(tmp_path: Path) -> None:
    async with open_fake_provider(default=Reply.hang()) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        config = exec_config(tmp_path, runs=RunsConfig(concurrency=1))
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                running = await daemon.create_run("first", cwd=str(tmp_path), env=env)
                queued = await daemon.create_run("second never starts", cwd=str(tmp_path), env=env)
                await provider.wait_for_requests(1)
                cancelled = await daemon.cancel_run(queued.run_id)
                assert cancelled.status == "cancelled"
                assert cancelled.started_at is None
                stopped = await daemon.cancel_run(running.run_id)
                assert stopped.status == "cancelled"
                assert exec_pids(str(tmp_path / "state")) == []
                # Idempotent on a final run.
                assert (await daemon.cancel_run(running.run_id)).status == "cancelled"
        assert not any("second never starts" in str(r.body) for r in provider.requests)


async def test_restart_recovers_running_as_interrupted_and_runs_queued(tmp_path: Path) -> None:
    """A daemon killed with a run running: on restart it is interrupted, the queued ones run."""
    async with open_fake_provider(default=Reply.text("recovered")) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        state = tmp_path / "state"
        store = await Store.open(state)
        now = "2026-01-01T00:00:00.000Z"
        options = {"env": env, "skipGitRepoCheck": True}

        def run(n: int, status: str) -> Run:
            return Run(
                f"run-{n}",
                None,
                status,
                f"job {n}",
                "fallback-worker",  # type: ignore[arg-type]
                str(tmp_path),
                f"{now}{n}",
                now,
                options=options,
            )

        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.save(run(1, "running"), run(2, "queued"), run(3, "queued"))
            await store.close_input()
        with trio.fail_after(60):
            async with open_daemon(exec_config(tmp_path)) as daemon:
                first = daemon.get_run("run-1")
                assert first.status == "interrupted"
                assert first.error == "codexd stopped while the run was running"
                for run_id in ("run-2", "run-3"):
                    done = await daemon.wait_run(run_id, timeout=30)
                    assert done.status == "completed"
                    assert done.summary == "recovered"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": "  "}, "prompt"),
        ({"prompt": "x", "purpose": "mining"}, "purpose"),
        ({"prompt": "x", "sandbox": "yolo"}, "sandbox"),
        ({"prompt": "x", "cwd": "/nonexistent/dir"}, "cwd"),
        ({"prompt": "x", "timeout_s": -1}, "timeoutS"),
    ],
)
async def test_bad_input_is_refused_and_nothing_queued(
    tmp_path: Path, kwargs: dict[str, object], field: str
) -> None:
    with trio.fail_after(20):
        async with open_daemon(exec_config(tmp_path)) as daemon:
            prompt = kwargs.pop("prompt")
            with pytest.raises(InvalidRequest) as info:
                await daemon.create_run(prompt, **kwargs)  # type: ignore[arg-type]
            assert info.value.field == field
            assert daemon.list_runs() == []


async def test_garbage_stdout_is_recorded_not_fatal(tmp_path: Path) -> None:
    fake_exec = tmp_path / "fake_exec.py"
    fake_exec.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "sys.stdin.read()\n"
        "print('this is not json', flush=True)\n"
        "print(json.dumps({'type': 'thread.started', 'thread_id': 't-1'}))\n"
        "print(json.dumps({'type': 'item.completed', 'item': {'id': 'i', 'type': "
        "'agent_message', 'text': 'fake done'}}))\n"
        "print(json.dumps({'type': 'turn.completed', 'usage': {'output_tokens': 1}}))\n"
    )
    fake_exec.chmod(0o755)
    config = exec_config(tmp_path)
    config = attrs.evolve(config, runs=attrs.evolve(config.runs, command=str(fake_exec)))
    with trio.fail_after(30):
        async with open_daemon(config) as daemon:
            run = await daemon.create_run("x", cwd=str(tmp_path))
            done = await daemon.wait_run(run.run_id, timeout=20)
            assert done.status == "completed"
            assert done.summary == "fake done"
            invalid = await events_of(daemon, "run.output.invalid")
            assert len(invalid) == 1
            assert invalid[0].detail is not None
            assert "this is not json" in invalid[0].detail["preview"]


async def test_a_prompt_over_codex_limit_fails_naming_the_real_cause(tmp_path: Path) -> None:
    """Codex refuses inputs over 1,048,576 characters: the run's error says so."""
    async with open_fake_provider(Reply.text("never")) as provider:
        env = write_codex_home(tmp_path / "codex", base_url=provider.base_url).env({})
        with trio.fail_after(60):
            async with open_daemon(exec_config(tmp_path)) as daemon:
                run = await daemon.create_run("x" * 1_100_000, cwd=str(tmp_path), env=env)
                done = await daemon.wait_run(run.run_id, timeout=50)
        assert done.status == "failed"
        assert done.error is not None and "maximum length" in done.error, done.error
        assert not provider.requests
