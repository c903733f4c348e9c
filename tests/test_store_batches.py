"""The store's per-chunk paths: several events as one item, batched fan-out, spliced frames."""

from __future__ import annotations

import json
import math
from pathlib import Path

import trio
import trio.testing
import wsproto
from wsproto import ConnectionType
from wsproto.events import AcceptConnection, Request, TextMessage

from codexd import SubscriberOverflow
from codexd._gc import tune_gc
from codexd._jsonrpc import Connection
from codexd._records import to_wire
from codexd._store import Store
from codexd._store_batch import Prepared
from codexd._subscriptions import event_frames, event_payloads


async def test_emit_events_numbers_commits_and_publishes_a_chunk_together(
    state_dir: Path,
) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            sub = store.subscribe()
            first = await store.record("t.before", "before")
            await store.emit_events(
                [("info", "t.delta", f"d{n}", {"n": n}, "s1", None) for n in range(5)]
            )
            last = await store.record("t.after", "after")
            batches = []
            while sum(len(b) for b in batches) < 7:
                batches.append(await sub.receive_batch())
            await store.close_input()
    stored = [pair for batch in batches for pair in batch]
    assert [e.seq for e, _ in stored] == list(range(first.seq, last.seq + 1))
    assert [e.message for e, _ in stored][1:6] == [f"d{n}" for n in range(5)]
    assert sub.last_seq == last.seq
    # The line each subscriber gets is the line on disk, and it says what the event says.
    on_disk = (state_dir / "events.jsonl").read_bytes().splitlines()
    assert [line for _, line in stored] == on_disk
    assert all(json.loads(line) == to_wire(event) for event, line in stored)


async def test_receive_batch_takes_everything_buffered_then_reports_overflow(
    state_dir: Path,
) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            sub = store.subscribe(buffer=10)
            for n in range(6):
                await store.emit("t.x", str(n))
            await store.record("t.x", "six")
            batch = await sub.receive_batch()
            assert [e.message for e, _ in batch] == ["0", "1", "2", "3", "4", "5", "six"]
            for n in range(20):
                await store.emit("t.y", str(n))
            await store.record("t.y", "end")
            kept = await sub.receive_batch()
            assert len(kept) == 10  # the buffer's bound; then the subscriber was dropped
            try:
                await sub.receive_batch()
            except SubscriberOverflow as exc:
                assert exc.last_seq == kept[-1][0].seq
            else:
                raise AssertionError("no SubscriberOverflow")
            assert store.subscriber_count == 0  # the overflowing subscriber was dropped
            await store.close_input()


async def test_unencodable_details_are_repaired_not_fatal(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            nan = await store.record("t.nan", "x", detail={"v": math.nan, "w": None})
            sur = await store.record("t.sur", "bad \ud800", detail={"k": "\udc00"})
            big = await store.record("t.big", "x", detail={"n": 2**70, "z": None})
            fine = await store.record("t.null", "null", detail={"v": None, "s": "null"})
            await store.close_input()
    assert nan.detail == {"v": None, "w": None, "repairedByCodexd": True}
    assert sur.message == "bad \ufffd" and sur.detail == {"k": "\ufffd", "repairedByCodexd": True}
    assert big.detail == {"n": 2**70, "z": None}  # exact, not a float
    assert fine.detail == {"v": None, "s": "null"}
    lines = [json.loads(x) for x in (state_dir / "events.jsonl").read_text().splitlines()]
    assert [x["detail"] for x in lines[-4:]] == [nan.detail, sur.detail, big.detail, fine.detail]
    reopened = await Store.open(state_dir)
    assert [e.detail for e in list(reopened.recent_events)[-4:]] == [
        nan.detail,
        sur.detail,
        big.detail,
        fine.detail,
    ]
    reopened._files.close()


async def test_event_frames_are_the_api_encoders_frames_in_one_blob(state_dir: Path) -> None:
    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            sub = store.subscribe()
            await store.record("t.a", "short")
            await store.record("t.b", "é" * 200, detail={"pad": "y" * 70_000})
            batch: list = []
            while len(batch) < 2:
                batch += await sub.receive_batch()
            await store.close_input()
    api = Connection(strict=True, emit_jsonrpc_field=True)
    expected = [
        api.send_notification_frame("event", {"subscriptionId": "sub-1", "event": to_wire(e)})
        for e, _ in batch
    ]
    assert [json.loads(p) for p in event_payloads("sub-1", batch)] == [
        json.loads(f) for f in expected
    ]
    # A real WebSocket client parses the blob as one text message per event.
    server = wsproto.WSConnection(ConnectionType.SERVER)
    client = wsproto.WSConnection(ConnectionType.CLIENT)
    server.receive_data(client.send(Request(host="localhost", target="/")))
    assert list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    client.receive_data(event_frames("sub-1", batch))
    texts = [e.data for e in client.events() if isinstance(e, TextMessage)]
    assert [json.loads(t) for t in texts] == [json.loads(f) for f in expected]


def test_tune_gc_freezes_start_up_objects_and_sets_thresholds() -> None:
    import gc

    before = gc.get_threshold()
    try:
        tune_gc(10_000, 15, 50)
        assert gc.get_threshold() == (10_000, 15, 50)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_raw_frames_reach_a_real_websocket_client_in_one_write(state_dir: Path) -> None:
    """What the API server's writer does with a batch: one write, the client sees messages."""
    import trio_websocket

    from codexd._subscriptions import frame_blob, raw_frames_supported, send_raw_frames

    store = await Store.open(state_dir)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            sub = store.subscribe()
            for n in range(50):
                await store.emit("t.raw", f"{n}", detail={"n": n})
            await store.record("t.raw", "end")
            batch: list = []
            while len(batch) < 51:
                batch += await sub.receive_batch()
            await store.close_input()

            supported: list[bool] = []

            async def handler(request: trio_websocket.WebSocketRequest) -> None:
                ws = await request.accept()
                supported.append(raw_frames_supported(ws))
                await send_raw_frames(ws, frame_blob(["hello", event_frames("sub-9", batch)]))
                await ws.get_message()  # until the client is done

            listeners = await nursery.start(
                trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None
            )
            port = listeners.port
            async with trio_websocket.open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws:
                assert not raw_frames_supported(ws)  # a client must mask its frames
                assert await ws.get_message() == "hello"
                got = [json.loads(await ws.get_message()) for _ in batch]
                await ws.send_message("done")
            nursery.cancel_scope.cancel()
    assert supported == [True]
    assert [m["params"]["event"] for m in got] == [to_wire(e) for e, _ in batch]
    assert {m["params"]["subscriptionId"] for m in got} == {"sub-9"}


async def test_writes_queued_by_tasks_ready_with_the_store_join_its_commit(
    state_dir: Path,
) -> None:
    # A wakes the store with its event and, in the same step, a relay task that wakes B (as the
    # stdout pump hands the next chunk to the reader, which queues its events). Trio runs the
    # tasks of one step in either order (it reverses the batch at random): the store must
    # still take B's event into the same commit.
    store = await Store.open(state_dir)
    commits: list[list[str]] = []
    write = store._files.write

    def counting_write(prepared: Prepared) -> None:
        commits.append([event.type for event, _line in prepared.events])
        write(prepared)

    store._files.write = counting_write  # type: ignore[method-assign]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for n in range(20):
                relay, go, emitted = trio.Event(), trio.Event(), trio.Event()

                async def pump(relay: trio.Event = relay, go: trio.Event = go) -> None:
                    await relay.wait()
                    go.set()

                async def b(go: trio.Event = go, emitted: trio.Event = emitted, n: int = n) -> None:
                    await go.wait()
                    await store.emit(f"t.b{n}", "b")
                    emitted.set()

                nursery.start_soon(pump)
                nursery.start_soon(b)
                await trio.testing.wait_all_tasks_blocked()  # B waits, the store is idle
                await store.emit(f"t.a{n}", "a")
                relay.set()
                await emitted.wait()
                await store.record(f"t.sync{n}", "sync")  # A's and B's events are on disk
            await store.close_input()
    for n in range(20):
        (with_a,) = [c for c in commits if f"t.a{n}" in c]
        assert f"t.b{n}" in with_a, commits
