"""The same bot from an asyncio program, through the blocking client (Trio runs in a thread)."""

from __future__ import annotations

import asyncio
import sys

import codexd


def print_stream(handle: codexd.SyncTurnHandle) -> None:
    with handle.stream() as stream:
        for event in stream:
            if isinstance(event, codexd.TextDelta):
                print(event.text, end="", flush=True)


async def main(state_dir: str, cwd: str, prompt: str) -> int:
    with codexd.connect_sync(state_dir) as client:
        session = client.create_session(purpose="asyncio-bot", cwd=cwd)  # quick: call directly
        handle = client.start_turn(session.session_id, prompt)
        # Long waits go to a worker thread so the event loop keeps running meanwhile.
        await asyncio.to_thread(print_stream, handle)
        result = await asyncio.to_thread(handle.wait)
        print(f"\n[{result.status}] {result.final_message}")
        return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    state_dir, cwd, prompt = sys.argv[1:4]
    sys.exit(asyncio.run(main(state_dir, cwd, prompt)))
