"""The fault suite prints a table: fault, expected, observed."""

from __future__ import annotations

from typing import Any

import pytest

#: test name -> (fault, expected behaviour)
FAULTS: dict[str, tuple[str, str]] = {
    "test_kill_child_mid_turn_restarts_resumes_and_next_turn_completes": (
        "kill -9 of the real app-server mid-turn",
        "turn failed with diagnostics; child back + session resumed < 3 s; next turn completes",
    ),
    "test_daemon_kill9_leaves_no_orphaned_codex": (
        "kill -9 of codexd serve",
        "no orphaned codex app-server; next start opens the store with the same daemon id",
    ),
    "test_kill9_daemon_at_20_points_recovers_everything": (
        "kill -9 of codexd serve at 20 points (turns, runs, approvals)",
        "store opens each time; seq unique; every run and turn final",
    ),
    "test_sigstopped_child_is_detected_as_wedged_and_restarted": (
        "SIGSTOP of the real app-server mid-turn",
        "watchdog -> interrupt times out -> child.wedged -> restart; next turn completes",
    ),
    "test_stderr_spew_of_100kib_lines_never_stalls_a_turn": (
        "1 MB/s of stderr in 100 KiB lines",
        "turn not stalled; > 500 kB of stderr drained to the log meanwhile",
    ),
    "test_lost_websocket_reconnects_and_resumes": (
        "external app-server killed and restarted",
        "transport.closed; reconnect with backoff; session resumed; next turn completes",
    ),
    "test_refused_auth_fails_without_retry_storm": (
        "external app-server refuses our token (401)",
        "connect.failed; child failed; no restart storm; daemon serving",
    ),
    "test_truncated_output_then_exit_is_diagnosed": (
        "half a JSON line, then exit 9",
        "transport.closed with trailing bytes and exit code; child failed",
    ),
}

_observed: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        name = item.name.split("[")[0]
        if report.passed:
            _observed[name] = f"as expected ({report.duration:.1f} s)"
        else:
            _observed[name] = "FAILED: " + str(report.longrepr).splitlines()[-1][:80]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _observed:
        return
    rows = [
        (FAULTS.get(n, (n, "?"))[0], FAULTS.get(n, (n, "?"))[1], o) for n, o in _observed.items()
    ]
    widths = [max(len(r[i]) for r in [("fault", "expected", "observed"), *rows]) for i in range(3)]
    terminalreporter.section("fault table")
    for row in [("fault", "expected", "observed"), *rows]:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
