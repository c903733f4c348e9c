"""Shared fixtures: a fresh state directory and config per test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from codexd import ApiConfig, ChildConfig, Config, StopConfig

#: A Codex executable to test against instead of the bundled one (``nox -s compat`` sets it).
CODEX_OVERRIDE = os.environ.get("CODEXD_TEST_CODEX")


@pytest.fixture(autouse=True)
def codex_override(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With ``CODEXD_TEST_CODEX=/path/to/codex``, every test runs that binary as "the bundled
    Codex" (the app-server child, exec runs, ``codexd.testing.codex_binary()``)."""
    if CODEX_OVERRIDE:
        import codexd._binary
        import codexd.testing._codex_home

        codex = str(Path(CODEX_OVERRIDE).resolve())
        monkeypatch.setattr(codexd._binary, "bundled_codex", lambda: codex)
        monkeypatch.setattr(codexd.testing._codex_home, "bundled_codex", lambda: codex)
        helpers = Path(codex).parent.parent / "codex-path"  # the wheel's layout: rg lives here
        if helpers.is_dir():
            monkeypatch.setattr(codexd._binary, "bundled_path_dir", lambda: str(helpers))
    yield


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def base_config(state_dir: Path) -> Config:
    """A config with the API off and a short stop grace, for embedding tests."""
    return Config(
        state_dir=str(state_dir),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1.0),
    )


def python_child(config: Config, code: str, *, grace_s: float | None = None) -> Config:
    """``config`` with a Python one-liner as its (plain) child."""
    stop = config.stop if grace_s is None else StopConfig(grace_s=grace_s)
    return attrs.evolve(
        config,
        child=ChildConfig(command=sys.executable, args=["-c", code]),
        stop=stop,
    )
