"""Replays tests/fuzz/corpus/*.json: inputs that once failed, each a plain test case.

A corpus file is ``{"property": "handshake" | "frames" | "params" | "config" | "child",
"note": "what it broke", "case": {...}}``; the case has the shape the property's strategy draws
(see _strategies.py; tokens in _render.py). Each property gets one daemon for all its files,
checked like the property tests: daemon/status after every case, the store after the stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._cases import (
    execute,
    run_api_case,
    run_child_case,
    run_config_case,
    run_frame_case,
    run_handshake_case,
)
from ._daemon import Target
from ._targets import api_setup, child_setup, fake_appserver_config, fuzz_child_config

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = sorted(CORPUS.glob("*.json"))

RUNNERS = {
    "handshake": run_handshake_case,
    "frames": run_frame_case,
    "params": run_api_case,
    "child": run_child_case,
}


def _new_target(prop: str, base: Path) -> Target:
    if prop == "params":
        return Target(
            "corpus-params", base, fake_appserver_config(approval_requests=1), setup=api_setup
        )
    if prop == "child":
        return Target("corpus-child", base, fuzz_child_config, setup=child_setup)
    return Target(f"corpus-{prop}", base, fake_appserver_config())


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    made: dict[str, Target] = {}
    base = tmp_path_factory.mktemp("corpus")

    class Lazy(dict[str, Target]):
        def __missing__(self, prop: str) -> Target:
            made[prop] = self[prop] = _new_target(prop, base / prop)
            return made[prop]

    try:
        yield Lazy()
    finally:
        errors = []
        for target in made.values():
            try:
                target.finish()
            except AssertionError as exc:
                errors.append(str(exc))
        if errors:
            raise AssertionError("\n\n".join(errors))


def _load(path: Path) -> dict[str, Any]:
    entry = json.loads(path.read_text())
    assert entry.get("property") in (*RUNNERS, "config"), f"{path.name}: unknown property"
    return entry


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_case(path: Path, targets: dict[str, Target]) -> None:
    entry = _load(path)
    if entry["property"] == "config":
        run_config_case(entry["case"])
        return
    execute(targets[entry["property"]], RUNNERS[entry["property"]], entry["case"])
