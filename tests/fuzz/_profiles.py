"""Hypothesis profiles, chosen with ``CODEXD_FUZZ_PROFILE`` (``ci`` by default).

``ci``       bounded: the whole suite in about 3 minutes on 2 cores; explicit examples first, no
             shrinking (a failure prints its blob; rerun with ``deep`` to shrink it).
``deep``     long local runs: 50x the examples, shrinking on.
``explore``  like ``deep`` but skips the explicit ``@example``s, so known-bad inputs that still
             fail do not stop the search for new classes of failures.

``CODEXD_FUZZ_SCALE`` multiplies every example count. Failing inputs are kept in
``tests/fuzz/.hypothesis`` (replayed first on the next run).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE = os.environ.get("CODEXD_FUZZ_PROFILE", "ci")
#: Multiplies every example count (e.g. ``CODEXD_FUZZ_SCALE=0.2`` for a quick look).
SCALE = float(os.environ.get("CODEXD_FUZZ_SCALE", "1"))

#: Examples per property test (the params property has one test per API method).
EXAMPLES: dict[str, dict[str, int]] = {
    "ci": {"handshake": 200, "frames": 200, "params": 30, "config": 500, "child": 120},
    "deep": {"handshake": 2000, "frames": 2000, "params": 350, "config": 15000, "child": 1250},
    "explore": {"handshake": 2000, "frames": 2000, "params": 350, "config": 15000, "child": 1250},
}

_PHASES = {
    "ci": (Phase.explicit, Phase.reuse, Phase.generate),
    "deep": tuple(Phase),
    "explore": (Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
}

if PROFILE not in EXAMPLES:
    raise RuntimeError(f"CODEXD_FUZZ_PROFILE={PROFILE!r}: use one of {', '.join(EXAMPLES)}")

_BASE = settings(
    deadline=None,
    derandomize=False,
    print_blob=True,
    phases=_PHASES[PROFILE],
    database=DirectoryBasedExampleDatabase(Path(__file__).resolve().parent / ".hypothesis"),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)

F = TypeVar("F", bound=Callable[..., Any])


def fuzz_settings(prop: str) -> Callable[[F], F]:
    """``@settings`` for one property under the selected profile."""
    examples = max(1, round(EXAMPLES[PROFILE][prop] * SCALE))
    return settings(_BASE, max_examples=examples)  # type: ignore[return-value]
