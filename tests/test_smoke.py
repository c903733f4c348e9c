from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from codexd._smoke import SMOKE_EVENTS


def test_embedded_smoke_cli_leaves_consistent_state(tmp_path: Path) -> None:
    state = tmp_path / "smoke-state"
    proc = subprocess.run(
        [sys.executable, "-m", "codexd", "--state-dir", str(state), "smoke"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks ok" in proc.stdout
    assert "failed" not in proc.stdout

    with sqlite3.connect(state / "state.sqlite3") as conn:
        sessions = [json.loads(d) for (d,) in conn.execute("SELECT data FROM sessions")]
        events = list(conn.execute("SELECT seq, type FROM events ORDER BY seq"))
    assert [(s["purpose"], s["status"]) for s in sessions] == [("smoke", "closed")]
    seqs = [seq for seq, _ in events]
    assert seqs == sorted(set(seqs))
    wanted = [t for _, t in events if t in SMOKE_EVENTS]
    assert wanted == list(SMOKE_EVENTS)

    jsonl = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
    assert [(e["seq"], e["type"]) for e in jsonl] == events
    assert b"codexd smoke done" in (state / "child-stdout.log").read_bytes()
    assert b"codexd smoke stderr" in (state / "child-stderr.log").read_bytes()


def test_smoke_json_output(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "codexd", "--state-dir", str(tmp_path / "s"), "smoke", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["ok"] is True
    assert {c["name"] for c in payload["checks"]} >= {"stored_events", "session_registry"}
    assert payload["snapshot"]["child"]["status"] == "stopped"


def test_config_show_names_bad_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[runs]\nconcurency = 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "codexd", "--config", str(cfg), "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "runs.concurency: unknown key" in proc.stderr
    assert str(cfg) in proc.stderr
