"""(a) Random WebSocket handshakes over raw TCP; the daemon must keep serving others.

Each case is a raw HTTP upgrade request (random method, target, version, header names and values
with non-ASCII and arbitrary bytes in Authorization/Origin/Host, duplicated and missing headers,
bare-LF line ends), possibly truncated, possibly followed by garbage bytes, sent on a connection
that is then half-closed, held open, or never used; sometimes a burst of such connections. While
that connection is still open and again after it closed, ``daemon/status`` must answer (with the
right token) within 10 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given

from ._cases import execute, run_handshake_case
from ._daemon import Target
from ._known_bad import CLOSED_BURST, NON_ASCII_BEARER, NON_ASCII_ORIGIN, TOKEN_THEN_NON_ASCII
from ._profiles import fuzz_settings
from ._strategies import handshake_cases
from ._targets import fake_appserver_config, managed


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base: Path = tmp_path_factory.mktemp("handshake")
    yield from managed(Target("handshake", base, fake_appserver_config()))


@fuzz_settings("handshake")
@given(case=handshake_cases())
@example(case=NON_ASCII_BEARER)
@example(case=TOKEN_THEN_NON_ASCII)
@example(case=NON_ASCII_ORIGIN)
@example(case=CLOSED_BURST)
def test_random_handshakes_leave_the_daemon_serving(target: Target, case: dict) -> None:
    execute(target, run_handshake_case, case)
