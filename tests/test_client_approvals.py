"""Approval routing through the typed client, against the real Codex binary."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import codexd
from codexd import Approval, ApprovalDecided, ApprovalRequested, CommandCompleted
from codexd.testing import Reply

from .served import Received, served


async def test_approval_answered_through_client_approvals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Received()
    received.install(monkeypatch)
    first = tmp_path / "work" / "first.txt"
    second = tmp_path / "work" / "second.txt"
    async with served(
        tmp_path,
        Reply.shell(f"touch {first}"),
        Reply.text("Done, file created."),
        Reply.shell(f"touch {second}"),
        Reply.text("I was not allowed."),
        approvals="ask",
    ) as s:
        with trio.fail_after(120):
            async with codexd.connect(s.state_dir) as client:
                session = await client.create_session(
                    cwd=s.work, approval_policy="untrusted", sandbox="workspace-write"
                )
                handle = await client.start_turn(session.session_id, "Create the first file.")
                # Already pending or still to come, the approval is handed out once.
                async with client.approvals(session.session_id) as pending:
                    approval = await pending.__anext__()
                    assert approval.status == "pending"
                    assert approval.method == "item/commandExecution/requestApproval"
                    assert approval.turn_id == handle.turn_id
                    decided = await client.respond(approval.approval_id, "accept")
                    assert decided.status == "accepted"
                    result = await handle.wait()
                assert result.status == "completed"
                assert result.final_message == "Done, file created."
                events = [e async for e in handle.stream()]
                asked = [e for e in events if isinstance(e, ApprovalRequested)]
                assert [(a.approval_id, a.needs_answer) for a in asked] == [
                    (approval.approval_id, True)
                ]
                answered = [e for e in events if isinstance(e, ApprovalDecided)]
                assert [(a.decision, a.decided_by) for a in answered] == [("accept", "api")]
                commands = [e for e in events if isinstance(e, CommandCompleted)]
                assert [c.exit_code for c in commands] == [0]

                # The helper: a policy function answers every approval as it arrives.
                seen: list[Approval] = []

                def policy(approval: Approval) -> codexd.Decision:
                    seen.append(approval)
                    return "decline"

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.answer_approvals, policy)
                    handle = await client.start_turn(session.session_id, "Now the second.")
                    result = await handle.wait()
                    nursery.cancel_scope.cancel()
                assert result.final_message == "I was not allowed."
                assert [a.turn_id for a in seen] == [handle.turn_id]
                decided_list = await client.list_approvals(session_id=session.session_id)
                assert sorted(a.status for a in decided_list) == ["accepted", "declined"]
    assert first.exists()
    assert not second.exists()
    assert received.check_schema() > 10
