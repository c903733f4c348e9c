"""codexd's configuration: one attrs tree, loaded from TOML, then ``CODEXD_*`` env, then flags.

Precedence (later wins): built-in defaults < the TOML file (``--config`` or ``CODEXD_CONFIG``) <
environment variables < explicit overrides (CLI flags). No file is needed at all. Nested keys are
addressed with dots in overrides (``restart.policy``) and with a double underscore in the
environment (``CODEXD_RESTART__POLICY=always``; ``CODEXD_STATE_DIR`` for a top-level key).

Every error is a :class:`~codexd._errors.ConfigError` whose message names the key and where its
value came from (the file, or the environment variable), e.g.
``restart.max_restarts: expected an integer, got 'many' (from /etc/codexd.toml)``.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from ._errors import ConfigError
from ._jsoncheck import has_surrogate
from ._structerrors import describe as describe_structure_error

Mode = Literal["app-server", "exec"]
Strategy = Literal["spawn", "external"]
RestartPolicy = Literal["never", "on-failure", "always"]
ApprovalPolicy = Literal["ask", "accept", "decline"]
TimeoutDecision = Literal["decline", "cancel"]

DEFAULT_PURPOSES = ("fallback-worker", "review", "smoke", "general")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class ChildConfig:
    """How codexd reaches the app-server: spawn the child itself, or connect to an external one."""

    strategy: Strategy = "spawn"
    #: Executable to spawn; ``None`` means the Codex binary bundled by ``openai-codex-cli-bin``.
    command: str | None = None
    args: list[str] = attrs.field(factory=lambda: ["app-server"])
    cwd: str | None = None
    env: dict[str, str] = attrs.field(factory=dict)
    #: For ``external``: ws://, wss://, http(s):// (mapped to ws(s)://) or unix:// endpoint.
    endpoint: str | None = None
    #: Bytes of the child's stderr kept in memory for error messages.
    stderr_tail_bytes: int = attrs.field(default=8192, validator=_positive)

    @property
    def endpoint_url(self) -> str:
        """The app-server endpoint: ``stdio://`` for a spawned child, else the external URL."""
        if self.strategy == "external":
            return self.endpoint or ""
        return "stdio://"


@attrs.frozen
class RestartConfig:
    policy: RestartPolicy = "on-failure"
    backoff_initial_s: float = attrs.field(default=0.5, validator=_positive)
    backoff_max_s: float = attrs.field(default=30.0, validator=_positive)
    max_restarts: int = attrs.field(default=5, validator=_non_negative)
    window_s: float = attrs.field(default=60.0, validator=_positive)
    #: A child that stayed up this long resets the restart counter.
    min_uptime_s: float = attrs.field(default=10.0, validator=_non_negative)


@attrs.frozen
class StopConfig:
    #: Seconds between SIGTERM and SIGKILL when stopping a child.
    grace_s: float = attrs.field(default=5.0, validator=_non_negative)


@attrs.frozen
class RunsConfig:
    concurrency: int = attrs.field(default=2, validator=_positive)
    default_timeout_s: float = attrs.field(default=1800.0, validator=_positive)
    purposes: list[str] = attrs.field(factory=lambda: list(DEFAULT_PURPOSES))
    #: The ``codex`` executable of exec runs; unset: ``child.command`` (else the bundled one).
    command: str | None = None
    #: Extra environment of exec runs; unset: ``child.env`` (one place to configure Codex).
    env: dict[str, str] | None = None


#: App-server methods the pass-through (``appServer/request``) refuses unless configured
#: otherwise: what changes credentials, global Codex config or installed software, or sends data
#: off the machine. Their params are never recorded, even when allowed.
DEFAULT_APPSERVER_DENY = (
    "initialize",
    "account/login*",
    "account/logout",
    "account/gatewayOAuth/*",
    "account/rateLimitResetCredit/*",
    "account/sendAddCreditsNudgeEmail",
    "mcpServer/oauth/*",
    "config/value/write",
    "config/batchWrite",
    "config/*Write*",
    "*/config/write",
    "experimentalFeature/enablement/set",
    "externalAgentConfig/import*",
    "feedback/upload",
    "marketplace/*",
    "plugin/install",
    "plugin/uninstall",
    "plugin/share/*",
    "skills/extraRoots/set",
    "windowsSandbox/setupStart",
)


@attrs.frozen
class AppServerConfig:
    """What codexd may ask of the app-server beyond its own methods."""

    #: Glob patterns of methods ``appServer/request`` may call (``*`` matches ``/`` too).
    allow: list[str] = attrs.field(factory=lambda: ["*"])
    #: Glob patterns it refuses, even when ``allow`` matches.
    deny: list[str] = attrs.field(factory=lambda: list(DEFAULT_APPSERVER_DENY))
    #: Opt in to Codex's experimental API at ``initialize`` (``capabilities.experimentalApi``).
    experimental_api: bool = False


@attrs.frozen
class ApprovalsConfig:
    #: ``ask`` holds each request for an answer through the API; the others answer at once.
    policy: ApprovalPolicy = "ask"
    timeout_s: float = attrs.field(default=300.0, validator=_positive)
    on_timeout: TimeoutDecision = "decline"


@attrs.frozen
class TurnsConfig:
    #: A turn with no event for this long is checked with ``thread/read`` and settled.
    idle_timeout_s: float = attrs.field(default=600.0, validator=_positive)
    #: Timeout of every JSON-RPC request to the app-server.
    request_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    #: How long ``turn/interrupt`` may take before the turn is failed.
    interrupt_timeout_s: float = attrs.field(default=10.0, validator=_positive)


@attrs.frozen
class ApiConfig:
    enabled: bool = True
    #: ``ws://HOST:PORT`` (loopback by default; port 0 picks a free one) or ``unix:///path``.
    listen: str = "ws://127.0.0.1:8765"
    allowed_origins: list[str] = attrs.field(factory=list)
    #: Events buffered per subscriber before a lagging one is disconnected.
    subscriber_buffer: int = attrs.field(default=10_000, validator=_positive)


@attrs.frozen
class LogConfig:
    max_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=_positive)
    backups: int = attrs.field(default=3, validator=_non_negative)


@attrs.frozen
class EventsConfig:
    recent_limit: int = attrs.field(default=200, validator=_positive)


#: How a committed batch reaches the disk (SQLite ``synchronous`` in WAL mode).
Durability = Literal["full", "normal"]


@attrs.frozen
class StoreConfig:
    """``full`` (the default): a batch is on disk when it is acknowledged, power loss included.
    ``normal``: one fsync fewer per batch; a crash of codexd (kill -9 included) loses nothing,
    but a power loss or OS crash may lose the last batches acknowledged before it."""

    durability: Durability = "full"


def _webhook_url(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        parsed = urllib.parse.urlsplit(value)
        parsed.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise ValueError(
            f"{attribute.name} must be an http(s) URL ({exc}), got {value!r}"
        ) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{attribute.name} must be an http:// or https:// URL, got {value!r}")


@attrs.frozen
class WebhookConfig:
    """One receiver of event notifications (``[[notify.webhooks]]``)."""

    url: str = attrs.field(validator=_webhook_url)
    #: Event type prefixes to send (``"approval.requested"``, ``"run."``); empty: every event.
    events: list[str] = attrs.field(factory=list)
    #: Key of the ``X-Codexd-Signature: sha256=<hex>`` HMAC of the body; none: unsigned.
    secret: str | None = None


@attrs.frozen
class NotifyConfig:
    """Webhook notifications: a POST per matching event, retried, never blocking the daemon."""

    webhooks: list[WebhookConfig] = attrs.field(factory=list)
    #: Deliveries waiting per webhook; when full, the oldest is dropped (and counted).
    queue_size: int = attrs.field(default=1000, validator=_positive)
    #: Tries per delivery (the first one included) before it is given up.
    max_attempts: int = attrs.field(default=6, validator=_positive)
    backoff_initial_s: float = attrs.field(default=1.0, validator=_positive)
    backoff_max_s: float = attrs.field(default=60.0, validator=_positive)
    #: Seconds one POST may take (connect, send, status line).
    timeout_s: float = attrs.field(default=10.0, validator=_positive)


def default_state_dir() -> str:
    """``$XDG_STATE_HOME/codexd``, else ``~/.local/state/codexd``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "codexd")


@attrs.frozen
class Config:
    """The whole resolved configuration."""

    mode: Mode = "app-server"
    state_dir: str = attrs.field(factory=default_state_dir)
    child: ChildConfig = attrs.field(factory=ChildConfig)
    restart: RestartConfig = attrs.field(factory=RestartConfig)
    stop: StopConfig = attrs.field(factory=StopConfig)
    runs: RunsConfig = attrs.field(factory=RunsConfig)
    approvals: ApprovalsConfig = attrs.field(factory=ApprovalsConfig)
    turns: TurnsConfig = attrs.field(factory=TurnsConfig)
    api: ApiConfig = attrs.field(factory=ApiConfig)
    log: LogConfig = attrs.field(factory=LogConfig)
    events: EventsConfig = attrs.field(factory=EventsConfig)
    store: StoreConfig = attrs.field(factory=StoreConfig)
    appserver: AppServerConfig = attrs.field(factory=AppServerConfig)
    notify: NotifyConfig = attrs.field(factory=NotifyConfig)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)


def _bool_from(value: Any, _type: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _int_from(value: Any, _type: Any) -> int:
    if isinstance(value, bool | float):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None


def _float_from(value: Any, _type: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def _str_from(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    if has_surrogate(value) or "\x00" in value:
        raise ValueError("is not valid text (a NUL byte or a lone surrogate)")
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(bool, _bool_from)
    conv.register_structure_hook(int, _int_from)
    conv.register_structure_hook(float, _float_from)
    conv.register_structure_hook(str, _str_from)
    return conv


_converter = _make_converter()


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and key != "env":
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _env_value(raw: str) -> Any:
    """Environment values are strings; JSON arrays/objects are accepted for list/dict keys."""
    stripped = raw.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            return raw
    return raw


#: Keys whose values are lists: a plain comma-separated env value is split for these.
_LIST_KEYS = frozenset(
    {"child.args", "runs.purposes", "api.allowed_origins", "appserver.allow", "appserver.deny"}
)


def env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """``CODEXD_*`` variables as ``{dotted.key: (value, "env NAME")}``."""
    out: dict[str, tuple[Any, str]] = {}
    for name, raw in environ.items():
        if not name.startswith("CODEXD_") or name in ("CODEXD_CONFIG",):
            continue
        if name in ("CODEXD_DAEMON_ID", "CODEXD_SERVER_ENDPOINT"):
            # Set by codexd in its own children's environment, never configuration.
            continue
        key = name[len("CODEXD_") :].lower().replace("__", ".")
        value: Any = _env_value(raw)
        if key in _LIST_KEYS and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        out[key] = (value, f"env {name}")
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Resolve the configuration from defaults, a TOML file, the environment and overrides.

    ``path`` defaults to ``$CODEXD_CONFIG``; with neither, no file is read. ``overrides`` maps
    dotted keys (``"restart.policy"``) to values, as CLI flags give them.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get("CODEXD_CONFIG"):
        path = environ["CODEXD_CONFIG"]
    tree: dict[str, Any] = {}
    sources: dict[str, str] = {}
    file_label = "defaults"
    if path is not None:
        file_label = str(path)
        try:
            with open(path, "rb") as fh:
                tree = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
        for key in _flatten(tree):
            sources[key] = str(path)
    for key, (value, source) in env_overrides(environ).items():
        _set_path(tree, key, value)
        sources[key] = source
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        _set_path(tree, key, value)
        sources[key] = "command line"
    try:
        config = _converter.structure(tree, Config)
    except (ClassValidationError, ForbiddenExtraKeysError) as exc:
        problems = describe_structure_error(exc)
        lines = []
        for key, problem in problems:
            source = sources.get(key) or _source_of_prefix(sources, key) or file_label
            lines.append(f"{key}: {problem} (from {source})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc} (from {file_label})") from None
    _check_semantics(config, sources, file_label)
    return config


def _source_of_prefix(sources: Mapping[str, str], key: str) -> str | None:
    for known, source in sources.items():
        if known.startswith(key + ".") or key.startswith(known + "."):
            return source
    return None


def _check_semantics(config: Config, sources: Mapping[str, str], label: str) -> None:
    def fail(key: str, problem: str) -> None:
        raise ConfigError(
            f"invalid configuration:\n  {key}: {problem} (from {sources.get(key, label)})"
        )

    if config.child.strategy == "external":
        endpoint = config.child.endpoint
        if not endpoint:
            fail("child.endpoint", "required when child.strategy is 'external'")
        elif not endpoint.startswith(("ws://", "wss://", "http://", "https://", "unix://")):
            fail(
                "child.endpoint",
                f"unsupported scheme in {endpoint!r}; use ws://, wss://, http(s):// or unix://",
            )
    if config.restart.backoff_max_s < config.restart.backoff_initial_s:
        fail("restart.backoff_max_s", "must be >= restart.backoff_initial_s")
    if not config.runs.purposes:
        fail("runs.purposes", "must list at least one purpose")
    if not config.state_dir.strip():
        fail("state_dir", "must not be empty (give a directory path)")
    listen = config.api.listen
    problem = listen_problem(listen)
    if problem:
        fail("api.listen", problem)


def listen_problem(listen: str) -> str | None:
    """Why ``listen`` is not a usable API address (``None`` if it is)."""
    usage = "use ws://HOST:PORT (port 0 picks a free one) or unix:///absolute/path"
    if listen.startswith("unix://"):
        path = listen[len("unix://") :]
        if not path.startswith("/"):
            return f"{listen!r} needs an absolute socket path; {usage}"
        return None
    if not listen.startswith("ws://"):
        return f"unsupported address {listen!r}; {usage}"
    try:
        parsed = urllib.parse.urlsplit(listen)
        port = parsed.port
    except ValueError as exc:
        return f"invalid address {listen!r} ({exc}); {usage}"
    if not parsed.hostname or port is None:
        return f"{listen!r} needs a host and a port; {usage}"
    if parsed.path not in ("", "/") or parsed.query:
        return f"{listen!r} must not have a path; {usage}"
    return None


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved configuration as plain data (for ``codexd config show``)."""
    data: dict[str, Any] = _converter.unstructure(config)
    return data


__all__ = [
    "DEFAULT_APPSERVER_DENY",
    "ApiConfig",
    "AppServerConfig",
    "ApprovalsConfig",
    "ChildConfig",
    "Config",
    "EventsConfig",
    "LogConfig",
    "NotifyConfig",
    "RestartConfig",
    "RunsConfig",
    "StopConfig",
    "StoreConfig",
    "TurnsConfig",
    "WebhookConfig",
    "config_to_dict",
    "env_overrides",
    "load_config",
]
