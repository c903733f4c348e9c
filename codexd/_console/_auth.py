"""Console login: a one-use ticket in a URL, exchanged for a session cookie; both from the token.

Whoever can read ``api-token`` can make a login ticket (``codexd console`` does, locally): an
expiry, a random nonce and an HMAC-SHA256 of both keyed by the token. The daemon accepts each
ticket once, before it expires, and answers with a session cookie (HttpOnly, SameSite=Strict):
the time it was issued and an HMAC of that time keyed by the token. So neither the URL nor the
cookie carries the token itself, a leaked URL is useless once used or after
:data:`TICKET_TTL_S`, a cookie after :data:`SESSION_TTL_S`, and replacing the token revokes
every ticket and cookie at once. The cookie is named after the port because browsers do not
keep cookies apart by port.

A cookie is worth nothing without the console's own ``Origin``: the API server admits a cookie
only on a WebSocket handshake whose Origin is one of :attr:`ConsoleAuth.origins` (other local
web servers are the same *site*, so SameSite alone would not keep them out).

Everything here compares bytes in constant time and never raises on hostile input.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable

#: Seconds a login ticket stays valid.
TICKET_TTL_S = 600
#: Seconds a console session (its cookie) stays valid.
SESSION_TTL_S = 24 * 3600
#: Used tickets remembered (until they expire); beyond, the oldest is forgotten early.
MAX_USED_TICKETS = 4096
#: Longest ticket or cookie value looked at (anything longer is refused unread).
MAX_CREDENTIAL_BYTES = 256

_LOGIN = b"codexd console login v1"
_SESSION = b"codexd console session v1"


def _sign(token: bytes, label: bytes, payload: bytes) -> bytes:
    return hmac.new(token, label + b"\0" + payload, hashlib.sha256).hexdigest().encode()


def make_ticket(token: str, *, now: float | None = None) -> str:
    """A one-use login ticket: ``EXPIRY.NONCE.HMAC`` (URL-safe ASCII)."""
    expiry = int(time.time() if now is None else now) + TICKET_TTL_S
    payload = f"{expiry}.{secrets.token_urlsafe(16)}".encode()
    return (payload + b"." + _sign(token.encode(), _LOGIN, payload)).decode()


def _verified(token: bytes, label: bytes, value: bytes) -> tuple[bytes, int] | None:
    """``(payload, its leading integer)`` if ``value`` is ``INT[.MORE].HMAC`` signed by
    ``token`` for ``label``; ``None`` for anything else."""
    if len(value) > MAX_CREDENTIAL_BYTES or not value.isascii():
        return None
    payload, dot, _mac = value.rpartition(b".")
    number = payload.partition(b".")[0]
    if not dot or not number.isdigit() or len(number) > 12:
        return None
    if not hmac.compare_digest(value, payload + b"." + _sign(token, label, payload)):
        return None
    return payload, int(number)


def loopback_names(host: str) -> list[str]:
    """The names a browser may use for ``host`` (all loopback names if it is a loopback one)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        loopback = address.is_loopback or address.is_unspecified  # 0.0.0.0 serves loopback too
    except ValueError:
        loopback = host == "localhost"
    names = ["127.0.0.1", "localhost", "[::1]", host] if loopback else [host]
    return list(dict.fromkeys(f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names))


class ConsoleAuth:
    """The console's credentials for one listener (``token`` from api-token, TCP ``port``)."""

    def __init__(self, token: bytes, host: str, port: int) -> None:
        self._token = token
        self.port = port
        names = loopback_names(host)
        #: ``Host`` header values the console answers to (DNS rebinding gets nothing).
        self.hosts = frozenset(f"{name}:{port}".encode() for name in names)
        #: Where a browser should go: the listener, by its first name (127.0.0.1 on loopback).
        self.base_url = f"http://{names[0]}:{port}"
        #: The console's own origins: the only ones a cookie is accepted from.
        self.origins = frozenset(b"http://" + h for h in self.hosts)
        self.cookie_name = f"codexd_console_{port}".encode()
        self._used: OrderedDict[bytes, int] = OrderedDict()

    # ---- login tickets ----------------------------------------------------------------------

    def redeem(self, ticket: bytes, *, now: float | None = None) -> str | None:
        """Check a login ticket and use it up: ``None`` if accepted, else why it is refused."""
        now_s = int(time.time() if now is None else now)
        verified = _verified(self._token, _LOGIN, ticket)
        if verified is None:
            return "this is not a login link of this daemon (or its token was replaced)"
        payload, expiry = verified
        if expiry < now_s or expiry > now_s + TICKET_TTL_S + 60:
            return "this login link has expired"
        for old, old_expiry in list(self._used.items()):
            if old_expiry >= now_s and len(self._used) < MAX_USED_TICKETS:
                break
            del self._used[old]
        if payload in self._used:
            return "this login link was already used"
        self._used[payload] = expiry
        return None

    # ---- session cookies --------------------------------------------------------------------

    def session_cookie(self, *, now: float | None = None) -> str:
        """A ``Set-Cookie`` value for a new console session."""
        issued = str(int(time.time() if now is None else now)).encode()
        value = (issued + b"." + _sign(self._token, _SESSION, issued)).decode()
        return (
            f"{self.cookie_name.decode()}={value}; Path=/; HttpOnly; SameSite=Strict"
            f"; Max-Age={SESSION_TTL_S}"
        )

    def has_session(
        self, headers: Iterable[tuple[bytes, bytes]], *, now: float | None = None
    ) -> bool:
        """Whether these request headers carry a valid, unexpired session cookie of ours."""
        now_s = int(time.time() if now is None else now)
        for name, value in headers:
            if name.lower() != b"cookie":
                continue
            for part in value.split(b";"):
                key, eq, cookie = part.strip().partition(b"=")
                if not eq or key != self.cookie_name:
                    continue
                verified = _verified(self._token, _SESSION, cookie)
                if verified is not None and now_s - SESSION_TTL_S <= verified[1] <= now_s + 60:
                    return True
        return False
