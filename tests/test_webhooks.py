"""Webhook notifications against real local HTTP receivers (Trio servers in the test)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import attrs
import h11
import pytest
import trio

from codexd import open_daemon
from codexd._config import Config, NotifyConfig, WebhookConfig, load_config
from codexd._errors import ConfigError
from codexd.testing import Reply, open_fake_provider

from .helpers import free_port, wait_event
from .real import real_config


@attrs.frozen
class Received:
    method: bytes
    target: bytes
    headers: dict[bytes, bytes]
    body: bytes


class Receiver:
    """A webhook receiver: records each POST, answers ``status`` (or never, with ``hang``)."""

    def __init__(self, status: int = 200, *, hang: bool = False) -> None:
        self.status = status
        self.hang = hang
        self.received: list[Received] = []
        self.hung = 0
        self._changed = trio.Event()

    async def serve(
        self, port: int = 0, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return
        assert request is not None
        if self.hang:
            self.hung += 1
            self._notify()
            await trio.sleep_forever()
        self.received.append(
            Received(request.method, request.target, dict(request.headers), bytes(body))
        )
        self._notify()
        answer = conn.send(h11.Response(status_code=self.status, headers=[("content-length", "0")]))
        await stream.send_all((answer or b"") + (conn.send(h11.EndOfMessage()) or b""))
        await stream.aclose()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, check: Any, timeout: float = 20.0) -> None:
        with trio.fail_after(timeout):
            while not check():
                await self._changed.wait()


def notify(*webhooks: WebhookConfig, **settings: Any) -> NotifyConfig:
    return NotifyConfig(webhooks=list(webhooks), **settings)


async def test_a_signed_post_per_matching_event(base_config: Config) -> None:
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(receiver.serve)
        url = f"http://127.0.0.1:{port}/hook/abc?key=1"
        hook = WebhookConfig(url=url, events=["test.ping"], secret="s3cret")
        config = attrs.evolve(base_config, mode="exec", notify=notify(hook))
        with trio.fail_after(30):
            async with open_daemon(config) as daemon:
                await daemon.store.record("test.ping", "first", detail={"n": 1})
                await daemon.store.record("test.other", "not sent")
                await daemon.store.record("test.ping.again", "second", detail={"n": 2})
                await receiver.wait(lambda: len(receiver.received) >= 2)
                stats = daemon.webhooks.webhooks[0].stats
                while stats.delivered < 2:  # the receiver's answer is on its way back
                    await trio.sleep(0.01)
                assert (stats.delivered, stats.retries, stats.failed) == (2, 0, 0)
        nursery.cancel_scope.cancel()
    seen = []
    for got in receiver.received:
        assert got.method == b"POST"
        assert got.target == b"/hook/abc?key=1"
        assert got.headers[b"content-type"] == b"application/json"
        expected = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
        assert got.headers[b"x-codexd-signature"] == f"sha256={expected}".encode()
        assert not hmac.compare_digest(
            got.headers[b"x-codexd-signature"],
            ("sha256=" + hmac.new(b"wrong", got.body, hashlib.sha256).hexdigest()).encode(),
        )
        payload = json.loads(got.body)
        assert payload["daemonId"] == daemon.store.daemon_id
        assert got.headers[b"x-codexd-event"] == payload["event"]["type"].encode()
        assert got.headers[b"x-codexd-delivery"] == str(payload["event"]["seq"]).encode()
        assert got.headers[b"x-codexd-attempt"] == b"1"
        seen.append((payload["event"]["type"], payload["event"]["detail"]["n"]))
    assert seen == [("test.ping", 1), ("test.ping.again", 2)]


async def test_a_receiver_that_is_down_gets_retries_until_it_is_up(base_config: Config) -> None:
    port = await free_port()
    hook = WebhookConfig(url=f"http://127.0.0.1:{port}/", events=["test."])
    settings = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 100}
    config = attrs.evolve(base_config, mode="exec", notify=notify(hook, **settings))
    receiver = Receiver()
    with trio.fail_after(30):
        async with open_daemon(config) as daemon, trio.open_nursery() as nursery:
            webhook = daemon.webhooks.webhooks[0]
            await daemon.store.record("test.ping", "while the receiver is down")
            while webhook.stats.attempts < 3:  # connection refused, retried with backoff
                await trio.sleep(0.02)
            assert webhook.stats.delivered == 0
            assert "all attempts to connect" in (webhook.stats.last_error or "")
            await nursery.start(receiver.serve, port)
            await receiver.wait(lambda: len(receiver.received) >= 1)
            nursery.cancel_scope.cancel()
    got = receiver.received[0]
    assert json.loads(got.body)["event"]["type"] == "test.ping"
    assert int(got.headers[b"x-codexd-attempt"]) >= 4
    assert b"x-codexd-signature" not in got.headers  # no secret, no signature
    assert webhook.stats.retries >= 3
    assert webhook.stats.delivered == 1


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (503, 3)])
async def test_a_refusing_receiver_is_given_up_and_reported(
    base_config: Config, status: int, attempts: int
) -> None:
    receiver = Receiver(status)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(receiver.serve)
        hook = WebhookConfig(url=f"http://127.0.0.1:{port}/", events=["test."], secret="k")
        settings = {"backoff_initial_s": 0.01, "max_attempts": 3}
        config = attrs.evolve(base_config, mode="exec", notify=notify(hook, **settings))
        with trio.fail_after(30):
            async with open_daemon(config) as daemon:
                await daemon.store.record("test.ping", "refused")
                failed = await wait_event(daemon, "notify.webhook.failed")
                assert failed.detail is not None
                assert failed.detail["error"] == f"HTTP {status}"
                assert failed.detail["url"] == f"http://127.0.0.1:{port}"
                assert len(receiver.received) == attempts
        nursery.cancel_scope.cancel()


async def test_a_hung_receiver_never_delays_a_turn(tmp_path: Path) -> None:
    receiver = Receiver(hang=True)
    async with (
        trio.open_nursery() as nursery,
        open_fake_provider(Reply.text("Finished while the hook hangs.")) as provider,
    ):
        port = await nursery.start(receiver.serve)
        hook = WebhookConfig(url=f"http://127.0.0.1:{port}/", secret="k")  # every event
        config = real_config(tmp_path, provider, notify=notify(hook, queue_size=5, timeout_s=120))
        with trio.fail_after(90):
            async with open_daemon(config) as daemon:
                webhook = daemon.webhooks.webhooks[0]
                session = await daemon.create_session("test", cwd=str(tmp_path))
                accepted = await daemon.start_turn(session.session_id, "Go.")
                result = await daemon.wait_turn(session.session_id, accepted.turn_id, timeout=60)
                assert result.status == "completed"
                assert result.final_message == "Finished while the hook hangs."
                # The turn ended while the receiver still held the very first POST.
                assert receiver.hung == 1
                assert (webhook.stats.attempts, webhook.stats.delivered) == (1, 0)
                assert webhook.pending == 5
                assert webhook.stats.dropped > 0
                assert webhook.stats.queued == webhook.stats.dropped + 5 + 1
            # Leaving the block stopped the daemon cleanly, the POST still hung.
            assert receiver.hung == 1
        nursery.cancel_scope.cancel()


def test_webhook_config_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "codexd.toml"
    path.write_text('[[notify.webhooks]]\nurl = "ftp://example.com/x"\n')
    with pytest.raises(ConfigError, match=r"notify\.webhooks\[0\]\.url: must be an http"):
        load_config(path, environ={})
    env = {"CODEXD_NOTIFY__WEBHOOKS": '[{"url": "https://example.com/h", "events": ["run."]}]'}
    loaded = load_config(environ=env)
    assert loaded.notify.webhooks == [WebhookConfig(url="https://example.com/h", events=["run."])]
