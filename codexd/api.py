"""The local control API: JSON-RPC 2.0 over WebSocket (trio-websocket), loopback or unix socket.

Every connection must present ``Authorization: Bearer <token>`` (the token lives in
``<state_dir>/api-token``, mode 0600, created once and kept across restarts); a request whose
``Origin`` header is not in ``api.allowed_origins`` is refused at the handshake, so a web page
in a browser cannot drive the daemon. Each request is served in its own task, so a long
``turn/wait`` never holds up the next request on the same connection.

Event subscriptions (``events/subscribe``) replay stored events after ``since`` and then stream
live ``event`` notifications in seq order with no gap and no duplicate. Each subscription has
a bounded buffer: a subscriber that falls behind gets an ``events/dropped`` notification naming
the last seq it got, and the connection is closed (code 4008); it reconnects with ``since``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio_websocket

from .errors import CodexdError, InvalidRequest
from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Connection,
    Notification,
    ProtocolIssue,
    Request,
    classify,
)
from .records import to_wire
from .store import SubscriberOverflow

if TYPE_CHECKING:
    from .daemon import Daemon

#: Largest API message accepted; a larger one closes the connection with 1009.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: Close code sent to a subscriber that fell behind.
CLOSE_LAGGING = 4008

JsonObject = dict[str, Any]
Handler = Callable[["Daemon", JsonObject], Awaitable[Any]]

_NUMBER = (int, float)


ParamSpec = Mapping[str, tuple[tuple[type, ...], bool]]


def _check(params: JsonObject, spec: ParamSpec) -> JsonObject:
    """Validate ``params`` against ``{name: (types, required)}``; errors name the field."""
    for name in params:
        if name not in spec:
            raise InvalidRequest(f"unknown parameter {name!r}", field=name)
    for name, (types, required) in spec.items():
        if name not in params or params[name] is None:
            if required:
                raise InvalidRequest(f"missing required parameter {name!r}", field=name)
            continue
        value = params[name]
        if isinstance(value, bool) and bool not in types:
            raise InvalidRequest(f"parameter {name!r} has the wrong type", field=name)
        if not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise InvalidRequest(f"parameter {name!r} must be {wanted}", field=name)
    return params


_S = (str,)
_OPT_S = ((str,), False)
_REQ_S = ((str,), True)
_OPT_OBJ = ((dict,), False)
_OPT_NUM = (_NUMBER, False)

SESSION_CREATE: ParamSpec = {
    "purpose": _OPT_S,
    "cwd": _OPT_S,
    "model": _OPT_S,
    "modelProvider": _OPT_S,
    "approvalPolicy": ((str, dict), False),
    "sandbox": _OPT_S,
    "baseInstructions": _OPT_S,
    "developerInstructions": _OPT_S,
    "personality": _OPT_S,
    "serviceTier": _OPT_S,
    "config": _OPT_OBJ,
    "threadId": _OPT_S,
    "metadata": _OPT_OBJ,
}

TURN_START: ParamSpec = {
    "sessionId": _REQ_S,
    "input": ((str, list), True),
    "expectedTurnId": _OPT_S,
    "approvalPolicy": ((str, dict), False),
    "cwd": _OPT_S,
    "effort": _OPT_S,
    "model": _OPT_S,
    "outputSchema": _OPT_OBJ,
    "personality": _OPT_S,
    "sandboxPolicy": _OPT_OBJ,
    "serviceTier": _OPT_S,
    "summary": _OPT_S,
    "collaborationMode": _OPT_OBJ,
}

RUN_CREATE: ParamSpec = {
    "prompt": _REQ_S,
    "cwd": _OPT_S,
    "sandbox": _OPT_S,
    "model": _OPT_S,
    "profile": _OPT_S,
    "config": ((list,), False),
    "images": ((list,), False),
    "addDirs": ((list,), False),
    "env": _OPT_OBJ,
    "skipGitRepoCheck": ((bool,), False),
    "timeoutS": _OPT_NUM,
    "purpose": _OPT_S,
    "metadata": _OPT_OBJ,
    "sessionId": _OPT_S,
}


def _seconds(params: JsonObject) -> float | None:
    value = params.get("timeoutS")
    if value is not None and value < 0:
        raise InvalidRequest("timeoutS must be >= 0", field="timeoutS")
    return float(value) if value is not None else None


async def _status(d: Daemon, p: JsonObject) -> Any:
    _check(p, {})
    return to_wire(d.status())


async def _restart_child(d: Daemon, p: JsonObject) -> Any:
    _check(p, {})
    d.restart_child()
    return {"restarting": True}


async def _session_create(d: Daemon, p: JsonObject) -> Any:
    _check(p, SESSION_CREATE)
    session = await d.create_session(
        p.get("purpose") or "general",
        cwd=p.get("cwd"),
        model=p.get("model"),
        model_provider=p.get("modelProvider"),
        approval_policy=p.get("approvalPolicy"),
        sandbox=p.get("sandbox"),
        base_instructions=p.get("baseInstructions"),
        developer_instructions=p.get("developerInstructions"),
        personality=p.get("personality"),
        service_tier=p.get("serviceTier"),
        config=p.get("config"),
        thread_id=p.get("threadId"),
        metadata=p.get("metadata"),
    )
    return to_wire(session)


async def _session_list(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"status": _OPT_S})
    return {"sessions": to_wire(d.list_sessions(status=p.get("status")))}


async def _session_get(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"sessionId": _REQ_S})
    return to_wire(d.get_session(p["sessionId"]))


async def _session_close(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"sessionId": _REQ_S})
    return to_wire(await d.close_session(p["sessionId"]))


async def _turn_start(d: Daemon, p: JsonObject) -> Any:
    _check(p, TURN_START)
    overrides = {k: v for k, v in p.items() if k not in ("sessionId", "input", "expectedTurnId")}
    accepted = await d.start_turn(
        p["sessionId"], p["input"], expected_turn_id=p.get("expectedTurnId"), **overrides
    )
    return to_wire(accepted)


async def _turn_interrupt(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"sessionId": _REQ_S})
    return to_wire(await d.interrupt_turn(p["sessionId"]))


async def _turn_wait(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"sessionId": _REQ_S, "turnId": _OPT_S, "timeoutS": _OPT_NUM})
    return to_wire(await d.wait_turn(p["sessionId"], p.get("turnId"), _seconds(p)))


async def _run_create(d: Daemon, p: JsonObject) -> Any:
    _check(p, RUN_CREATE)
    run = await d.create_run(
        p["prompt"],
        cwd=p.get("cwd"),
        sandbox=p.get("sandbox"),
        model=p.get("model"),
        profile=p.get("profile"),
        config=p.get("config"),
        images=p.get("images"),
        add_dirs=p.get("addDirs"),
        env=p.get("env"),
        skip_git_repo_check=p.get("skipGitRepoCheck", True),
        timeout_s=p.get("timeoutS"),
        purpose=p.get("purpose"),
        metadata=p.get("metadata"),
        session_id=p.get("sessionId"),
    )
    return to_wire(run)


async def _run_get(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"runId": _REQ_S})
    return to_wire(d.get_run(p["runId"]))


async def _run_list(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"status": _OPT_S, "sessionId": _OPT_S})
    return {"runs": to_wire(d.list_runs(status=p.get("status"), session_id=p.get("sessionId")))}


async def _run_cancel(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"runId": _REQ_S})
    return to_wire(await d.cancel_run(p["runId"]))


async def _run_wait(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"runId": _REQ_S, "timeoutS": _OPT_NUM})
    return to_wire(await d.wait_run(p["runId"], _seconds(p)))


async def _approval_list(d: Daemon, p: JsonObject) -> Any:
    _check(p, {"status": _OPT_S, "sessionId": _OPT_S})
    approvals = d.list_approvals(status=p.get("status"), session_id=p.get("sessionId"))
    return {"approvals": to_wire(approvals)}


async def _approval_respond(d: Daemon, p: JsonObject) -> Any:
    _check(
        p,
        {
            "approvalId": _REQ_S,
            "decision": _REQ_S,
            "answers": _OPT_OBJ,
            "content": ((object,), False),
        },
    )
    approval = await d.respond_approval(
        p["approvalId"], p["decision"], answers=p.get("answers"), content=p.get("content")
    )
    return to_wire(approval)


METHODS: dict[str, Handler] = {
    "daemon/status": _status,
    "daemon/restartChild": _restart_child,
    "session/create": _session_create,
    "session/list": _session_list,
    "session/get": _session_get,
    "session/close": _session_close,
    "turn/start": _turn_start,
    "turn/interrupt": _turn_interrupt,
    "turn/wait": _turn_wait,
    "run/create": _run_create,
    "run/get": _run_get,
    "run/list": _run_list,
    "run/cancel": _run_cancel,
    "run/wait": _run_wait,
    "approval/list": _approval_list,
    "approval/respond": _approval_respond,
}


def load_or_create_token(state_dir: Path) -> str:
    """The API token in ``state_dir/api-token`` (0600), created once and kept across restarts."""
    path = state_dir / "api-token"
    try:
        token = path.read_text().strip()
        if token:
            os.chmod(path, 0o600)
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)
    return token


class _ApiConnection:
    """One client connection: its requests, its subscriptions, its writes."""

    def __init__(self, server: ApiServer, ws: trio_websocket.WebSocketConnection) -> None:
        self.server = server
        self.ws = ws
        self.rpc = Connection(strict=True, emit_jsonrpc_field=True)
        self._write_lock = trio.Lock()
        self._subscriptions: dict[str, trio.CancelScope] = {}

    async def send(self, data: bytes) -> None:
        async with self._write_lock:
            await self.ws.send_message(data.rstrip(b"\n").decode("utf-8"))

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    message = await self.ws.get_message()
                    self._dispatch(nursery, message)
            except trio_websocket.ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()

    def _dispatch(self, nursery: trio.Nursery, message: str | bytes) -> None:
        try:
            obj = json.loads(message)
        except (ValueError, UnicodeDecodeError) as exc:
            nursery.start_soon(self._send_error, None, PARSE_ERROR, f"parse error: {exc}", None)
            return
        if isinstance(obj, list):
            # Batches are not supported; say so for each entry would invite abuse. One error.
            nursery.start_soon(
                self._send_error, None, INVALID_REQUEST, "batch requests are not supported", None
            )
            return
        msg = classify(obj, strict=True)
        if isinstance(msg, ProtocolIssue):
            rid = obj.get("id") if isinstance(obj, dict) else None
            rid = rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None
            nursery.start_soon(
                self._send_error, rid, INVALID_REQUEST, f"invalid request: {msg.detail}", None
            )
            return
        if isinstance(msg, Notification):
            return  # clients have nothing to notify us of; ignore per JSON-RPC
        if not isinstance(msg, Request):
            return  # responses from a client: nothing of ours is pending
        nursery.start_soon(self._handle, nursery, msg)

    async def _send_error(
        self, rid: int | str | None, code: int, message: str, field: str | None
    ) -> None:
        data = {"field": field} if field else None
        with contextlib.suppress(trio_websocket.ConnectionClosed, trio.BrokenResourceError):
            await self.send(self.rpc.send_error(rid, code, message, data))

    async def _handle(self, nursery: trio.Nursery, request: Request) -> None:
        params = request.params if request.params is not None else {}
        if not isinstance(params, dict):
            await self._send_error(request.id, INVALID_PARAMS, "params must be an object", None)
            return
        try:
            if request.method == "events/subscribe":
                result = await self._subscribe(nursery, params)
            elif request.method == "events/unsubscribe":
                _check(params, {"subscriptionId": _REQ_S})
                scope = self._subscriptions.pop(params["subscriptionId"], None)
                if scope is not None:
                    scope.cancel()
                result = {"unsubscribed": scope is not None}
            else:
                handler = METHODS.get(request.method)
                if handler is None:
                    await self._send_error(
                        request.id, METHOD_NOT_FOUND, f"unknown method {request.method!r}", None
                    )
                    return
                result = await handler(self.server.daemon, params)
        except CodexdError as exc:
            await self._send_error(request.id, exc.code, exc.message, exc.field)
            return
        except Exception as exc:  # a bug must not kill the connection or the daemon
            await self._send_error(request.id, INTERNAL_ERROR, f"internal error: {exc!r}", None)
            return
        with contextlib.suppress(trio_websocket.ConnectionClosed, trio.BrokenResourceError):
            await self.send(self.rpc.send_response(request.id, result))

    async def _subscribe(self, nursery: trio.Nursery, params: JsonObject) -> Any:
        _check(
            params,
            {"since": ((int,), False), "type": _OPT_S, "sessionId": _OPT_S, "runId": _OPT_S},
        )
        since = params.get("since")
        if since is not None and since < 0:
            raise InvalidRequest("since must be >= 0", field="since")
        subscription = self.server.daemon.subscribe(
            since,
            type_prefix=params.get("type"),
            session_id=params.get("sessionId"),
            run_id=params.get("runId"),
        )
        subscription_id = f"sub-{secrets.token_hex(4)}"
        scope = trio.CancelScope()
        self._subscriptions[subscription_id] = scope
        nursery.start_soon(self._stream, subscription, subscription_id, scope)
        return {"subscriptionId": subscription_id, "lastSeq": self.server.daemon.store.last_seq}

    async def _stream(
        self, subscription: Any, subscription_id: str, scope: trio.CancelScope
    ) -> None:
        with scope:
            try:
                async for event in subscription:
                    payload = {"subscriptionId": subscription_id, "event": to_wire(event)}
                    await self.send(self.rpc.send_notification("event", payload))
            except SubscriberOverflow as exc:
                note = self.rpc.send_notification(
                    "events/dropped",
                    {
                        "subscriptionId": subscription_id,
                        "lastSeq": exc.last_seq,
                        "reason": str(exc),
                    },
                )
                with trio.move_on_after(1), contextlib.suppress(Exception):
                    await self.send(note)
                with trio.move_on_after(1), contextlib.suppress(Exception):
                    await self.ws.aclose(
                        CLOSE_LAGGING, "subscriber fell behind; reconnect with since"
                    )
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
                pass
            finally:
                subscription.close()


class ApiServer:
    """Serves the API for one daemon; run :meth:`run` in the daemon's nursery."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.config = daemon.config.api
        self.token = ""
        self.url: str | None = None

    def _authorized(self, request: trio_websocket.WebSocketRequest) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        origin = headers.get("origin")
        if origin is not None and origin not in self.config.allowed_origins:
            return 403, f"origin {origin!r} is not allowed"
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), self.token):
            return 401, "missing or wrong bearer token"
        return None

    async def _handler(self, request: trio_websocket.WebSocketRequest) -> None:
        refused = self._authorized(request)
        if refused is not None:
            status, reason = refused
            await request.reject(status, body=reason.encode())
            return
        ws = await request.accept()
        await _ApiConnection(self, ws).serve()

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``task_status.started(url)`` once listening."""
        state_dir = self.daemon.config.state_path
        self.token = await trio.to_thread.run_sync(load_or_create_token, state_dir)
        listen = self.config.listen
        if listen.startswith("unix://"):
            path = listen[len("unix://") :]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(128)
            listeners = [trio.SocketListener(sock)]
            url = listen
        else:
            parsed = urllib.parse.urlsplit(listen)
            host = parsed.hostname or "127.0.0.1"
            listeners = list(await trio.open_tcp_listeners(parsed.port or 0, host=host))
            port = listeners[0].socket.getsockname()[1]
            url = f"ws://{host}:{port}"
        server = trio_websocket.WebSocketServer(
            self._handler, listeners, max_message_size=MAX_MESSAGE_BYTES
        )
        self.url = url
        await trio.to_thread.run_sync(self._write_api_json, url)
        task_status.started(url)
        try:
            await server.run()
        finally:
            with contextlib.suppress(OSError):
                (state_dir / "api.json").unlink()

    def _write_api_json(self, url: str) -> None:
        path = self.daemon.config.state_path / "api.json"
        data = {"url": url, "pid": os.getpid(), "daemonId": self.daemon.store.daemon_id}
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
