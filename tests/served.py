"""A `codexd serve` subprocess (real Codex binary, fake model) for the typed-client tests.

:func:`served` starts the fake provider, writes a config, starts ``codexd serve`` and records
every answer and notification the client receives in-process (:class:`Received`), so the
tests can check them all against the API's JSON Schema.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
import trio

from codexd._schema import api_schema
from codexd.client import ApiClient
from codexd.testing import FakeModelProvider, Reply, open_fake_provider, write_codex_home

from .helpers import Serve, start_serve

#: The methods test_client_codex covers (test_client_methods covers the others).
CODEX_METHODS = {
    "thread/list",
    "session/rename",
    "session/revert",
    "session/fork",
    "session/compact",
    "review/start",
    "model/list",
    "account/read",
    "appServer/request",
}


@attrs.define
class Received:
    """What the client got: (method, result) of calls, (method, params) of notifications."""

    results: list[tuple[str, Any]] = attrs.field(factory=list)
    called: set[str] = attrs.field(factory=set)
    notifications: list[tuple[str, Any]] = attrs.field(factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        call, notified = ApiClient.call, ApiClient.on_notification

        async def recording_call(self_: ApiClient, method: str, *args: Any, **kw: Any) -> Any:
            self.called.add(method)
            result = await call(self_, method, *args, **kw)
            self.results.append((method, result))
            return result

        async def recording_notification(self_: ApiClient, notification: Any) -> None:
            self.notifications.append((notification.method, notification.params))
            await notified(self_, notification)

        monkeypatch.setattr(ApiClient, "call", recording_call)
        monkeypatch.setattr(ApiClient, "on_notification", recording_notification)

    def check_schema(self) -> int:
        """Validate everything received against the API schema; how many were checked."""
        schema = api_schema()
        validators: dict[str, jsonschema.Draft202012Validator] = {}

        def validate(key: str, part: dict[str, Any], value: Any) -> None:
            if key not in validators:
                root = {"$schema": schema["$schema"], "$defs": schema["$defs"], **part}
                validators[key] = jsonschema.Draft202012Validator(root)
            errors = list(validators[key].iter_errors(value))
            assert not errors, f"{key}: {errors[0].message} at {list(errors[0].absolute_path)}"

        for method, result in self.results:
            validate(method, schema["properties"][method]["properties"]["result"], result)
        names = {"event": "EventNotification", "events/dropped": "EventsDroppedNotification"}
        for method, params in self.notifications:
            validate(method, {"$ref": f"#/$defs/{names[method]}"}, params)
        return len(self.results) + len(self.notifications)


@attrs.define
class Served:
    """A running ``codexd serve`` and what a test needs around it."""

    nursery: trio.Nursery
    provider: FakeModelProvider
    config: Path
    state_dir: Path
    work: Path
    serve: Serve
    #: The variables that point Codex at the fake model (give them to runs: ``env=``).
    env: dict[str, str]

    async def restart(self) -> None:
        """Stop the daemon (SIGTERM) and start it again on the same state directory."""
        assert await self.serve.stop() == 0
        self.serve = await start_serve(self.nursery, ["--config", str(self.config), "serve"])


def write_config(
    tmp_path: Path,
    env: dict[str, str],
    extra: Sequence[str] = (),
    api: Sequence[str] = (),
    *,
    mode: str = "app-server",
) -> Path:
    """A codexd.toml: ``mode``, state in ``tmp_path/state``, ``child.env``, the API on a free
    port (plus ``api`` lines), a 2 s stop grace, then ``extra`` lines."""
    state = tmp_path / "state"
    lines = [
        f'mode = "{mode}"',
        f'state_dir = "{state}"',
        "[child]",
        "env = {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items()) + "}",
        "[api]",
        'listen = "ws://127.0.0.1:0"',
        *api,
        "[stop]",
        "grace_s = 2",
        *extra,
    ]
    path = tmp_path / "codexd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@asynccontextmanager
async def served(
    tmp_path: Path,
    *replies: Reply,
    default: Reply | None = None,
    approvals: str = "accept",
    subscriber_buffer: int | None = None,
) -> AsyncIterator[Served]:
    """``codexd serve`` with the real binary answered by a fake model scripted ``replies``."""
    async with open_fake_provider(*replies, default=default) as provider:
        home = write_codex_home(tmp_path / "codex", base_url=provider.base_url)
        api = [] if subscriber_buffer is None else [f"subscriber_buffer = {subscriber_buffer}"]
        approval = ["[approvals]", f'policy = "{approvals}"']
        config = write_config(tmp_path, home.env({}), approval, api)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        async with trio.open_nursery() as nursery:
            serve = await start_serve(nursery, ["--config", str(config), "serve"])
            s = Served(nursery, provider, config, tmp_path / "state", work, serve, home.env({}))
            try:
                yield s
            finally:
                with trio.CancelScope(shield=True):
                    code = await s.serve.stop()
                nursery.cancel_scope.cancel()
            assert code == 0, bytes(s.serve.stderr)[-2000:]
