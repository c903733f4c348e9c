"""appServer/request, over the real API to the REAL Codex binary: results, refusals, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import codexd._binary
from codexd import ApiConfig, AppServerConfig, open_daemon
from codexd._appserver import parse_codex_version
from codexd.client import ApiError, open_client
from codexd.testing import Reply, open_fake_provider

from .helpers import events_of
from .real import real_config


def api_config(tmp_path: Path, provider: Any, **changes: Any) -> Any:
    config = real_config(tmp_path, provider, **changes)
    return attrs.evolve(config, api=ApiConfig(listen="ws://127.0.0.1:0"))


async def test_passthrough_thread_list_sees_a_codexd_thread(tmp_path: Path) -> None:
    async with open_fake_provider(Reply.text("listed")) as provider:
        config = api_config(tmp_path, provider)
        with trio.fail_after(60):
            async with open_daemon(config) as daemon, open_client(config.state_path) as client:
                session = await client.call("session/create", {"cwd": str(tmp_path)})
                turn = await client.call(
                    "turn/start", {"sessionId": session["sessionId"], "input": "ALPHA one"}
                )
                await client.call(
                    "turn/wait", {"sessionId": session["sessionId"], "turnId": turn["turnId"]}
                )
                raw = await client.call(
                    "appServer/request", {"method": "thread/list", "params": {"limit": 10}}
                )
                ids = [t["id"] for t in raw["data"]]
                assert session["threadId"] in ids
                assert "codexdSessionId" not in raw["data"][0]  # as is, untouched
                typed = await client.call("thread/list", {"limit": 10})
                mine = [t for t in typed["data"] if t["id"] == session["threadId"]]
                assert mine[0]["codexdSessionId"] == session["sessionId"]
                assert mine[0]["preview"] == "ALPHA one"
                events = await events_of(daemon, "app-server.request")
        detail = events[-1].detail
        assert detail is not None
        assert detail["method"] == "thread/list"
        assert detail["outcome"] == "ok"
        assert detail["params"] == {"limit": 10}
        assert detail["durationMs"] >= 0


async def test_denied_method_is_refused_naming_method_and_key(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        config = api_config(tmp_path, provider)
        with trio.fail_after(60):
            async with open_daemon(config) as daemon, open_client(config.state_path) as client:
                with pytest.raises(ApiError) as refused:
                    await client.call(
                        "appServer/request",
                        {"method": "account/logout", "params": {"secret": "s3cr3t"}},
                    )
                assert refused.value.code == -32602
                assert "'account/logout'" in refused.value.message
                assert "appserver.deny" in refused.value.message
                assert refused.value.field == "method"
                events = await events_of(daemon, "app-server.request")
                # The account is still readable: nothing was logged out.
                assert (await client.call("account/read"))["account"] is None
        detail = events[-1].detail
        assert detail is not None
        assert detail["outcome"] == "refused"
        assert "params" not in detail
        assert "s3cr3t" not in str(detail)


async def test_allow_list_refuses_what_it_does_not_name(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        config = api_config(
            tmp_path, provider, appserver=AppServerConfig(allow=["thread/*"], deny=[])
        )
        with trio.fail_after(60):
            async with open_daemon(config), open_client(config.state_path) as client:
                with pytest.raises(ApiError) as refused:
                    await client.call("appServer/request", {"method": "model/list"})
                assert "appserver.allow" in refused.value.message
                loaded = await client.call("appServer/request", {"method": "thread/loaded/list"})
                assert "data" in loaded


MISSING_THREAD = "01a20e5e-0000-7000-8000-000000000000"


async def test_app_server_errors_keep_their_code_and_message(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        config = api_config(tmp_path, provider)
        with trio.fail_after(60):
            async with open_daemon(config), open_client(config.state_path) as client:
                with pytest.raises(ApiError) as failed:
                    await client.call(
                        "appServer/request",
                        {"method": "thread/read", "params": {"threadId": MISSING_THREAD}},
                    )
                assert failed.value.code == -32600  # the app-server's own code
                assert failed.value.message == f"thread not loaded: {MISSING_THREAD}"
                with pytest.raises(ApiError) as gated:
                    await client.call("appServer/request", {"method": "collaborationMode/list"})
                assert gated.value.code == -32602
                assert "appserver.experimental_api" in gated.value.message


async def test_status_shows_codex_version_and_account(tmp_path: Path) -> None:
    async with open_fake_provider() as provider:
        with trio.fail_after(60):
            async with open_daemon(real_config(tmp_path, provider)) as daemon:
                info = daemon.status().app_server
                assert info is not None
                assert info.codex_version is not None
                assert info.user_agent is not None
                assert info.user_agent.startswith(f"codexd/{info.codex_version} (")
                assert info.account is not None
                assert info.account["account"] is None  # the fake home is not logged in
                assert info.experimental_api is False
                connected = await events_of(daemon, "app-server.connected")
        assert connected[-1].detail is not None
        assert connected[-1].detail["codexVersion"] == info.codex_version
        # The binary under test (the bundled one, or CODEXD_TEST_CODEX) says the same.
        printed = await trio.run_process(
            [codexd._binary.bundled_codex(), "--version"], capture_stdout=True
        )
        assert printed.stdout.decode().split() == ["codex-cli", info.codex_version]


def test_codex_version_from_user_agent() -> None:
    agent = "codexd/0.163.0 (Debian 12.0.0; x86_64) xterm (codexd; 0.1.0)"
    assert parse_codex_version(agent) == ((0, 163, 0), "0.163.0")
    assert parse_codex_version("my app/x/0.149.0-alpha.2 (Linux)") == (
        (0, 149, 0),
        "0.149.0-alpha.2",
    )
    assert parse_codex_version("no version here") == (None, None)
    assert parse_codex_version(None) == (None, None)
