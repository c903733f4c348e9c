"""``codexd serve --fake-provider``: a live daemon with no API key and no network.

The testing kit's fake model provider runs in the daemon's own Trio process, and a throw-away
``CODEX_HOME``/``HOME`` (a temporary directory, removed when the daemon stops) points Codex at
it. The environment reaches the app-server and ``codex exec`` runs through ``child.env``. The
fake model is a small demo: a prompt ``run CMD`` (or ``$ CMD``) makes it ask Codex to run
``CMD`` (a session created with ``--approval-policy untrusted`` then asks for an approval);
anything else is echoed back, streamed word by word.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from .._config import Config
from ..testing import (
    FakeModelProvider,
    RecordedRequest,
    Reply,
    open_fake_provider,
    write_codex_home,
)

#: Seconds between two streamed words of a demo reply (slow enough to watch it arrive).
WORD_INTERVAL_S = 0.05

_RUN = re.compile(r"^\s*(?:run|\$)\s+(?P<cmd>\S.*)$", re.IGNORECASE | re.DOTALL)


def _words(text: str) -> list[str]:
    words = re.findall(r"\S+\s*", text)
    return words or [text]


def _text_reply(text: str) -> Reply:
    return Reply.text(text, deltas=_words(text), delta_interval_s=WORD_INTERVAL_S)


def _last_input(request: RecordedRequest) -> dict[str, Any]:
    body = request.body if isinstance(request.body, dict) else {}
    items = body.get("input")
    if isinstance(items, list) and items and isinstance(items[-1], dict):
        return items[-1]
    return {}


def _user_text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _tool_summary(output: str) -> str:
    """What a person wants to hear about a command Codex ran (or was not allowed to run)."""
    code = re.search(r"exited with code (-?\d+)", output)
    printed = output.split("Output:", 1)[1].strip() if "Output:" in output else ""
    if code is None:
        return f"The command did not run: {' '.join(output.split())[:200]}"
    text = f"The command exited with code {code.group(1)}"
    return text + (f" and printed: {' '.join(printed.split())[:200]}" if printed else ".")


def demo_reply(request: RecordedRequest) -> Reply:
    """The demo model: ``run CMD`` asks to run CMD; a tool result is reported; else echo."""
    item = _last_input(request)
    if item.get("type") == "function_call_output":
        output = item.get("output")
        return _text_reply(_tool_summary(output if isinstance(output, str) else str(output or "")))
    prompt = _user_text(item)
    match = _RUN.match(prompt)
    if match:
        return Reply.shell(match.group("cmd").strip())
    return _text_reply(
        f"This is codexd's offline fake model. You said: {prompt}. "
        "Ask me to `run touch hello.txt` to see an approval."
    )


@attrs.frozen
class FakeSetup:
    """What ``--fake-provider`` set up."""

    provider: FakeModelProvider
    codex_home: Path
    env: dict[str, str]

    def apply(self, config: Config) -> Config:
        """``config`` with the fake environment in ``child.env`` (over what it had)."""
        child = attrs.evolve(config.child, env={**config.child.env, **self.env})
        return attrs.evolve(config, child=child)


@asynccontextmanager
async def open_fake_setup() -> AsyncIterator[FakeSetup]:
    """Serve the demo model and a throw-away ``CODEX_HOME`` for the ``async with``.

    Leaving the block stops the provider and removes the directory (in a worker thread).
    """
    tmp = await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="codexd-fake-"))
    root = Path(tmp)
    try:
        async with open_fake_provider(responder=demo_reply) as provider:
            home = await trio.to_thread.run_sync(
                lambda: write_codex_home(root, base_url=provider.base_url)
            )
            yield FakeSetup(provider, home.codex_home, home.env({}))
    finally:
        import shutil

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(root, ignore_errors=True))
