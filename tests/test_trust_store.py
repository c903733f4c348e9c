"""Trust: the state directory and store under bad or surprising contents."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import attrs
import pytest
import trio

from codexd import Config, Session, StateDirInUse, StoreError, open_daemon
from codexd._store import Store, Update


async def _run_store(store: Store, *records: Session) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        for record in records:
            await store.save(record)
        await store.close_input()


def session(n: int) -> Session:
    return Session(f"s{n}", "test", None, "active", None, None, "t", "t")


async def test_one_store_per_state_dir(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with pytest.raises(StateDirInUse, match=f"in use by pid {os.getpid()}"):
        await Store.open(state_dir)
    await _run_store(store)
    # Released when the first store finishes.
    await _run_store(await Store.open(state_dir))


async def test_malformed_rows_and_meta_are_quarantined_not_fatal(
    state_dir: Path, base_config: Config
) -> None:
    await _run_store(await Store.open(state_dir), session(1), session(2))
    with closing(sqlite3.connect(state_dir / "state.sqlite3")) as conn:
        conn.execute("UPDATE sessions SET data = '{\"sessionId\": 7}' WHERE session_id = 's1'")
        conn.execute("UPDATE meta SET value = '\"lots\"' WHERE key = 'last_seq'")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('child', '{broken')")
        conn.commit()
    config = attrs.evolve(base_config, mode="exec")
    with trio.fail_after(20):
        async with open_daemon(config) as daemon:
            assert daemon.store.get_session("s1") is None
            assert daemon.store.get_session("s2") is not None
            invalid = [e for e in daemon.store.recent_events if e.type == "store.row.invalid"]
            assert {e.detail["key"] for e in invalid if e.detail} >= {"s1", "child"}
    with closing(sqlite3.connect(state_dir / "state.sqlite3")) as conn:
        quarantined = {k for (k,) in conn.execute("SELECT key FROM quarantine")}
    assert "s1" in quarantined


async def test_non_finite_numbers_from_an_older_codexd_are_read_as_null(state_dir: Path) -> None:
    await _run_store(await Store.open(state_dir), session(1))
    with closing(sqlite3.connect(state_dir / "state.sqlite3")) as conn:
        data = json.loads(conn.execute("SELECT data FROM sessions").fetchone()[0])
        text = json.dumps({**data, "settings": {"x": float("nan")}})
        assert "NaN" in text
        conn.execute("UPDATE sessions SET data = ?", (text,))
        conn.commit()
    store = await Store.open(state_dir)
    assert store.get_session("s1") is not None
    assert store.get_session("s1").settings == {"x": None}  # type: ignore[union-attr]
    assert [p.repaired for p in store.load_problems] == [True]
    await _run_store(store)


async def test_a_new_store_beside_an_old_event_log_continues_its_seqs(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    lines = [json.dumps({"seq": n, "type": "old"}) for n in range(1, 58)]
    (state_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    store = await Store.open(state_dir)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        event = await store.record("new.one", "after the old log")
        await store.close_input()
    assert event.seq == 58


async def test_an_existing_directory_is_never_chmodded(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    await _run_store(await Store.open(shared))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    fresh = tmp_path / "fresh" / "state"
    await _run_store(await Store.open(fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


async def test_unusable_state_dirs_are_named_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        await Store.open(a_file)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere; the check below covers the message
            with pytest.raises(StoreError, match="cannot write to state dir"):
                await Store.open(locked)
        with pytest.raises(StoreError, match="cannot create state dir"):
            await Store.open(a_file / "below")
    finally:
        locked.chmod(0o700)


async def test_an_update_sees_the_change_queued_before_it(state_dir: Path) -> None:
    """Read-modify-write from two tasks composes in submission order, nothing lost."""
    store = await Store.open(state_dir)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        await store.save(session(1))
        for n in range(50):
            await store.emit(
                "meta.add",
                f"{n}",
                records=[
                    Update(
                        Session,
                        "s1",
                        lambda s, n=n: attrs.evolve(s, metadata={**s.metadata, str(n): "x"}),
                    )
                ],
            )
        await store.record("done", "done")
        assert len(store.get_session("s1").metadata) == 50  # type: ignore[union-attr]
        await store.close_input()


async def test_writers_never_wait_for_a_store_that_is_gone(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            nursery.cancel_scope.cancel()  # the store task dies (as when the daemon crashes)
        with trio.CancelScope(shield=True), pytest.raises(StoreError):
            await store.record("late", "nobody will write this")
        await store.emit("late", "dropped, never blocks")
        assert store.health().dropped_events == 1
