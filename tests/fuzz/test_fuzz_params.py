"""(c) Random params for every API method (one test per method, one daemon for all of them).

The method list is read from the code (``_api_surface.api_methods``); parameter names from
docs/api.md. Params are dicts keyed mostly by the method's documented names, plus stray keys,
with values that pass the type checks (real session/run/turn/approval ids created at start, a
fresh pending approval for approval/respond) or are nasty (lone surrogates, NUL bytes, ``=`` in env
keys, NaN, 1e400, huge/negative numbers, deep nesting, strings up to 1 MB); sometimes params are
missing, null or an array. Every request must be answered with a result or an error whose code is
documented (never -32603); turn/wait, run/wait and turn/interrupt may keep waiting. Then
daemon/status must answer. ``codex exec`` runs stay offline (see ``_cases.offline_guard``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given

from ._api_surface import api_methods, undocumented_methods
from ._cases import execute, run_api_case
from ._daemon import Target
from ._known_bad import PARAMS
from ._profiles import fuzz_settings
from ._strategies import api_cases
from ._targets import api_setup, fake_appserver_config, managed


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base: Path = tmp_path_factory.mktemp("params")
    config = fake_appserver_config(approval_requests=1)
    yield from managed(Target("params", base, config, setup=api_setup))


def _params_test(method: str) -> Callable[..., Any]:
    def test(target: Target, case: dict) -> None:
        execute(target, run_api_case, case)

    name = "test_params_" + method.replace("/", "_")
    test.__name__ = test.__qualname__ = name
    test.__doc__ = f"Random params for {method}: a documented answer, and the daemon serves on."
    wrapped = given(case=api_cases(method))(test)
    wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = method.encode()  # type: ignore[attr-defined]
    for bad in PARAMS.get(method, []):
        wrapped = example(case=bad)(wrapped)
    return fuzz_settings("params")(wrapped)


for _method in api_methods():
    _test = _params_test(_method)
    globals()[_test.__name__] = _test
del _method, _test


def test_every_method_is_documented() -> None:
    """The params property keys its dicts with docs/api.md's names: every method needs a row."""
    assert undocumented_methods() == [], "methods missing from docs/api.md's Methods table"
