"""Subscriber bench helper: N API subscribers in their own process.

Usage:
  python bench/_subscribers.py latency STATE_DIR N TOTAL
      N bare WebSocket subscribers to ``bench.latency``; prints "ready" once all are
      subscribed, then one JSON line of latencies (time.monotonic() is system-wide on Linux,
      so the daemon's send time and our receive time are on the same clock).
  python bench/_subscribers.py fanout STATE_DIR N TOTAL
      N bare WebSocket subscribers to ``bench.fanout`` that count event frames by a byte
      pattern (no WebSocket or JSON parsing in Python, so the subscriber process is not what
      is measured); prints "ready", then one JSON line with the time.monotonic() at which
      each subscriber had all TOTAL events (the bench knows when the flood started).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from codexd.client import read_api_info

#: The send time each bench.latency event carries in its detail.
_SENT_AT = re.compile(rb'"detail":\{"t":([0-9.eE+-]+)\}')


async def latency(state_dir: Path, count: int, total: int) -> None:
    """Bare WebSocket subscribers to ``bench.latency``: per read, the send times of the events
    it holds are found by one regex (C speed) and each event's latency is the read's time
    minus its send time; so the subscriber process adds almost nothing to what is measured."""
    url, token = read_api_info(state_dir)
    latencies: list[float] = []
    subscribed = trio.Semaphore(0)

    async def subscriber() -> None:
        stream, data = await _raw_websocket(url, token)
        await stream.send_all(_subscribe_frame("bench.latency"))
        subscribed.release()
        seen = 0
        carry = b""
        while True:
            now = time.monotonic()
            window = carry + data
            end = 0
            for match in _SENT_AT.finditer(window):
                latencies.append(now - float(match.group(1)))
                end = match.end()
                seen += 1
            carry = window[end:][-4096:]
            if seen >= total:
                break
            data = await stream.receive_some(1 << 20)
            if not data:
                raise RuntimeError(f"connection closed after {seen} events")
        await stream.aclose()

    await _run(count, subscriber, subscribed)
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


async def _run(
    count: int, subscriber: Callable[[], Awaitable[None]], subscribed: trio.Semaphore
) -> None:
    """Run ``count`` subscribers; print "ready" once all are subscribed; return when all end."""
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(subscriber)
        for _ in range(count):
            await subscribed.acquire()
        await trio.sleep(0.3)  # let the subscriptions register on the daemon side
        print("ready", flush=True)


def _subscribe_frame(type_prefix: str) -> bytes:
    request = {"jsonrpc": "2.0", "id": 1, "method": "events/subscribe"}
    request["params"] = {"type": type_prefix}
    return _masked_text(json.dumps(request).encode())


#: What each counted event frame holds exactly once (the end marker's type differs).
FANOUT_MARK = b'"type":"bench.fanout","'


async def _raw_websocket(url: str, token: str) -> tuple[trio.SocketStream, bytes]:
    """A bare RFC 6455 client handshake; returns the stream and the bytes read past it."""
    parsed = urllib.parse.urlsplit(url)
    stream = await trio.open_tcp_stream(parsed.hostname or "127.0.0.1", parsed.port or 80)
    key = base64.b64encode(os.urandom(16))
    await stream.send_all(
        b"GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        b"Authorization: Bearer %s\r\n\r\n" % (parsed.netloc.encode(), key, token.encode())
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream, rest


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + body


async def fanout(state_dir: Path, count: int, total: int) -> None:
    """Bare WebSocket subscribers that count event frames by a byte pattern: the subscriber
    process costs almost nothing per event, so the daemon's fan-out is what is measured."""
    url, token = read_api_info(state_dir)
    finished: list[float] = []
    subscribed = trio.Semaphore(0)
    keep = len(FANOUT_MARK) - 1

    async def subscriber() -> None:
        stream, carry = await _raw_websocket(url, token)
        await stream.send_all(_subscribe_frame("bench.fanout"))
        subscribed.release()
        seen = carry.count(FANOUT_MARK)
        carry = carry[-keep:]
        while seen < total:
            data = await stream.receive_some(1 << 20)
            if not data:
                raise RuntimeError(f"connection closed after {seen} events")
            window = carry + data
            seen += window.count(FANOUT_MARK)
            carry = window[-keep:]
        finished.append(time.monotonic())
        await stream.aclose()

    await _run(count, subscriber, subscribed)
    print(json.dumps({"finished_monotonic": finished}), flush=True)


if __name__ == "__main__":
    mode = {"latency": latency, "fanout": fanout}[sys.argv[1]]
    trio.run(mode, Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
