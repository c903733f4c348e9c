"""The records codexd keeps: frozen attrs classes and the one converter that serializes them.

Every record is immutable; change one with :func:`attrs.evolve`. The same converter writes them to
SQLite (as JSON documents) and to the wire of the local API, always with camelCase keys, so what an
API client reads is exactly what the store holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_origin

import attrs
import cattrs
from cattrs.cols import list_structure_factory, mapping_structure_factory
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
    #: The thread's name (``session/rename``).
    name: str | None = None
    #: The session this one was forked from (``session/fork``).
    forked_from: str | None = None


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
    """What ``start_turn`` returns: the turn id (new, or the steered one) and the session.

    ``since`` is the seq of the last event stored when the daemon took the request: every event
    of this turn has a larger one (of a steered turn: every event from the steer on), so
    ``events/subscribe`` with ``since`` streams all of it.
    """

    turn_id: str
    session: Session
    steered: bool = False
    since: int = 0


@attrs.frozen
class TurnResult:
    """How a turn ended (or that it has not yet: ``status == "inProgress"``)."""

    session_id: str
    turn_id: str
    status: str
    final_message: str | None = None
    error: JsonObject | None = None
    #: The thread's token usage after the turn's last model response, as the app-server sent
    #: it (``{"last": {...}, "total": {...}, "modelContextWindow": ...}``); ``None`` if none.
    usage: JsonObject | None = None


@attrs.frozen
class ReviewAccepted:
    """What ``review/start`` returns: the review turn (wait for it with ``turn/wait``).

    ``since`` as for :class:`TurnAccepted`: streaming after it gives every event of the review.
    """

    turn_id: str
    review_thread_id: str | None
    session: Session
    since: int = 0


@attrs.frozen
class AppServerInfo:
    """The app-server codexd is connected to, as ``initialize`` and ``account/read`` told."""

    user_agent: str | None = None
    #: The Codex version parsed from the user agent (``0.163.0``), if it had one.
    codex_version: str | None = None
    experimental_api: bool = False
    codex_home: str | None = None
    platform_os: str | None = None
    #: ``account/read`` at connect: ``{"account": ..., "requiresOpenaiAuth": ...}``.
    account: JsonObject | None = None


@attrs.frozen
class ThreadList:
    """``thread/list``: Codex's threads as it sends them, each with ``codexdSessionId``."""

    data: list[JsonObject]
    next_cursor: str | None = None


@attrs.frozen
class ModelList:
    """``model/list``: the models Codex offers, as it sends them."""

    data: list[JsonObject]
    next_cursor: str | None = None


@attrs.frozen
class AccountInfo:
    """``account/read``: the login state (``account`` is ``None`` when not logged in)."""

    account: JsonObject | None
    requires_openai_auth: bool | None = None


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
class StoreHealth:
    """Whether the state store writes (``ok``) or refuses writes after failures (``degraded``)."""

    status: Literal["ok", "degraded"] = "ok"
    #: The last write error while degraded.
    error: str | None = None
    #: When the store became degraded.
    since: str | None = None
    #: Streamed events dropped because they could not be written (since the daemon started).
    dropped_events: int = 0
    #: Failed commit attempts (each is retried) since the daemon started.
    write_failures: int = 0
    #: Appends to events.jsonl or a child log that failed after their commit.
    log_failures: int = 0


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
    store: StoreHealth = attrs.field(factory=StoreHealth)
    #: The connected app-server (version, account); ``None`` before the first connect.
    app_server: AppServerInfo | None = None


@attrs.frozen
class SessionList:
    sessions: list[Session]


@attrs.frozen
class RunList:
    runs: list[Run]


@attrs.frozen
class ApprovalList:
    approvals: list[Approval]


@attrs.frozen
class EventPage:
    """A page of stored events and the last committed seq when it was read."""

    events: list[Event]
    last_seq: int


@attrs.frozen
class Subscribed:
    subscription_id: str
    #: The last committed seq when the subscription started.
    last_seq: int


@attrs.frozen
class Unsubscribed:
    unsubscribed: bool


@attrs.frozen
class Restarting:
    restarting: bool = True


_CAMEL_RE = re.compile(r"_([a-z])")


def to_camel(name: str) -> str:
    """``current_turn_id`` -> ``currentTurnId``."""
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)


T = TypeVar("T")


def _strict_str(value: Any, _type: Any) -> str:
    if value.__class__ is not str:
        raise ValueError(f"must be a string, got {_json_kind(value)}")
    return value


def _strict_int(value: Any, _type: Any) -> int:
    if value.__class__ is not int:
        raise ValueError(f"must be an integer, got {_json_kind(value)}")
    return value


def _strict_float(value: Any, _type: Any) -> float:
    if value.__class__ not in (int, float):
        raise ValueError(f"must be a number, got {_json_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {value!r}")
    return number


def _strict_bool(value: Any, _type: Any) -> bool:
    if value.__class__ is not bool:
        raise ValueError(f"must be true or false, got {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number"}
    names.update({str: "a string", list: "an array", dict: "an object"})
    return names.get(type(value), type(value).__name__)


def _origin(type_: Any) -> Any:
    return get_origin(type_)


def _checked(
    structure: Callable[[Any, Any], Any], kind: type, name: str
) -> Callable[[Any, Any], Any]:
    def hook(value: Any, type_: Any) -> Any:
        if value.__class__ is not kind:
            raise ValueError(f"must be {name}, got {_json_kind(value)}")
        return structure(value, type_)

    return hook


def _camel_overrides(cls: type) -> dict[str, Any]:
    return {
        a.name: override(rename=to_camel(a.name))
        for a in attrs.fields(cls)
        if to_camel(a.name) != a.name
    }


def _make_converter() -> cattrs.Converter:
    """camelCase for every attrs class; strict primitives (no coercion of 5 to "5").

    Classes marked ``__strict_params__ = True`` (API params) refuse unknown keys; stored
    records accept them, so a newer codexd's records still load.
    """
    conv = cattrs.Converter()
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    # JSON-RPC ids are ints or strings; keep whichever the peer sent.
    conv.register_structure_hook(int | str, lambda value, _t: value)
    # Containers must be the JSON type they claim: a string is not a list of characters.
    conv.register_structure_hook_factory(
        lambda t: _origin(t) is list,
        lambda t: _checked(list_structure_factory(t, conv), list, "an array"),
    )
    conv.register_structure_hook_factory(
        lambda t: _origin(t) is dict,
        lambda t: _checked(mapping_structure_factory(t, conv), dict, "an object"),
    )
    conv.register_structure_hook_factory(
        attrs.has,
        lambda cls: make_dict_structure_fn(
            cls,
            conv,
            _cattrs_forbid_extra_keys=getattr(cls, "__strict_params__", False),
            **_camel_overrides(cls),
        ),
    )
    conv.register_unstructure_hook_factory(
        attrs.has,
        lambda cls: make_dict_unstructure_fn(cls, conv, **_camel_overrides(cls)),
    )
    return conv


#: The one converter: records to and from camelCase JSON-ready dicts.
converter = _make_converter()


def to_wire(record: Any) -> Any:
    """Unstructure a record (or a list/dict of records) into camelCase JSON-ready data."""
    return converter.unstructure(record)


def to_wire_compact(record: Any) -> dict[str, Any]:
    """A record as camelCase JSON without its unset (``None``) top-level fields."""
    data: dict[str, Any] = converter.unstructure(record)
    return {key: value for key, value in data.items() if value is not None}


def from_wire(cls: type[T], data: Mapping[str, Any]) -> T:
    """Structure camelCase data back into a record; raises cattrs errors naming the field."""
    return converter.structure(data, cls)
