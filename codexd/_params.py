"""The parameters of every API method, as frozen records validated where they enter.

Each parameter list exists once, here: the API server structures a request's ``params`` into
its record with the one converter (camelCase on the wire, strict types, unknown keys refused),
the daemon's Python methods build the same records from keyword arguments, and the docs, the
CLI and the JSON Schema read them. :func:`parse` turns any problem into
:class:`~codexd._errors.InvalidRequest` whose ``field`` names the path (``env.PATH``,
``config[2]``): every string is storable Unicode, every number finite and in range, every
structure bounded.
"""

from __future__ import annotations

import os
from typing import Any, Literal, TypeVar

import attrs
import trio

from ._errors import InvalidRequest
from ._jsoncheck import InvalidValue, check_value
from ._records import converter, to_camel
from ._structerrors import describe

P = TypeVar("P")

#: The longest wait a caller may ask for (a week): beyond it a number is a mistake.
MAX_WAIT_S = 7 * 24 * 3600.0

Sandbox = Literal["read-only", "workspace-write", "danger-full-access"]
Decision = Literal["accept", "acceptForSession", "decline", "cancel"]
SessionStatus = Literal["active", "closed"]
RunStatusFilter = Literal[
    "queued", "running", "completed", "failed", "cancelled", "timed_out", "interrupted"
]
ApprovalStatusFilter = Literal["pending", "accepted", "declined", "cancelled", "timed_out"]
#: The app-server's approval policy: a name or a granular policy object.
ApprovalPolicyValue = str | dict[str, Any]


def _fail(attribute: attrs.Attribute[Any], problem: str, where: str = "") -> InvalidValue:
    name = to_camel(attribute.name)
    return InvalidValue(f"{name}{where}", problem)


def non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise _fail(attribute, "must not be empty")


def no_nul(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """For strings that become a command line, an environment or a path: no NUL byte."""
    items: list[tuple[str, str]] = []
    if isinstance(value, str):
        items = [("", value)]
    elif isinstance(value, list):
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, dict):
        items = [(f".{k}", f"{k}{v}") for k, v in value.items()]
    for where, text in items:
        if "\x00" in text:
            raise _fail(attribute, "must not contain a NUL byte", where)


def env_names(_inst: object, attribute: attrs.Attribute[Any], value: dict[str, str]) -> None:
    for key in value:
        if not key or "=" in key:
            raise _fail(attribute, f"has an invalid variable name {key!r}", f".{key}")


def key_value_list(_inst: object, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    for index, item in enumerate(value):
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise _fail(attribute, f"entries are key=value, got {item!r}", f"[{index}]")


def wait_seconds(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0 <= value <= MAX_WAIT_S:
        raise _fail(attribute, f"must be between 0 and {MAX_WAIT_S:g} seconds, got {value:g}")


def limit_seconds(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0 < value <= MAX_WAIT_S:
        raise _fail(attribute, f"must be > 0 and at most {MAX_WAIT_S:g} seconds, got {value:g}")


def non_negative(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 0:
        raise _fail(attribute, f"must be >= 0, got {value}")


def _strict(cls: type[P]) -> type[P]:
    cls.__strict_params__ = True  # type: ignore[attr-defined]
    return cls


# ---- shared option groups ----------------------------------------------------------------------


@_strict
@attrs.frozen
class SessionSettings:
    """Thread settings: sent with ``thread/start``, re-applied with every ``thread/resume``."""

    cwd: str | None = attrs.field(default=None, validator=[non_empty, no_nul])
    model: str | None = attrs.field(default=None, validator=non_empty)
    model_provider: str | None = attrs.field(default=None, validator=non_empty)
    #: ``untrusted``, ``on-failure``, ``on-request``, ``never`` or a granular policy object.
    approval_policy: ApprovalPolicyValue | None = None
    sandbox: Sandbox | None = None
    base_instructions: str | None = None
    developer_instructions: str | None = None
    personality: str | None = None
    service_tier: str | None = None
    #: Codex config overrides for this thread (``{"key": value}``).
    config: dict[str, Any] | None = None


@_strict
@attrs.frozen
class TurnOptions:
    """Per-turn overrides of ``turn/start`` (the app-server's names)."""

    approval_policy: ApprovalPolicyValue | None = None
    cwd: str | None = attrs.field(default=None, validator=[non_empty, no_nul])
    effort: str | None = None
    model: str | None = attrs.field(default=None, validator=non_empty)
    output_schema: dict[str, Any] | None = None
    personality: str | None = None
    sandbox_policy: dict[str, Any] | None = None
    service_tier: str | None = None
    summary: str | None = None
    collaboration_mode: dict[str, Any] | None = None


@_strict
@attrs.frozen
class RunOptions:
    """How a ``codex exec`` run is started; kept with the run so a restart starts it the same."""

    cwd: str | None = attrs.field(default=None, validator=[non_empty, no_nul])
    sandbox: Sandbox | None = None
    model: str | None = attrs.field(default=None, validator=[non_empty, no_nul])
    profile: str | None = attrs.field(default=None, validator=[non_empty, no_nul])
    #: Codex ``-c key=value`` overrides.
    config: list[str] = attrs.field(factory=list, validator=[no_nul, key_value_list])
    images: list[str] = attrs.field(factory=list, validator=no_nul)
    add_dirs: list[str] = attrs.field(factory=list, validator=no_nul)
    #: Extra environment for the run (over ``runs.env`` / ``child.env``).
    env: dict[str, str] = attrs.field(factory=dict, validator=[no_nul, env_names])
    skip_git_repo_check: bool = True
    timeout_s: float | None = attrs.field(default=None, validator=limit_seconds)


def _part(record: Any, base: type[P]) -> P:
    """The ``base`` record made of the fields that ``record`` (a subclass) inherited from it."""
    return base(**{f.name: getattr(record, f.name) for f in attrs.fields(base)})  # type: ignore[arg-type]


# ---- method params ------------------------------------------------------------------------------


@_strict
@attrs.frozen
class NoParams:
    """A method without parameters."""


@_strict
@attrs.frozen
class SessionCreateParams(SessionSettings):
    """``session/create``: a new thread, or ``threadId`` to resume an existing one."""

    purpose: str = attrs.field(default="general", validator=non_empty)
    thread_id: str | None = attrs.field(default=None, validator=non_empty)
    metadata: dict[str, str] = attrs.field(factory=dict)

    def settings(self) -> SessionSettings:
        return _part(self, SessionSettings)


@_strict
@attrs.frozen
class SessionListParams:
    status: SessionStatus | None = None


@_strict
@attrs.frozen
class SessionRef:
    """Methods that act on one session: ``session/get``, ``session/close``, ``turn/interrupt``."""

    session_id: str


@_strict
@attrs.frozen
class TurnStartParams(TurnOptions):
    """``turn/start``: ``input`` is text or a list of app-server input items."""

    session_id: str = attrs.field(kw_only=True)
    input: str | list[dict[str, Any]] = attrs.field(kw_only=True)
    #: Steer this running turn instead of starting a new one.
    expected_turn_id: str | None = attrs.field(default=None, kw_only=True)

    def options(self) -> TurnOptions:
        return _part(self, TurnOptions)


@_strict
@attrs.frozen
class TurnWaitParams:
    session_id: str
    turn_id: str | None = None
    timeout_s: float | None = attrs.field(default=None, validator=wait_seconds)


@_strict
@attrs.frozen
class RunCreateParams(RunOptions):
    """``run/create``: queue a ``codex exec`` run."""

    prompt: str = attrs.field(kw_only=True, validator=non_empty)
    purpose: str | None = attrs.field(default=None, kw_only=True, validator=non_empty)
    metadata: dict[str, str] = attrs.field(factory=dict, kw_only=True)
    session_id: str | None = attrs.field(default=None, kw_only=True)

    def options(self) -> RunOptions:
        return _part(self, RunOptions)


@_strict
@attrs.frozen
class RunRef:
    run_id: str


@_strict
@attrs.frozen
class RunListParams:
    status: RunStatusFilter | None = None
    session_id: str | None = None


@_strict
@attrs.frozen
class RunWaitParams:
    run_id: str
    timeout_s: float | None = attrs.field(default=None, validator=wait_seconds)


@_strict
@attrs.frozen
class ApprovalListParams:
    status: ApprovalStatusFilter | None = None
    session_id: str | None = None


@_strict
@attrs.frozen
class ApprovalRespondParams:
    approval_id: str
    decision: Decision
    #: Answers to ``item/tool/requestUserInput``: question id -> answers.
    answers: dict[str, list[str]] | None = None
    #: The content of an accepted MCP elicitation.
    content: Any = None


@_strict
@attrs.frozen
class AppServerRequestParams:
    """``appServer/request``: any app-server method, guarded by ``appserver.allow/deny``."""

    method: str = attrs.field(validator=non_empty)
    params: dict[str, Any] = attrs.field(factory=dict)


@_strict
@attrs.frozen
class ThreadListParams:
    """``thread/list``: Codex's own threads (the app-server's parameter names)."""

    cursor: str | None = None
    limit: int | None = attrs.field(default=None, validator=non_negative)
    archived: bool | None = None
    cwd: str | list[str] | None = None
    search_term: str | None = None
    source_kinds: list[str] | None = None
    model_providers: list[str] | None = None
    sort_key: str | None = None
    sort_direction: Literal["asc", "desc"] | None = None


@_strict
@attrs.frozen
class SessionForkParams:
    """``session/fork``: a new session on a fork of the session's thread (its history kept)."""

    session_id: str
    #: Keep the history up to and including this turn (default: all of it).
    last_turn_id: str | None = attrs.field(default=None, validator=non_empty)
    #: The new session's purpose (default: the original's).
    purpose: str | None = attrs.field(default=None, validator=non_empty)
    metadata: dict[str, str] = attrs.field(factory=dict)


@_strict
@attrs.frozen
class SessionRevertParams:
    """``session/revert``: drop the thread's last ``turns`` turns (files are not reverted)."""

    session_id: str
    turns: int = attrs.field(default=1, validator=lambda _i, a, v: _at_least_one(a, v))


@_strict
@attrs.frozen
class SessionRenameParams:
    session_id: str
    name: str = attrs.field(validator=non_empty)


#: The review targets Codex knows (``review/start``'s ``target.type``).
REVIEW_TARGETS = ("uncommittedChanges", "baseBranch", "commit", "custom")


def _review_target(_inst: object, attribute: attrs.Attribute[Any], value: dict[str, Any]) -> None:
    kind = value.get("type")
    if kind not in REVIEW_TARGETS:
        raise _fail(attribute, f"type must be one of {', '.join(REVIEW_TARGETS)}", ".type")


@_strict
@attrs.frozen
class ReviewStartParams:
    """``review/start``: a code review as a turn of the session (wait with ``turn/wait``)."""

    session_id: str
    #: ``{"type": "uncommittedChanges"}``, ``{"type": "baseBranch", "branch": "main"}``,
    #: ``{"type": "commit", "sha": ...}`` or ``{"type": "custom", "instructions": ...}``.
    target: dict[str, Any] = attrs.field(
        factory=lambda: {"type": "uncommittedChanges"}, validator=_review_target
    )
    delivery: Literal["inline", "detached"] | None = None


@_strict
@attrs.frozen
class ModelListParams:
    cursor: str | None = None
    limit: int | None = attrs.field(default=None, validator=non_negative)
    include_hidden: bool | None = None


@_strict
@attrs.frozen
class AccountReadParams:
    refresh_token: bool | None = None


def _at_least_one(attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise _fail(attribute, f"must be >= 1, got {value}")


@_strict
@attrs.frozen
class EventsSubscribeParams:
    #: Replay stored events with a greater seq first (omit: live events only).
    since: int | None = attrs.field(default=None, validator=non_negative)
    #: Only event types starting with this prefix.
    type: str | None = None
    session_id: str | None = None
    run_id: str | None = None


@_strict
@attrs.frozen
class EventsUnsubscribeParams:
    subscription_id: str


@_strict
@attrs.frozen
class EventsListParams:
    """``events/list``: one page of stored events after ``after``."""

    after: int = attrs.field(default=0, validator=non_negative)
    limit: int = attrs.field(default=500, validator=lambda _i, a, v: _page_limit(a, v))
    type: str | None = None
    session_id: str | None = None
    run_id: str | None = None


#: Largest page of ``events/list``, in events and (about) in bytes of JSON.
MAX_EVENTS_PAGE = 5000
MAX_PAGE_BYTES = 4 * 1024 * 1024


def _page_limit(attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= MAX_EVENTS_PAGE:
        raise _fail(attribute, f"must be between 1 and {MAX_EVENTS_PAGE}, got {value}")


async def check_directory(path: str | None, field: str) -> None:
    """Refuse a ``path`` that is not an existing directory (checked in a worker thread)."""
    if path is not None and not await trio.to_thread.run_sync(os.path.isdir, path):
        raise InvalidRequest(f"{field} {path!r} is not an existing directory", field=field)


def _structure_policy(value: Any, _type: Any) -> Any:
    if value is None or isinstance(value, str | dict):
        return value
    raise ValueError("must be a policy name (string) or a policy object")


def _structure_input(value: Any, _type: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    raise ValueError("must be text or a list of input item objects")


converter.register_structure_hook(ApprovalPolicyValue | None, _structure_policy)
converter.register_structure_hook(str | list[dict[str, Any]], _structure_input)


def _structure_cwds(value: Any, _type: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError("must be a path or a list of paths")


converter.register_structure_hook(str | list[str] | None, _structure_cwds)


def parse(cls: type[P], params: Any) -> P:
    """Structure and validate ``params`` as ``cls``; raise InvalidRequest naming the field."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object")
    try:
        check_value(params)
        record = converter.structure(params, cls)
    except InvalidValue as exc:
        raise InvalidRequest(_sentence(exc.path, exc.problem), field=exc.path or None) from None
    except Exception as exc:
        problems = describe(exc, to_camel)
        if not problems:
            raise InvalidRequest(f"invalid params: {exc}") from None
        path, problem = problems[0]
        raise InvalidRequest(_sentence(path, problem), field=path or None) from None
    return record


def _sentence(path: str, problem: str) -> str:
    if problem == "unknown key":
        return f"unknown parameter {path!r}"
    if problem == "missing":
        return f"missing required parameter {path!r}"
    return f"parameter {path!r} {problem}" if path else problem


def build(cls: type[P], **fields: Any) -> P:
    """A params record from Python keyword arguments (the daemon's and client's methods).

    Checked exactly as on the wire (the same structuring); ``None`` means "not given".
    """
    return parse(cls, {to_camel(k): v for k, v in fields.items() if v is not None})
