"""Helpers for tests that run the REAL Codex binary against the fake model provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from codexd import ApiConfig, ApprovalsConfig, ChildConfig, Config, StopConfig, TurnsConfig
from codexd.testing import CodexHome, FakeModelProvider, write_codex_home


def real_config(
    tmp_path: Path,
    provider: FakeModelProvider,
    *,
    home: CodexHome | None = None,
    approvals: ApprovalsConfig | None = None,
    turns: TurnsConfig | None = None,
    **changes: Any,
) -> Config:
    """A config that spawns the bundled Codex app-server pointed at ``provider``."""
    home = home or write_codex_home(tmp_path / "codex", base_url=provider.base_url)
    config = Config(
        state_dir=str(tmp_path / "state"),
        child=ChildConfig(env=home.env({})),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=2.0),
        approvals=approvals or ApprovalsConfig(),
        turns=turns or TurnsConfig(request_timeout_s=20.0),
    )
    return attrs.evolve(config, **changes)


from .helpers import wait_event  # noqa: E402,F401  (re-exported for the real tests)
