"""(b) Random frames on an authenticated connection.

Text and binary frames: random text and bytes, JSON of random shape, JSON-RPC-shaped objects with
random ids/methods/params (lone surrogate escapes, NaN/Infinity/1e400 literals, huge numbers),
batches, ``"[" * 200000``, params nested 100 000 deep, frames in UTF-16/32. After each frame a
``daemon/status`` sentinel goes on the same connection: every message before its answer must be a
JSON-RPC 2.0 response (result, or an error with a documented code, never -32603) or an event
notification, and the connection must not be dropped for a frame under the 4 MiB limit (a frame
over it must close the connection with 1009). Then daemon/status must answer on a new connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given

from ._cases import execute, run_frame_case
from ._daemon import Target
from ._known_bad import (
    DEEP_PARAMS_FRAME,
    OPEN_BRACKETS,
    SURROGATE_ID,
    SURROGATE_KEY,
    SURROGATE_METHOD,
)
from ._profiles import fuzz_settings
from ._strategies import frame_cases
from ._targets import fake_appserver_config, managed


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base: Path = tmp_path_factory.mktemp("frames")
    yield from managed(Target("frames", base, fake_appserver_config()))


@fuzz_settings("frames")
@given(case=frame_cases())
@example(case=OPEN_BRACKETS)
@example(case=DEEP_PARAMS_FRAME)
@example(case=SURROGATE_ID)
@example(case=SURROGATE_METHOD)
@example(case=SURROGATE_KEY)
def test_random_frames_are_answered_and_never_drop_the_connection(
    target: Target, case: dict
) -> None:
    execute(target, run_frame_case, case)
