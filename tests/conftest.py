"""Shared fixtures: a fresh state directory and config per test."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest

from codexd import ApiConfig, ChildConfig, Config, StopConfig


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
