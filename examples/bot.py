"""A Trio bot: one turn, its text streamed as it comes, commands approved by a policy."""

from __future__ import annotations

import sys

import trio

import codexd


def policy(approval: codexd.Approval) -> codexd.Decision:
    command = str(approval.params.get("command", ""))
    return "decline" if "rm " in command else "accept"


async def main(state_dir: str, cwd: str, prompt: str) -> int:
    async with codexd.connect(state_dir) as client, trio.open_nursery() as nursery:
        nursery.start_soon(client.answer_approvals, policy)
        session = await client.create_session(
            purpose="bot", cwd=cwd, approval_policy="untrusted", sandbox="workspace-write"
        )
        handle = await client.start_turn(session.session_id, prompt)
        async with handle.stream() as stream:
            async for event in stream:
                if isinstance(event, codexd.TextDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, codexd.CommandCompleted):
                    print(f"\n$ {event.command} -> {event.exit_code}")
        result = await handle.wait()
        print(f"\n[{result.status}] {result.final_message}")
        nursery.cancel_scope.cancel()
        return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    state_dir, cwd, prompt = sys.argv[1:4]
    sys.exit(trio.run(main, state_dir, cwd, prompt))
