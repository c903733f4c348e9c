"""The web console's HTTP side and its WebSocket admission, byte by byte (no browser).

The browser itself is in tests/test_console_browser.py.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import h11
import pytest
import trio
import trio_websocket

from codexd import ApiConfig, Config, Daemon, open_daemon
from codexd._console._auth import TICKET_TTL_S, ConsoleAuth, make_ticket
from codexd._console._login import console_login_url
from codexd.client import DaemonUnreachable, open_client, read_api_info


@asynccontextmanager
async def console_daemon(
    base_config: Config, listen: str = "ws://127.0.0.1:0"
) -> AsyncIterator[Daemon]:
    config = attrs.evolve(base_config, mode="exec", api=ApiConfig(listen=listen))
    with trio.fail_after(30):
        async with open_daemon(config) as daemon:
            yield daemon


@attrs.frozen
class Answer:
    status: int
    headers: dict[bytes, list[bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes:
        (value,) = self.headers[name]
        return value


async def http(
    port: int, target: str, headers: list[tuple[str, str]] | None = None, method: str = "GET"
) -> Answer:
    """One HTTP/1.1 request to 127.0.0.1:port (Host 127.0.0.1:port unless given)."""
    given = headers or []
    if not any(k.lower() == "host" for k, _ in given):
        given = [("Host", f"127.0.0.1:{port}"), *given]
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    try:
        await stream.send_all(
            (conn.send(h11.Request(method=method, target=target, headers=given)) or b"")
            + (conn.send(h11.EndOfMessage()) or b"")
        )
        response: Any = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        found: dict[bytes, list[bytes]] = {}
        for name, value in response.headers:
            found.setdefault(name, []).append(value)
        return Answer(response.status_code, found, body)
    finally:
        await stream.aclose()


def port_of(daemon: Daemon) -> int:
    return int(str(daemon.info.api_url).rsplit(":", 1)[1])


async def log_in(daemon: Daemon) -> str:
    """Follow a fresh login link; the ``name=value`` of the session cookie it sets."""
    link = urllib.parse.urlsplit(console_login_url(daemon.config.state_path))
    answer = await http(port_of(daemon), f"{link.path}?{link.query}")
    assert answer.status == 303, answer
    return answer.header(b"set-cookie").split(b";")[0].decode()


async def ws_status(port: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    """``None`` if the API accepted the handshake (and answered daemon/status), else the status."""
    try:
        async with trio_websocket.open_websocket_url(
            f"ws://127.0.0.1:{port}/", extra_headers=headers
        ) as ws:
            await ws.send_message(
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "daemon/status", "params": {}})
            )
            assert json.loads(await ws.get_message())["result"]["daemon"]["status"] == "running"
            return None
    except trio_websocket.ConnectionRejected as exc:
        return int(exc.status_code)


async def test_login_link_gives_a_strict_httponly_cookie_once(base_config: Config) -> None:
    async with console_daemon(base_config) as daemon:
        port = port_of(daemon)
        url = console_login_url(base_config.state_dir)
        assert url.startswith(f"http://127.0.0.1:{port}/console/login?ticket=")
        _, token = read_api_info(base_config.state_dir)
        assert token not in url  # the link carries a signed ticket, never the token
        info = json.loads((Path(base_config.state_dir) / "api.json").read_text())
        assert info["console"] == f"http://127.0.0.1:{port}/console/"

        target = url.split(str(port), 1)[1]
        answer = await http(port, target)
        assert answer.status == 303
        assert answer.header(b"location") == b"/console/"
        cookie = answer.header(b"set-cookie").decode()
        name_value, *attributes = [part.strip() for part in cookie.split(";")]
        assert name_value.startswith(f"codexd_console_{port}=")
        assert token not in cookie
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes)
        assert answer.header(b"referrer-policy") == b"no-referrer"
        assert answer.header(b"cache-control") == b"no-store"

        again = await http(port, target)  # the same link a second time
        assert again.status == 401
        assert b"already used" in again.body
        assert b"set-cookie" not in again.headers

        page = await http(port, "/console/", [("Cookie", name_value)])
        assert page.status == 200
        assert b'<script type="module" src="/console/app.js">' in page.body
        assert b"script-src 'self'" in page.header(b"content-security-policy")
        assert page.header(b"x-frame-options") == b"DENY"
        assert (await http(port, "/console/session", [("Cookie", name_value)])).status == 204


async def test_pages_without_a_session_or_with_a_bad_ticket_are_refused(
    base_config: Config,
) -> None:
    async with console_daemon(base_config) as daemon:
        port = port_of(daemon)
        _, token = read_api_info(base_config.state_dir)
        not_logged_in = await http(port, "/console/")
        assert not_logged_in.status == 401
        assert b"codexd console" in not_logged_in.body
        assert (await http(port, "/console/session")).status == 401
        assert (
            await http(port, "/console/", [("Cookie", f"codexd_console_{port}=1.abc")])
        ).status == 401
        # The scripts hold no secret; they are served to anyone who asks the right Host.
        assert (await http(port, "/console/app.js")).status == 200
        assert (await http(port, "/")).header(b"location") == b"/console/"
        assert (await http(port, "/console/nope.js")).status == 404
        assert (await http(port, "/console/../api-token")).status == 404
        assert (await http(port, "/console/", method="POST")).status == 405

        good = make_ticket(token)
        # Tampered: the last hex digit of the HMAC changed (to another digit, whatever it was).
        tampered = good[:-1] + ("1" if good.endswith("0") else "0")
        for bad in (
            make_ticket("some other token"),  # signed with another key
            make_ticket(token, now=0),  # long expired
            tampered,
            f"{10**11}.x." + "0" * 64,
            "garbage",
            "é",
        ):
            target = "/console/login?" + urllib.parse.urlencode({"ticket": bad})
            answer = await http(port, target)
            assert answer.status == 401, bad
            assert b"set-cookie" not in answer.headers
        assert (await http(port, "/console/login")).status == 401

        # DNS rebinding: another name that resolves here gets nothing, not even the pages.
        ticket = urllib.parse.urlsplit(console_login_url(base_config.state_dir)).query
        evil = await http(port, f"/console/login?{ticket}", [("Host", f"evil.example:{port}")])
        assert evil.status == 421
        assert b"set-cookie" not in evil.headers
        # localhost is the same listener: it may log in too.
        local = await http(port, f"/console/login?{ticket}", [("Host", f"localhost:{port}")])
        assert local.status == 303


async def test_the_api_admits_a_cookie_only_from_the_consoles_own_origin(
    base_config: Config,
) -> None:
    async with console_daemon(base_config) as daemon:
        port = port_of(daemon)
        cookie = (b"Cookie", (await log_in(daemon)).encode())
        own = (b"Origin", f"http://127.0.0.1:{port}".encode())
        assert await ws_status(port, [cookie, own]) is None
        assert (
            await ws_status(port, [cookie, (b"Origin", f"http://localhost:{port}".encode())])
            is None
        )
        # Another web server on this host is the same site: its page sends the cookie too.
        assert await ws_status(port, [cookie, (b"Origin", b"http://127.0.0.1:9")]) == 403
        assert await ws_status(port, [cookie, (b"Origin", b"https://evil.example")]) == 403
        assert await ws_status(port, [cookie]) == 403  # a cookie needs the Origin
        assert await ws_status(port, [own]) == 401  # no cookie, no bearer
        assert await ws_status(port, []) == 401
        forged = (b"Cookie", f"codexd_console_{port}=9999999999.{'0' * 64}".encode())
        assert await ws_status(port, [forged, own]) == 401
        other_port = (b"Cookie", (await log_in(daemon)).replace(str(port), "1", 1).encode())
        assert await ws_status(port, [other_port, own]) == 401
        # Existing clients are unchanged: a bearer token, with or without an allowed Origin.
        _, token = read_api_info(base_config.state_dir)
        bearer = (b"Authorization", f"Bearer {token}".encode())
        assert await ws_status(port, [bearer]) is None
        assert await ws_status(port, [bearer, own]) is None
        assert await ws_status(port, [bearer, (b"Origin", b"http://127.0.0.1:9")]) == 403
        # A wrong bearer is not rescued by a good cookie.
        assert await ws_status(port, [(b"Authorization", b"Bearer nope"), cookie, own]) == 401
        async with open_client(base_config.state_dir) as client:
            assert (await client.call("daemon/status"))["daemon"]["status"] == "running"


async def test_silent_and_garbage_connections_still_time_out_or_get_400(
    base_config: Config,
) -> None:
    async with console_daemon(base_config) as daemon:
        port = port_of(daemon)
        garbage = await trio.open_tcp_stream("127.0.0.1", port)
        await garbage.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        assert (await garbage.receive_some(100)).startswith(b"HTTP/1.1 400")
        await garbage.aclose()
        huge = await trio.open_tcp_stream("127.0.0.1", port)
        await huge.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000)
        assert (await huge.receive_some(100)).startswith(b"HTTP/1.1 431")
        await huge.aclose()
        silent = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):  # HANDSHAKE_TIMEOUT_S is 5
            assert await silent.receive_some(100) == b""
        await silent.aclose()


async def test_no_console_on_a_unix_socket(base_config: Config, tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    async with console_daemon(base_config, listen=f"unix://{path}"):
        with pytest.raises(DaemonUnreachable, match="browser cannot reach"):
            console_login_url(base_config.state_dir)
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(b"GET /console/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 404")
        await stream.aclose()
        async with open_client(base_config.state_dir) as client:  # the API is unchanged there
            assert (await client.call("daemon/status"))["daemon"]["status"] == "running"


def test_tickets_expire_and_are_used_once() -> None:
    auth = ConsoleAuth(b"t" * 43, "127.0.0.1", 8765)
    ticket = make_ticket("t" * 43, now=1000).encode()
    assert auth.redeem(ticket, now=1000 + TICKET_TTL_S + 1) == "this login link has expired"
    assert auth.redeem(ticket, now=1001) is None
    assert auth.redeem(ticket, now=1002) == "this login link was already used"
    cookie = auth.session_cookie(now=1000).split(";")[0].encode()
    assert auth.has_session([(b"cookie", b"a=b; " + cookie)], now=1000)
    assert not auth.has_session([(b"cookie", cookie)], now=1000 + 2 * 24 * 3600)
    assert auth.origins == {
        b"http://127.0.0.1:8765",
        b"http://localhost:8765",
        b"http://[::1]:8765",
    }
