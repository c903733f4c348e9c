"""The one tree of exceptions codexd raises, each with its own JSON-RPC error code.

Every error a caller can act on is a :class:`CodexdError` with a stable ``code`` (the error code
of the local API) and a message that names the field or thing at fault; ``field`` names the
parameter when there is one. No two classes share a code::

    CodexdError                     -32000
    ├── ProtocolError               -32600  a JSON-RPC peer broke the protocol (or we did)
    │   └── LocalProtocolError              codexd misused the sans-IO core (a bug here)
    ├── InvalidRequest              -32602  bad params; ``field`` names the path
    ├── IllegalTransition           -32603  a status change its state table forbids (a bug)
    ├── ConfigError                 -32010
    ├── NotFound                    -32004
    ├── NotActive                   -32005
    ├── WrongMode                   -32006
    ├── Unavailable                 -32007  the app-server is not connected
    │   └── TransportClosed         -32015  ... and closed before the answer came
    ├── ChildSpawnError             -32008
    ├── StoreError                  -32009
    │   └── StateDirInUse           -32011
    ├── ListenError                 -32012
    ├── AppServerTimeout            -32013  the app-server did not answer in time
    ├── AppServerError              -32014  the app-server answered with an error
    │   └── RelayedError            (its code) relayed whole by appServer/request
    ├── SubscriberOverflow          -32016  a subscriber fell behind and was dropped
    ├── CallTimeout                 -32017  (client) the daemon did not answer in time
    ├── DaemonUnreachable           -32003  (client) no daemon answers
    └── ApiError                    (client) the daemon's own code: the error it answered
"""

from __future__ import annotations

from typing import Any


class CodexdError(Exception):
    """Base class: something the caller asked for cannot be done."""

    code = -32000

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ProtocolError(CodexdError):
    """Base of the two "who broke the protocol" errors, as in h11."""

    code = -32600


class LocalProtocolError(ProtocolError):
    """This side misused the sans-IO core: params that are not an object, a value JSON cannot
    encode, data fed after EOF. A bug in codexd, never the peer's fault."""


class InvalidRequest(CodexdError):
    """A request's parameters are invalid; ``field`` names the offending one (a path)."""

    code = -32602


class IllegalTransition(CodexdError):
    """A status change that its state table forbids (``completed -> running``): a bug."""

    code = -32603


class ConfigError(CodexdError):
    """The configuration is invalid; the message names the key and where it came from."""

    code = -32010


class NotFound(CodexdError):
    """An unknown session, run, turn or approval id."""

    code = -32004


class NotActive(CodexdError):
    """The session is closed, has no turn to act on, or the approval is already decided."""

    code = -32005


class WrongMode(CodexdError):
    """The daemon runs in a mode that does not offer this operation (sessions in exec mode)."""

    code = -32006


class Unavailable(CodexdError):
    """The app-server is not connected (starting, restarting or failed); try again later."""

    code = -32007


class TransportClosed(Unavailable):
    """The connection to the app-server closed before the request was answered."""

    code = -32015


class ChildSpawnError(CodexdError):
    """The child process could not be started (missing command, permission denied, ...).

    ``transient`` is true when retrying may succeed (out of file descriptors or processes).
    """

    code = -32008

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class StoreError(CodexdError):
    """The state store could not persist a change (disk full, I/O error, degraded, closed)."""

    code = -32009


class StateDirInUse(StoreError):
    """Another daemon holds the state directory (one daemon per state dir)."""

    code = -32011


class ListenError(CodexdError):
    """The local API cannot listen on its address (in use, not permitted, bad path)."""

    code = -32012


class AppServerTimeout(CodexdError):
    """The app-server did not answer a request in time."""

    code = -32013


class AppServerError(CodexdError):
    """The app-server answered a request with a JSON-RPC error (kept in ``rpc_code`` etc.)."""

    code = -32014

    def __init__(self, method: str, rpc_code: int, rpc_message: str, data: Any = None) -> None:
        super().__init__(f"app-server {method} failed ({rpc_code}): {rpc_message}")
        self.method = method
        self.rpc_code = rpc_code
        self.rpc_message = rpc_message
        self.data = data


class RelayedError(AppServerError):
    """An app-server error relayed to an API caller as is: its code, message and data
    (``appServer/request``)."""

    def __init__(self, method: str, rpc_code: int, rpc_message: str, data: Any = None) -> None:
        super().__init__(method, rpc_code, rpc_message, data)
        self.code = rpc_code
        self.message = rpc_message


class SubscriberOverflow(CodexdError):
    """A subscriber fell too far behind and was dropped; resubscribe with ``since=last_seq``."""

    code = -32016

    def __init__(self, last_seq: int) -> None:
        super().__init__(
            f"subscriber fell behind and was dropped after seq {last_seq};"
            f" subscribe again with since={last_seq}"
        )
        self.last_seq = last_seq


class CallTimeout(CodexdError):
    """A client call got no answer from the daemon within its timeout."""

    code = -32017


class DaemonUnreachable(CodexdError):
    """No daemon answers at the address in ``api.json`` (or there is no ``api.json``)."""

    code = -32003


class ApiError(CodexdError):
    """The daemon answered a client's call with a JSON-RPC error; ``code`` is the daemon's."""

    def __init__(self, code: int, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code
