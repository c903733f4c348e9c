"""The records codexd keeps: frozen attrs classes and the one converter that serializes them.

Every record is immutable; change one with :func:`attrs.evolve`. The same converter writes them to
SQLite (as JSON documents) and to the wire of the local API, always with camelCase keys, so what an
API client reads is exactly what the store holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

JsonObject = dict[str, Any]

ChildStatus = Literal["idle", "starting", "running", "stopped", "failed", "external", "restarting"]
SessionStatus = Literal["active", "closed"]
RunStatus = Literal[
    "queued", "running", "completed", "failed", "cancelled", "timed_out", "interrupted"
]
ApprovalStatus = Literal["pending", "accepted", "declined", "cancelled", "timed_out"]
EventLevel = Literal["info", "warn", "error"]

#: Run statuses after which a run never changes again.
FINAL_RUN_STATUSES: frozenset[str] = frozenset(
    {"completed", "failed", "cancelled", "timed_out", "interrupted"}
)
#: Turn statuses (as the app-server names them) after which a turn never changes again.
FINAL_TURN_STATUSES: frozenset[str] = frozenset({"completed", "failed", "interrupted"})


@attrs.frozen
class ChildState:
    """The supervised child process (the app-server, or the smoke child)."""

    status: ChildStatus = "idle"
    pid: int | None = None
    started_at: str | None = None
    exited_at: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    last_error: str | None = None
    restart_count: int = 0


@attrs.frozen
class Session:
    """A codexd session: one app-server thread and what codexd knows of its turns."""

    session_id: str
    purpose: str
    thread_id: str | None
    status: SessionStatus
    endpoint: str | None
    child_pid: int | None
    created_at: str
    updated_at: str
    cwd: str | None = None
    model: str | None = None
    model_provider: str | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    current_turn_id: str | None = None
    last_turn_id: str | None = None
    last_turn_status: str | None = None
    last_error: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    #: The thread settings given at creation, re-applied when the thread is resumed after a
    #: restart (approval policy, sandbox, model, ...).
    settings: JsonObject = attrs.field(factory=dict)


@attrs.frozen
class Run:
    """A one-shot ``codex exec`` job and its outcome."""

    run_id: str
    session_id: str | None
    status: RunStatus
    prompt: str
    purpose: str
    cwd: str | None
    created_at: str
    updated_at: str
    adapter: str = "codex-exec"
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    summary: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    #: Exit code, usage, thread id and a stderr tail once the run has ended.
    result: JsonObject | None = None
    #: The options the run was created with (sandbox, model, timeout, ...), kept so that a run
    #: still queued when the daemon stopped can be started the same way after a restart.
    options: JsonObject = attrs.field(factory=dict)


@attrs.frozen
class Approval:
    """A server request from the app-server (approval, user input, ...) and its answer."""

    approval_id: str
    request_id: int | str
    method: str
    session_id: str | None
    thread_id: str | None
    turn_id: str | None
    params: JsonObject
    status: ApprovalStatus
    created_at: str
    summary: str = ""
    deadline_at: str | None = None
    decision: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None


@attrs.frozen
class Event:
    """One entry of the event log. ``seq`` is monotonic and never reused, across restarts."""

    seq: int
    ts: str
    level: EventLevel
    type: str
    message: str
    detail: JsonObject | None = None
    session_id: str | None = None
    run_id: str | None = None


@attrs.frozen
class TurnAccepted:
    """What ``start_turn`` returns: the turn id (new, or the steered one) and the session."""

    turn_id: str
    session: Session
    steered: bool = False


@attrs.frozen
class TurnResult:
    """How a turn ended (or that it has not yet: ``status == "inProgress"``)."""

    session_id: str
    turn_id: str
    status: str
    final_message: str | None = None
    error: JsonObject | None = None


@attrs.frozen
class DaemonInfo:
    """The running daemon process."""

    pid: int
    version: str
    mode: str
    started_at: str
    status: Literal["starting", "running", "degraded", "stopping", "stopped"] = "starting"
    state_dir: str = ""
    api_url: str | None = None


@attrs.frozen
class Snapshot:
    """What ``daemon/status`` returns: who the daemon is and the state of everything it holds."""

    daemon_id: str
    daemon: DaemonInfo
    child: ChildState
    sessions: list[Session]
    runs: dict[str, int]
    pending_approvals: int
    recent_events: list[Event]
    last_seq: int


_CAMEL_RE = re.compile(r"_([a-z])")


def to_camel(name: str) -> str:
    """``current_turn_id`` -> ``currentTurnId``."""
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)


T = TypeVar("T")

RECORD_TYPES: tuple[type, ...] = (
    ChildState,
    Session,
    Run,
    Approval,
    Event,
    TurnAccepted,
    TurnResult,
    DaemonInfo,
    Snapshot,
)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    # JSON-RPC ids are ints or strings; keep whichever the peer sent.
    conv.register_structure_hook(int | str, lambda value, _t: value)
    for cls in RECORD_TYPES:
        overrides = {
            a.name: override(rename=to_camel(a.name))
            for a in attrs.fields(cls)
            if to_camel(a.name) != a.name
        }
        conv.register_unstructure_hook(
            cls,
            make_dict_unstructure_fn(cls, conv, **overrides),  # type: ignore[arg-type]
        )
        conv.register_structure_hook(
            cls,
            make_dict_structure_fn(cls, conv, **overrides),  # type: ignore[arg-type]
        )
    return conv


#: The one converter: records to and from camelCase JSON-ready dicts.
converter = _make_converter()


def to_wire(record: Any) -> Any:
    """Unstructure a record (or a list/dict of records) into camelCase JSON-ready data."""
    return converter.unstructure(record)


def from_wire(cls: type[T], data: Mapping[str, Any]) -> T:
    """Structure camelCase data back into a record; raises cattrs errors naming the field."""
    return converter.structure(data, cls)
