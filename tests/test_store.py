from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import trio

from codexd import EventFilter, Session, SubscriberOverflow, _database
from codexd._store import Store
from codexd._store_events import EventSpec


def session(n: int) -> Session:
    return Session(f"s{n}", "test", None, "active", None, None, "t", "t")


async def test_seq_is_monotonic_and_survives_reopen(state_dir: Path) -> None:
    with trio.fail_after(10):
        store = await Store.open(state_dir)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            first = await store.record("a.one", "one")
            second = await store.record("a.two", "two", records=[session(1)])
            await store.close_input()
        assert (first.seq, second.seq) == (1, 2)
        daemon_id = store.daemon_id

        store = await Store.open(state_dir)
        assert store.daemon_id == daemon_id
        assert store.get_session("s1") == session(1)
        assert [e.type for e in store.recent_events] == ["a.one", "a.two"]
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            third = await store.record("a.three", "three")
            await store.close_input()
        assert third.seq == 3
    lines = (state_dir / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]


@pytest.mark.parametrize("sizes", [[1], [4, 3], [341], [256, 64, 16, 4, 1, 2, 300]])
async def test_every_event_of_a_batch_lands_in_order_whatever_its_size(
    state_dir: Path, sizes: list[int]
) -> None:
    """Events go in as multi-row statements of a few fixed sizes: every size of a chunk lands
    whole, numbered, with its columns, whatever the split."""
    with trio.fail_after(10):
        store = await Store.open(state_dir)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for n, size in enumerate(sizes):
                specs: list[EventSpec] = [
                    ("info", f"t.{n}", f"m{i}", {"i": i}, f"s{n}", None) for i in range(size)
                ]
                await store.emit_events(specs)
            await store.record("t.end", "end")
            await store.close_input()
    total = sum(sizes)
    with sqlite3.connect(state_dir / "state.sqlite3") as db:
        rows = db.execute("SELECT seq, type, session_id, run_id, data FROM events").fetchall()
    assert [row[0] for row in rows] == list(range(1, total + 2))
    expected = [(f"t.{n}", f"s{n}", i) for n, size in enumerate(sizes) for i in range(size)]
    got = [(row[1], row[2], json.loads(row[4])["detail"]["i"]) for row in rows[:-1]]
    assert got == expected
    assert all(json.loads(row[4])["seq"] == row[0] for row in rows)
    assert rows[-1][1] == "t.end"


async def test_cancelled_mid_batch_leaves_no_partial_rows(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel the store task while a batch is being written: the batch lands whole or not at all."""
    real_write = _database.Database.write
    writes_started = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow_write(self: _database.Database, *args: object, **kwargs: object) -> None:
        if args[0]:  # a batch with events, not the initial meta-only write
            token.run_sync_soon(writes_started.set)
            time.sleep(0.2)
        real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_database.Database, "write", slow_write)
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)

            async def produce() -> None:
                for n in range(3000):
                    await store.emit("pair.event", f"event {n}", records=[session(n)])

            nursery.start_soon(produce)
            await writes_started.wait()
            nursery.cancel_scope.cancel()

    with sqlite3.connect(state_dir / "state.sqlite3") as conn:
        event_ns = {
            int(m.split()[1])
            for (m,) in conn.execute(
                "SELECT json_extract(data, '$.message') FROM events WHERE type = 'pair.event'"
            )
        }
        session_ns = {int(s[1:]) for (s,) in conn.execute("SELECT session_id FROM sessions")}
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Every stored event has its session row (written in the same transaction) and vice versa.
    assert event_ns == session_ns
    assert event_ns, "the in-flight batch should have completed"
    assert max(event_ns) < 3000

    reopened = await Store.open(state_dir)
    assert reopened.last_seq == max(e.seq for e in reopened.recent_events)


async def test_failed_write_degrades_then_recovers_with_memory_equal_to_disk(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that keeps failing: writers get StoreError, nothing of it is visible, writes are
    refused while degraded, and the store recovers by itself once the disk writes again."""
    from codexd import StoreError

    store = await Store.open(state_dir)
    real_write = _database.Database.write
    fail = {"on": True}
    recovered = trio.Event()

    def flaky(self: _database.Database, *args: object, **kwargs: object) -> None:
        if fail["on"]:
            raise sqlite3.OperationalError("database or disk is full")
        real_write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_database.Database, "write", flaky)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            before = await store.query_events()
            with pytest.raises(StoreError, match="disk is full"):
                await store.record("x.fail", "will fail", records=[session(1)])
            # Nothing of the failed batch is in memory, and writes are refused while degraded.
            assert store.get_session("s1") is None
            assert store.last_seq == len(before)
            assert store.health().status == "degraded"
            assert "disk is full" in (store.health().error or "")
            with pytest.raises(StoreError, match="degraded"):
                await store.record("x.refused", "refused at once")
            await store.emit("x.dropped", "dropped and counted")
            assert store.health().dropped_events >= 1
            sub = store.subscribe()

            async def watch() -> None:
                async for event in sub:
                    if event.type == "store.recovered":
                        recovered.set()
                        return

            nursery.start_soon(watch)
            fail["on"] = False
            await recovered.wait()
            assert store.health().status == "ok"
            ok = await store.record("x.ok", "works again", records=[session(2)])
            await store.close_input()
    assert ok.type == "x.ok"
    assert store.write_failures >= 1
    reopened = await Store.open(state_dir)
    # Memory equals disk: the failed batch is nowhere, the later one is there, no seq gap.
    assert reopened.daemon_id == store.daemon_id
    assert reopened.get_session("s1") is None and reopened.get_session("s2") is not None
    seqs = [e.seq for e in await reopened.query_events(limit=10_000)]
    assert seqs == list(range(1, len(seqs) + 1))
    types = [e.type for e in await reopened.query_events(limit=10_000)]
    assert "x.fail" not in types and types[-2:] == ["store.recovered", "x.ok"]


async def test_subscribe_replays_then_streams_without_gap(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for n in range(50):
                await store.emit("t.old", f"{n}")
            await store.record("t.old", "last old")
            sub = store.subscribe(since=0)
            seen: list[int] = []

            async def consume() -> None:
                async for event in sub:
                    seen.append(event.seq)
                    if len(seen) == 101:
                        return

            nursery.start_soon(consume)
            for n in range(50):
                await store.emit("t.new", f"{n}")
            await store.record("t.new", "done")
            with trio.fail_after(5):
                while len(seen) < 101:
                    await trio.sleep(0.01)
            await store.close_input()
    assert seen == list(range(1, 102))


async def test_subscribe_filters(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            await store.record("run.queued", "q", run_id="r1")
            await store.record("session.created", "c", session_id="s1")
            await store.record("run.started", "s", run_id="r2")
            events = await store.query_events(event_filter=EventFilter(type_prefix="run."))
            assert [e.run_id for e in events] == ["r1", "r2"]
            events = await store.query_events(event_filter=EventFilter(run_id="r2"))
            assert [e.type for e in events] == ["run.started"]
            await store.close_input()


async def test_slow_subscriber_is_dropped_not_buffered(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            sub = store.subscribe(buffer=100)
            for n in range(1000):
                await store.emit("flood", str(n))
            await store.record("flood", "end")
            got = []
            with pytest.raises(SubscriberOverflow) as info:
                async for event in sub:
                    got.append(event.seq)
            assert len(got) == 100
            assert info.value.last_seq == got[-1]
            # Resubscribing with since= gets the rest from the store, nothing lost.
            rest = store.subscribe(since=info.value.last_seq)
            tail = []
            async for event in rest:
                tail.append(event.seq)
                if event.seq == store.last_seq:
                    break
            assert got + tail == list(range(1, 1002))
            await store.close_input()
