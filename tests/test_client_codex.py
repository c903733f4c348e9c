"""Codex's own operations through the typed client (fork, revert, rename, compact, review,
threads, models, account, pass-through), against the real binary, results schema-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

import codexd
from codexd import AccountInfo, ApiError, ModelList, ThreadList, TurnCompleted
from codexd.testing import Reply

from .served import CODEX_METHODS, Received, served

REVIEW = "No issues found in the current changes."


async def test_codex_operations_through_the_typed_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received = Received()
    received.install(monkeypatch)
    async with served(
        tmp_path,
        Reply.text("ok"),
        Reply.text("ok"),
        Reply.text("ok"),
        Reply.text(REVIEW),
        default=Reply.text("ok"),
    ) as s:
        with trio.fail_after(120):
            async with codexd.connect(s.state_dir) as client:
                session = await client.create_session(cwd=s.work)
                sid = session.session_id
                first = await client.start_turn(sid, "keep ALPHA")
                assert (await first.wait()).status == "completed"
                await (await client.start_turn(sid, "drop BETA")).wait()

                threads = await client.list_threads()
                assert isinstance(threads, ThreadList)
                assert [t["id"] for t in threads.data if t.get("codexdSessionId") == sid] == [
                    session.thread_id
                ]
                assert (await client.rename_session(sid, "Mine")).name == "Mine"
                reverted = await client.revert_session(sid, turns=1)
                assert reverted.last_turn_id == first.turn_id

                fork = await client.fork_session(sid, purpose="review")
                assert fork.forked_from == sid
                assert fork.thread_id != session.thread_id
                on_fork = await client.start_turn(fork.session_id, "on the fork")
                assert (await on_fork.wait()).status == "completed"

                review = await client.start_review(
                    sid, target={"type": "custom", "instructions": "look"}
                )
                assert review.review_thread_id == session.thread_id
                events = [e async for e in review.stream()]
                assert isinstance(events[-1], TurnCompleted)
                assert events[-1].final_message == REVIEW
                result = await review.wait()
                assert (result.status, result.final_message) == ("completed", REVIEW)

                compacted = await client.compact_session(sid)
                assert compacted.session_id == sid

                assert isinstance(await client.list_models(), ModelList)
                assert isinstance(await client.read_account(), AccountInfo)
                raw = await client.app_server_request("thread/list", {"limit": 5})
                assert isinstance(raw["data"], list)
                with pytest.raises(ApiError) as denied:
                    await client.app_server_request("account/logout")
                assert "account/logout" in denied.value.message
                with pytest.raises(codexd.InvalidRequest) as bad:
                    await client.start_review(sid, target={"type": "everything"})
                assert bad.value.field == "target.type"
    assert received.called >= CODEX_METHODS
    assert received.check_schema() > 20
