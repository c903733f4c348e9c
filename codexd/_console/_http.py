"""One port for the API and the console: read a connection's request head, then route it.

The API server reads the head of every new connection with h11 (bounded in bytes, and in time
by the caller's handshake timeout). A WebSocket upgrade goes on to the WebSocket server with the
bytes already read replayed (:class:`PrefixStream`); any other request is an HTTP request for
the console, answered here with h11 (one request per connection, ``Connection: close``): the
static page, the login that turns a ticket into a session cookie, and a session probe.

Cancellation: every coroutine here may be cancelled at any await (the caller's timeout); the
caller closes the stream.
"""

from __future__ import annotations

import html
import http
import importlib.resources
import urllib.parse

import attrs
import h11
import trio

from ._auth import ConsoleAuth

#: Largest request head read (request line and headers); a longer one is refused (431).
MAX_HEAD_BYTES = 16 * 1024
#: Bytes asked of the socket per read.
READ_BYTES = 64 * 1024

#: The console's files, served under /console/ (read once from the package).
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "rpc.js": "text/javascript; charset=utf-8",
    "transcript.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", _CSP),
    ("Connection", "close"),
]


class PrefixStream(trio.abc.Stream):
    """``inner`` with ``prefix`` (bytes already read from it) received again first."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self.inner = inner
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


@attrs.frozen
class Head:
    """A request head: the parsed request, every byte read so far, and its h11 connection."""

    request: h11.Request
    raw: bytes
    conn: h11.Connection = attrs.field(eq=False)

    @property
    def is_upgrade(self) -> bool:
        """Whether the client asks to switch protocols (the WebSocket API's handshake)."""
        return any(name == b"upgrade" for name, _ in self.request.headers)

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.request.headers if key == name]


async def read_head(stream: trio.abc.Stream) -> Head | None:
    """The first request head of ``stream``; ``None`` if it closed or sent a bad head (then a
    400 or 431 was sent when possible). Reads at most :data:`MAX_HEAD_BYTES` plus one read."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    raw = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            await _send_simple(stream, conn, exc.error_status_hint, "bad request")
            return None
        if isinstance(event, h11.Request):
            return Head(event, bytes(raw), conn)
        if event is not h11.NEED_DATA:
            return None
        data = bytes(await stream.receive_some(READ_BYTES))
        if not data:
            return None
        raw += data
        conn.receive_data(data)


async def _send_simple(
    stream: trio.abc.Stream, conn: h11.Connection, status: int, text: str
) -> None:
    try:
        body = text.encode()
        data = conn.send(
            h11.Response(
                status_code=status,
                reason=http.HTTPStatus(status).phrase,
                headers=[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ],
            )
        )
        await stream.send_all((data or b"") + body)
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def _page(title: str, message: str) -> bytes:
    """A small HTML page (no script) telling a person what to do."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        '<link rel=stylesheet href="/console/app.css"></head>'
        f'<body class="notice"><main><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>'
        "<p>Run <code>codexd console</code> on the daemon's machine for a new login link "
        "(<code>codexd console --open</code> opens it).</p></main></body></html>"
    ).encode()


def _reason(response: Response) -> bytes:
    return http.HTTPStatus(response.status).phrase.encode()


@attrs.frozen
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class ConsoleHttp:
    """Answers the console's HTTP requests for one listener."""

    def __init__(self, auth: ConsoleAuth | None, files: dict[str, bytes]) -> None:
        #: ``None`` on a unix socket: no browser can reach it, so no console there.
        self.auth = auth
        self.files = files

    @classmethod
    def load_files(cls) -> dict[str, bytes]:
        """The static files shipped in the package (blocking: call it in a thread)."""
        root = importlib.resources.files(__package__ or "codexd._console") / "static"
        return {name: (root / name).read_bytes() for name in STATIC_FILES}

    async def serve(self, stream: trio.abc.Stream, head: Head) -> None:
        """Answer the one request of ``head`` on ``stream``."""
        response = self.respond(head)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *_COMMON_HEADERS,
            *response.headers,
        ]
        try:
            data = head.conn.send(
                h11.Response(status_code=response.status, headers=headers, reason=_reason(response))
            )
            if head.request.method != b"HEAD":
                data = (data or b"") + (head.conn.send(h11.Data(data=response.body)) or b"")
            data = (data or b"") + (head.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            return
        await stream.send_all(data)

    def respond(self, head: Head) -> Response:
        """The response to one request (no I/O)."""
        request = head.request
        if request.method not in (b"GET", b"HEAD"):
            return Response(405, b"only GET", "text/plain", (("Allow", "GET, HEAD"),))
        auth = self.auth
        if auth is None:
            return Response(404, b"the console is served on TCP listeners only", "text/plain")
        hosts = head.header(b"host")
        if len(hosts) != 1 or hosts[0].lower() not in auth.hosts:
            return Response(421, b"unknown Host", "text/plain")
        target = urllib.parse.urlsplit(request.target.decode("ascii", "replace"))
        path = target.path
        if path in ("/", "/console"):
            return Response(303, headers=(("Location", "/console/"),))
        if path == "/console/login":
            return self._login(auth, target.query)
        if path == "/console/session":
            if auth.has_session(request.headers):
                return Response(204)
            return Response(401, b"not logged in", "text/plain")
        name = "index.html" if path == "/console/" else path.removeprefix("/console/")
        if name not in STATIC_FILES or not path.startswith("/console/"):
            return Response(404, _page("Not found", f"There is no page {path}."))
        if name == "index.html" and not auth.has_session(request.headers):
            return Response(
                401, _page("Not logged in", "This browser has no console session (or it expired).")
            )
        return Response(200, self.files[name], STATIC_FILES[name])

    def _login(self, auth: ConsoleAuth, query: str) -> Response:
        tickets = [v for k, v in urllib.parse.parse_qsl(query) if k == "ticket"]
        why = "the link has no ticket" if len(tickets) != 1 else auth.redeem(tickets[0].encode())
        if why is not None:
            return Response(401, _page("Login refused", why[0].upper() + why[1:] + "."))
        return Response(
            303,
            headers=(("Location", "/console/"), ("Set-Cookie", auth.session_cookie())),
        )
