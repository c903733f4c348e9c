"""Latency bench helper: N API subscribers in their own process; prints p50/p99 as JSON.

Usage: python bench/_subscribers.py STATE_DIR N TOTAL. Prints "ready" once all N are
subscribed, then one JSON line of latencies (time.monotonic() is system-wide on Linux, so the
daemon's send time and our receive time are on the same clock).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trio

from codexd.client import open_client


async def main(state_dir: Path, count: int, total: int) -> None:
    latencies: list[float] = []
    ready = trio.Semaphore(0)

    async def subscriber() -> None:
        async with open_client(state_dir) as client:
            stream = client.subscribe(type_prefix="bench.latency")
            ready.release()
            seen = 0
            async for event in stream:
                latencies.append(time.monotonic() - event["detail"]["t"])
                seen += 1
                if seen == total:
                    return

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(subscriber)
        for _ in range(count):
            await ready.acquire()
        await trio.sleep(0.3)  # let the subscriptions register on the daemon side
        print("ready", flush=True)
    latencies.sort()
    print(
        json.dumps(
            {
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                "max_ms": latencies[-1] * 1000,
                "received": len(latencies),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
