"""codexd: a local supervisor for OpenAI's Codex app-server.

The public API is re-exported here; submodules prefixed with ``_`` are private.
"""

__version__ = "0.1.0"

from .config import Config, load_config
from .daemon import Daemon, open_daemon
from .errors import (
    ChildSpawnError,
    CodexdError,
    ConfigError,
    InvalidRequest,
    NotActive,
    NotFound,
    StoreError,
    Unavailable,
    WrongMode,
)
from .records import Approval, ChildState, Event, Run, Session, Snapshot
from .store import SubscriberOverflow, Subscription

__all__ = [
    "Approval",
    "ChildSpawnError",
    "ChildState",
    "CodexdError",
    "Config",
    "ConfigError",
    "Daemon",
    "Event",
    "InvalidRequest",
    "NotActive",
    "NotFound",
    "Run",
    "Session",
    "Snapshot",
    "StoreError",
    "SubscriberOverflow",
    "Subscription",
    "Unavailable",
    "WrongMode",
    "__version__",
    "load_config",
    "open_daemon",
]
