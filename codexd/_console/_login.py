"""``console_login_url``: the one-use login link that ``codexd console`` prints or opens."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from .._errors import DaemonUnreachable
from ..client import read_api_info
from ._auth import make_ticket


def console_login_url(state_dir: Path | str) -> str:
    """A login URL for the web console of the daemon using ``state_dir``.

    Reads ``api.json`` and ``api-token`` (so only a user who may read the token gets a link)
    and signs a ticket that the daemon accepts once, within ten minutes; opening the link
    gives the browser a session cookie and lands on ``/console/``. Raises
    :class:`~codexd.DaemonUnreachable` if no daemon runs there, or if it listens on a unix
    socket (a browser cannot reach one: configure ``api.listen = "ws://127.0.0.1:PORT"``).
    """
    url, token = read_api_info(state_dir)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or parts.port is None:
        raise DaemonUnreachable(
            f"the daemon listens on {url}, which a browser cannot reach; the console needs"
            ' api.listen = "ws://127.0.0.1:PORT"'
        )
    host = parts.hostname
    if host in ("0.0.0.0", "::"):  # listening everywhere: loopback reaches it
        host = "127.0.0.1"
    netloc = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    query = urllib.parse.urlencode({"ticket": make_ticket(token)})
    return f"http://{netloc}/console/login?{query}"
