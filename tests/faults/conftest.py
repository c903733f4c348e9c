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
    "test_a_second_serve_on_the_same_state_dir_is_refused": (
        "a second codexd serve on the same state dir",
        "exit 1 at once: 'state dir D is in use by pid N'; the first keeps its api.json, child",
    ),
    "test_a_busy_port_is_one_line_and_exit_1": (
        "the API port is taken",
        "one line naming the address, exit 1",
    ),
    "test_unix_listen_serves_and_never_removes_a_foreign_file": (
        "api.listen = unix://PATH (then PATH is someone's file)",
        "serves on a 0600 socket, removed at stop; a foreign file is refused and kept",
    ),
    "test_a_non_ascii_handshake_then_sigterm_exits_promptly": (
        "handshake with Authorization: Bearer \\xe9",
        "401; daemon serves; SIGTERM exits 0",
    ),
    "test_queued_runs_that_no_longer_validate_fail_instead_of_wedging": (
        "queued runs with poison options (NUL, 'A=B' env key) from an older codexd",
        "each fails 'no longer valid' at start; the daemon serves",
    ),
    "test_disk_full_degrades_refuses_writes_and_recovers_when_space_returns": (
        "state dir on a full 3 MiB filesystem during streaming turns",
        "-32009 naming the real error; degraded; store.recovered once space returns; no gap",
    ),
    "test_stopping_while_degraded_exits_1_within_the_bound": (
        "SIGTERM while the store is degraded (disk full)",
        "exits 1 within stop.grace_s + 25 s",
    ),
    "test_respawn_out_of_file_descriptors_is_retried_not_fatal": (
        "EMFILE at each of 6 respawns of the app-server",
        "retried with backoff (not counted as crashes); the child comes back",
    ),
    "test_reconnect_keeps_a_pending_approval_answerable": (
        "the link to an external server drops while a turn waits for approval",
        "reconnect + resume; the replayed request re-binds the same approval; the turn ends",
    ),
    "test_an_empty_or_foreign_store_is_refused_not_replaced": (
        "a 0-byte or foreign state.sqlite3",
        "one line naming the file, exit 1; the file is untouched",
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
