"""(e) Random output from the app-server child (tests/fuzz/fuzz_child.py), one daemon for all.

The child answers initialize/thread/turn requests and then writes whatever a case hands it over
its control socket: garbage bytes, partial JSON, text, lines nested 100 000 deep or 1 MB long,
JSON-RPC-shaped notifications (real and random methods, params aimed at the live thread and turn,
lone-surrogate escapes), responses with unknown ids, and server requests with random methods and
params. Then a marker server request: codexd must turn it into an approval event and, once the
test declines it over the API, answer it on the child's stdin, which proves its reader and writer
both got past everything before. Random answers then go to other pending approvals. Then
daemon/status must answer and the store must be gap-free.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given

from ._cases import execute, run_child_case
from ._daemon import Target
from ._known_bad import (
    DEEP_LINE,
    DEEP_NOTIFICATION,
    INFINITE_NOTIFICATION,
    NAN_SERVER_REQUEST,
    SURROGATE_NOTIFICATION,
    SURROGATE_SERVER_REQUEST,
)
from ._profiles import fuzz_settings
from ._strategies import child_cases
from ._targets import child_setup, fuzz_child_config, managed


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base: Path = tmp_path_factory.mktemp("child")
    yield from managed(Target("child", base, fuzz_child_config, setup=child_setup))


@fuzz_settings("child")
@given(case=child_cases())
@example(case=SURROGATE_NOTIFICATION)
@example(case=SURROGATE_SERVER_REQUEST)
@example(case=DEEP_LINE)
@example(case=DEEP_NOTIFICATION)
@example(case=INFINITE_NOTIFICATION)
@example(case=NAN_SERVER_REQUEST)
def test_random_child_output_keeps_the_daemon_serving(target: Target, case: dict) -> None:
    execute(target, run_child_case, case)
