"""The parent side of the fake app-server: a script record, the argv to spawn it, its records.

The fake itself (a stdlib-only child program) is :mod:`codexd.testing._fake_child`;
``python -m codexd.testing.fake_appserver`` runs it too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs

from ._fake_wire import _DEFAULTS, CLI_VERSION, JSON, load_script

__all__ = ["CLI_VERSION", "FakeAppServerScript", "FakeTurn", "fake_records", "load_script"]

_CHILD = Path(__file__).with_name("_fake_child.py")


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(value)


def _turns(value: Any) -> tuple[FakeTurn, ...]:
    return tuple(value)


@attrs.frozen
class FakeTurn:
    """A turn that a "restarted" fake already knows (``thread/read``, ``thread/resume``)."""

    thread_id: str
    turn_id: str
    status: str = "completed"  # completed | interrupted | failed | inProgress
    text: str = ""  # the final agent message, if any


@attrs.frozen
class FakeAppServerScript:
    """What the fake app-server does; the defaults behave like a healthy server.

    Healthy behaviour:
        reply_text, delta_count, turn_duration_s: the agent reply of every turn, split into
            ``delta_count`` deltas spread evenly over ``turn_duration_s`` seconds.
        model, model_provider: echoed in ``thread/start`` / ``thread/resume`` answers.
        known_threads, known_turns: threads a previous process created, so a "restarted" fake can
            ``thread/resume`` and ``thread/read`` them.
        extra_results: canned results for other methods (``{"thread/unsubscribe": {}}``).
    Faults:
        startup_delay_s: sleep before reading anything.
        exit_immediately: exit with ``exit_code`` at start (crash loop).
        exit_after_messages: exit with ``exit_code`` on reading the Nth client message (it is
            not handled, so a request in flight gets no answer).
        exit_on_turn_start: die mid-turn after ``turn/started`` and one delta.
        garbage_lines: written to stdout at start, or after the ``initialize`` answer when
            ``garbage_after_initialize``.
        oversize_line_bytes: after the ``initialize`` answer, one valid ``fake/oversize``
            notification line of exactly that many bytes (plus the newline).
        truncated_line_then_exit: after the ``initialize`` answer, half a JSON line with no
            newline, then exit with ``exit_code``.
        swallow_turn_completed: never send ``turn/completed`` (nor the ``idle`` status change);
            ``thread/read`` still reports the turn with its final status and message.
        stall_methods: requests of these methods are never answered.
        ignore_sigterm: SIGTERM is ignored (otherwise it exits 0 at once, like the real one).
        server_request_flood: after ``turn/started`` send this many
            ``item/commandExecution/requestApproval`` requests at once (ids ``req-1``...); the
            turn goes on only when all are answered; a ``cancel`` ends it ``interrupted``.
        approval_requests: the same, one at a time (the next after the previous answer).
        notification_flood: after ``initialized`` (or on a ``fake/flood`` request, whose
            ``count`` param overrides it) write that many ``item/agentMessage/delta``
            notifications as fast as possible, then ``fake/floodDone`` ``{count}``.
        stderr_spew_bytes_per_s, stderr_line_bytes: a background writer spewing stderr lines.
    """

    reply_text: str = "Hello from the fake app-server."
    delta_count: int = 3
    turn_duration_s: float = 0.0
    model: str = "mock-model"
    model_provider: str = "mock"
    known_threads: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    known_turns: tuple[FakeTurn, ...] = attrs.field(default=(), converter=_turns)
    extra_results: dict[str, Any] = attrs.field(factory=dict, hash=False)
    startup_delay_s: float = 0.0
    exit_immediately: bool = False
    exit_code: int = 1
    exit_after_messages: int | None = None
    exit_on_turn_start: bool = False
    garbage_lines: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    garbage_after_initialize: bool = False
    oversize_line_bytes: int = 0
    truncated_line_then_exit: bool = False
    swallow_turn_completed: bool = False
    stall_methods: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    ignore_sigterm: bool = False
    server_request_flood: int = 0
    approval_requests: int = 0
    notification_flood: int = 0
    stderr_spew_bytes_per_s: int = 0
    stderr_line_bytes: int = 200

    def to_json(self) -> str:
        """The script as compact JSON, holding only the options that differ from the defaults."""
        data = json.loads(json.dumps(attrs.asdict(self)))
        return json.dumps(
            {k: v for k, v in data.items() if v != _DEFAULTS[k]}, separators=(",", ":")
        )

    def command(self) -> list[str]:
        """The argv that runs this fake: the file itself, isolated (``-I``) so it starts fast."""
        return [sys.executable, "-I", "-u", str(_CHILD), "--script", self.to_json()]


def fake_records(stderr: bytes | bytearray | str, kind: str | None = None) -> list[JSON]:
    """The JSON records the fake wrote to stderr (``{"fake": kind, ...}``), in order."""
    text = stderr if isinstance(stderr, str) else bytes(stderr).decode(errors="replace")
    records: list[JSON] = []
    for line in text.splitlines():
        if not line.startswith('{"fake"'):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if kind is None or record.get("fake") == kind:
            records.append(record)
    return records


if __name__ == "__main__":
    from ._fake_child import main

    raise SystemExit(main())
