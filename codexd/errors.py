"""The exceptions codexd raises to its callers.

Every error a caller can act on is a :class:`CodexdError` with a stable ``code`` (used as the
JSON-RPC error code by the local API) and a message that names the field or thing at fault.
"""

from __future__ import annotations


class CodexdError(Exception):
    """Base class: something the caller asked for cannot be done."""

    code = -32000

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ConfigError(CodexdError):
    """The configuration is invalid; the message names the key and where it came from."""

    code = -32010


class InvalidRequest(CodexdError):
    """A request's parameters are invalid; ``field`` names the offending one."""

    code = -32602


class NotFound(CodexdError):
    """An unknown session, run or approval id."""

    code = -32004


class NotActive(CodexdError):
    """The session is closed, or has no active turn to act on."""

    code = -32005


class WrongMode(CodexdError):
    """The daemon runs in a mode that does not offer this operation (e.g. sessions in exec mode)."""

    code = -32006


class Unavailable(CodexdError):
    """The app-server is not connected (starting, restarting or failed); try again later."""

    code = -32007


class ChildSpawnError(CodexdError):
    """The child process could not be started (missing command, permission denied, ...).

    ``transient`` is true when retrying may succeed (out of file descriptors or processes).
    """

    code = -32008

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StoreError(CodexdError):
    """The state store could not persist a change (disk full, I/O error)."""

    code = -32009


class StateDirInUse(StoreError):
    """Another daemon holds the state directory (one daemon per state dir)."""


class ListenError(CodexdError):
    """The local API cannot listen on its address (in use, not permitted, bad path)."""
