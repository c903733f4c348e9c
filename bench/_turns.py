"""Turn-latency bench helper: short real turns through a running ``codexd serve`` (its API).

Usage: python bench/_turns.py STATE_DIR CWD WARMUP TURNS. Runs WARMUP + TURNS turns one after
the other in one session and prints one JSON line: for each measured turn, the milliseconds
from sending ``turn/start`` to its answer, to the first agent-message delta event received, and
to the ``app-server.turn.completed`` event received (what an orchestrator in another process
sees).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

from codexd.client import open_client

DELTA = "app-server.item.agentMessage.delta"
DONE = "app-server.turn.completed"


async def main(state_dir: Path, cwd: str, warmup: int, turns: int) -> None:
    async with open_client(state_dir) as client:
        session = await client.call("session/create", {"purpose": "bench", "cwd": cwd})
        session_id = session["sessionId"]
        send, receive = trio.open_memory_channel[tuple[float, dict[str, Any]]](10_000)

        async def consume() -> None:
            async for event in client.subscribe(since=0, session_id=session_id):
                send.send_nowait((time.perf_counter(), event))

        out: list[dict[str, float]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await receive.receive()  # the replayed session.created: the stream is live
            for n in range(warmup + turns):
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
                if n >= warmup:
                    out.append(
                        {
                            "start_ms": (answered - started) * 1000,
                            "first_delta_ms": ((first or at) - started) * 1000,
                            "turn_ms": (at - started) * 1000,
                        }
                    )
            nursery.cancel_scope.cancel()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
