"""Fork, revert, compact, rename, review, models and experimental options: the REAL Codex binary.

Each test calls the methods through the API method table (the same parsing and handlers the
local API uses) on a daemon embedded in the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from codexd import AppServerConfig, InvalidRequest, TurnsConfig, open_daemon
from codexd._methods import METHODS
from codexd._params import parse
from codexd._records import to_wire
from codexd.testing import FakeModelProvider, Reply, open_fake_provider

from .helpers import events_of
from .real import real_config


async def call(daemon: Any, method: str, params: dict[str, Any] | None = None) -> Any:
    """One method as the API serves it: params parsed into its record, result to the wire."""
    entry = METHODS[method]
    assert entry.handler is not None
    return to_wire(await entry.handler(daemon, parse(entry.params, params or {})))


async def turn(daemon: Any, session_id: str, text: str, **options: Any) -> dict[str, Any]:
    accepted = await call(daemon, "turn/start", {"sessionId": session_id, "input": text, **options})
    return await call(  # type: ignore[no-any-return]
        daemon, "turn/wait", {"sessionId": session_id, "turnId": accepted["turnId"]}
    )


async def nth_event(daemon: Any, type_prefix: str, n: int) -> Any:
    """The ``n``-th event (stored or live) whose type starts with ``type_prefix``."""
    seen = 0
    async for event in daemon.subscribe(since=0, type_prefix=type_prefix):
        seen += 1
        if seen == n:
            return event
    raise AssertionError("unreachable")


def inputs(provider: FakeModelProvider, index: int) -> str:
    """The text of the model input of POST number ``index``."""
    posts = [r for r in provider.requests if r.method == "POST"]
    return str(posts[index].body["input"])


async def test_fork_carries_the_original_conversation(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path, provider)) as daemon:
                original = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                await turn(daemon, original["sessionId"], "first message ALPHA")
                fork = await call(
                    daemon, "session/fork", {"sessionId": original["sessionId"], "purpose": "b"}
                )
                assert fork["threadId"] != original["threadId"]
                assert fork["forkedFrom"] == original["sessionId"]
                assert fork["purpose"] == "b"
                result = await turn(daemon, fork["sessionId"], "fork message GAMMA")
                assert result["status"] == "completed"
                assert (await events_of(daemon, "session.forked"))[-1].session_id == (
                    fork["sessionId"]
                )
        seen = inputs(provider, 1)
        assert "first message ALPHA" in seen
        assert "fork message GAMMA" in seen


async def test_revert_drops_the_last_turns(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path, provider)) as daemon:
                session = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                sid = session["sessionId"]
                first = await turn(daemon, sid, "keep ALPHA")
                await turn(daemon, sid, "drop BETA")
                with pytest.raises(InvalidRequest) as too_many:
                    await call(daemon, "session/revert", {"sessionId": sid, "turns": 3})
                assert too_many.value.field == "turns"
                reverted = await call(daemon, "session/revert", {"sessionId": sid, "turns": 1})
                assert reverted["lastTurnId"] == first["turnId"]
                await turn(daemon, sid, "after GAMMA")
        seen = inputs(provider, 2)
        assert "keep ALPHA" in seen
        assert "drop BETA" not in seen
        assert "after GAMMA" in seen


async def test_rename_and_compact(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path, provider)) as daemon:
                session = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                sid = session["sessionId"]
                await turn(daemon, sid, "some history")
                renamed = await call(daemon, "session/rename", {"sessionId": sid, "name": "Mine"})
                assert renamed["name"] == "Mine"
                threads = await call(daemon, "thread/list", {})
                mine = [t for t in threads["data"] if t["codexdSessionId"] == sid]
                assert mine[0]["name"] == "Mine"
                await call(daemon, "session/compact", {"sessionId": sid})
                # The compaction is a turn of its own: the second turn/completed.
                completed = await nth_event(daemon, "app-server.turn.completed", 2)
                assert completed.detail is not None
                assert completed.detail["turn"]["status"] == "completed"
        assert "CONTEXT CHECKPOINT COMPACTION" in inputs(provider, 1)


async def test_review_is_a_waitable_turn(tmp_path: Path) -> None:
    review = "No issues found in the current changes."
    async with open_fake_provider(Reply.text("ok"), Reply.text(review)) as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path, provider)) as daemon:
                session = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                sid = session["sessionId"]
                await turn(daemon, sid, "write something")
                started = await call(
                    daemon,
                    "review/start",
                    {"sessionId": sid, "target": {"type": "custom", "instructions": "look"}},
                )
                assert started["reviewThreadId"] == session["threadId"]
                result = await call(
                    daemon, "turn/wait", {"sessionId": sid, "turnId": started["turnId"]}
                )
                assert result["status"] == "completed"
                assert result["finalMessage"] == review
                after = daemon.get_session(sid)
                assert after.current_turn_id is None  # not stuck on the inner turn
                assert after.last_turn_id == started["turnId"]
                # The session takes turns again afterwards.
                assert (await turn(daemon, sid, "thanks"))["status"] == "completed"
                with pytest.raises(InvalidRequest) as bad:
                    await call(daemon, "review/start", {"sessionId": sid, "target": {"type": "x"}})
                assert bad.value.field == "target.type"


async def test_model_list_and_account_read(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path, provider)) as daemon:
                models = await call(daemon, "model/list", {"limit": 2})
                assert len(models["data"]) == 2
                assert all("id" in m for m in models["data"])
                assert models["nextCursor"]
                account = await call(daemon, "account/read", {})
                assert account == {"account": None, "requiresOpenaiAuth": False}
                assert to_wire(daemon.status())["appServer"]["account"]["account"] is None


PLAN = {"mode": "plan", "settings": {"model": "mock-model"}}


async def test_collaboration_mode_needs_the_experimental_flag(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path / "a", provider)) as daemon:
                session = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                with pytest.raises(InvalidRequest) as refused:
                    await turn(daemon, session["sessionId"], "plan it", collaborationMode=PLAN)
                assert refused.value.code == -32602
                assert refused.value.field == "collaborationMode"
                assert "appserver.experimental_api" in refused.value.message
            config = real_config(
                tmp_path / "b", provider, appserver=AppServerConfig(experimental_api=True)
            )
            async with open_daemon(config) as daemon:
                assert daemon.status().app_server.experimental_api  # type: ignore[union-attr]
                session = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                result = await turn(daemon, session["sessionId"], "plan it", collaborationMode=PLAN)
                assert result["status"] == "completed"


async def test_close_interrupts_the_running_turn_within_the_bound(tmp_path: Path) -> None:
    bound = 3.0
    async with open_fake_provider(Reply.hang()) as provider:
        config = real_config(
            tmp_path, provider, turns=TurnsConfig(request_timeout_s=20, interrupt_timeout_s=bound)
        )
        with trio.fail_after(60):
            async with open_daemon(config) as daemon:
                session = await call(daemon, "session/create", {"cwd": str(tmp_path)})
                sid = session["sessionId"]
                accepted = await call(daemon, "turn/start", {"sessionId": sid, "input": "long"})
                await provider.wait_for_requests(1)
                started = trio.current_time()
                closed = await call(daemon, "session/close", {"sessionId": sid})
                took = trio.current_time() - started
                assert closed["status"] == "closed"
                assert took < bound
                result = await call(
                    daemon, "turn/wait", {"sessionId": sid, "turnId": accepted["turnId"]}
                )
                assert result["status"] == "interrupted"
                event = (await events_of(daemon, "session.closed"))[-1]
                assert event.detail is not None
                assert event.detail["interruptedTurnId"] == accepted["turnId"]
                assert event.detail["turnStatus"] == "interrupted"
                assert event.detail.get("unsubscribed") == "unsubscribed", event.detail
                again = await daemon.supervisor.relay(  # type: ignore[union-attr]
                    "thread/unsubscribe", {"threadId": session["threadId"]}
                )
                assert again["status"] in ("notSubscribed", "notLoaded")
