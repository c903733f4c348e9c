"""Turn-latency bench helper: short real turns through a running ``codexd serve`` (its API).

Usage: python bench/_turns.py STATE_DIR CWD. Runs in lockstep with the bench: for each line
read on stdin it runs one turn in its session and prints one JSON line, the milliseconds from
sending ``turn/start`` to its answer, to the first agent-message delta event received, and to
the ``app-server.turn.completed`` event received (what an orchestrator in another process
sees), and the CPU time this client process spent on the turn. It ends at end of input.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import trio
from _lockstep import turn_row

from codexd.client import open_client

DELTA = "app-server.item.agentMessage.delta"
DONE = "app-server.turn.completed"


async def _lines(stream: trio.abc.ReceiveStream) -> Any:
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line


async def main(state_dir: Path, cwd: str) -> None:
    async with open_client(state_dir) as client:
        session = await client.call("session/create", {"purpose": "bench", "cwd": cwd})
        session_id = session["sessionId"]
        send, receive = trio.open_memory_channel[tuple[float, dict[str, Any]]](10_000)

        async def consume() -> None:
            async for event in client.subscribe(since=0, session_id=session_id):
                send.send_nowait((time.perf_counter(), event))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await receive.receive()  # the replayed session.created: the stream is live
            print("ready", flush=True)
            async for _go in _lines(trio.lowlevel.FdStream(os.dup(0))):
                cpu = time.process_time()
                started = time.perf_counter()
                await client.call("turn/start", {"sessionId": session_id, "input": "Say hello."})
                answered = time.perf_counter()
                first = None
                while True:
                    at, event = await receive.receive()
                    if event.get("type") == DELTA and first is None:
                        first = at
                    if event.get("type") == DONE:
                        break
                print(turn_row(started, answered, first or at, at, cpu), flush=True)
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2])
