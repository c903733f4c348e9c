"""Webhook notifications: a signed JSON POST per matching event, retried, never blocking.

:class:`WebhookService` runs as a daemon service. It subscribes to the store's live events and,
for every configured webhook whose ``events`` prefixes match, puts the event in that webhook's
bounded queue: a plain ``deque`` append, so neither the store nor a turn ever waits for a
receiver. When a queue is full, its oldest delivery is dropped and counted (reported as a
``notify.webhook.dropped`` event). One sender task per webhook POSTs its queue in order, each
delivery tried up to ``notify.max_attempts`` times with doubling backoff (a 2xx ends it; other
4xx answers except 408/425/429 give up at once), then reported as ``notify.webhook.failed``.

The request: ``POST`` of ``{"daemonId": ..., "event": <the event, as on the API>}`` with
``Content-Type: application/json``, ``X-Codexd-Event`` (its type), ``X-Codexd-Delivery`` (its
seq), ``X-Codexd-Attempt`` and, with a ``secret``, ``X-Codexd-Signature: sha256=<hex>``: the
HMAC-SHA256 of the exact body bytes keyed by the secret. HTTP/1.1 over a Trio TCP (or TLS)
stream with h11, one connection per attempt, bounded by ``notify.timeout_s``.

Events of type ``notify.*`` are never sent (a failing receiver must not feed itself). Delivery
is best effort across restarts: what is queued when the daemon stops is not kept.
Cancellation: cancelling :meth:`WebhookService.run` ends the subscription and every sender.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import ssl
import urllib.parse
from collections import deque

import attrs
import h11
import trio

from ._config import NotifyConfig, WebhookConfig
from ._errors import SubscriberOverflow
from ._records import Event, to_wire
from ._store import Store
from ._version import __version__

#: Statuses worth retrying among the 4xx answers (every 5xx is retried too).
RETRY_STATUSES = frozenset({408, 425, 429})
#: Events buffered by the service's own subscription (it only moves them into the queues).
SUBSCRIPTION_BUFFER = 10_000
#: Longest response head read from a receiver.
MAX_RESPONSE_HEAD = 16 * 1024


class DeliveryError(Exception):
    """One POST attempt failed (network, timeout, protocol, or the status in ``status``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in RETRY_STATUSES


def signature(secret: str, body: bytes) -> str:
    """The ``X-Codexd-Signature`` value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def redacted(url: str) -> str:
    """``scheme://host:port`` of ``url``: paths and queries of webhook URLs often hold keys."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


async def post(url: str, body: bytes, headers: list[tuple[str, str]], timeout_s: float) -> int:
    """POST ``body`` to ``url``; the response status. Raises :class:`DeliveryError`."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with trio.fail_after(timeout_s):
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
            try:
                if tls:
                    stream = trio.SSLStream(
                        stream, ssl.create_default_context(), server_hostname=host
                    )
                conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
                request = h11.Request(
                    method="POST",
                    target=target,
                    headers=[
                        ("Host", parts.netloc.rpartition("@")[2]),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                        *headers,
                    ],
                )
                out = b"".join(
                    conn.send(e) or b"" for e in (request, h11.Data(data=body), h11.EndOfMessage())
                )
                await stream.send_all(out)
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(bytes(await stream.receive_some(65536)))
                    elif isinstance(event, h11.Response):
                        return int(event.status_code)
                    elif not isinstance(event, h11.InformationalResponse):
                        raise DeliveryError("the receiver closed without an answer")
            finally:
                await trio.aclose_forcefully(stream)
    except trio.TooSlowError:
        raise DeliveryError(f"no answer within {timeout_s:g}s") from None
    except (OSError, trio.BrokenResourceError, ssl.SSLError, h11.ProtocolError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


@attrs.define
class WebhookStats:
    """What one webhook did since the daemon started (for status and tests)."""

    queued: int = 0
    delivered: int = 0
    attempts: int = 0
    retries: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None


class Webhook:
    """One configured receiver: its queue, its stats, its sender."""

    def __init__(self, config: WebhookConfig, notify: NotifyConfig) -> None:
        self.config = config
        self.notify = notify
        self.stats = WebhookStats()
        self._queue: deque[Event] = deque()
        self._wake = trio.Event()
        self._unreported_drops = 0
        self._prefixes = tuple(config.events)

    def matches(self, event: Event) -> bool:
        return not self._prefixes or event.type.startswith(self._prefixes)

    def offer(self, event: Event) -> None:
        """Queue ``event`` (never blocks): when full, the oldest waiting one is dropped."""
        if len(self._queue) >= self.notify.queue_size:
            self._queue.popleft()
            self.stats.dropped += 1
            self._unreported_drops += 1
        self._queue.append(event)
        self.stats.queued += 1
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def run(self, store: Store) -> None:
        """Send the queue in order, forever (until cancelled)."""
        while True:
            while not self._queue:
                self._wake = trio.Event()
                await self._wake.wait()
            if self._unreported_drops:
                dropped, self._unreported_drops = self._unreported_drops, 0
                await store.emit(
                    "notify.webhook.dropped",
                    f"Webhook {redacted(self.config.url)}: queue full, dropped the oldest"
                    f" {dropped} notification(s).",
                    level="warn",
                    detail={"url": redacted(self.config.url), "dropped": dropped},
                )
            await self._deliver(store, self._queue.popleft())

    async def _deliver(self, store: Store, event: Event) -> None:
        body = json.dumps(
            {"daemonId": store.daemon_id, "event": to_wire(event)}, separators=(",", ":")
        ).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", f"codexd/{__version__}"),
            ("X-Codexd-Event", event.type),
            ("X-Codexd-Delivery", str(event.seq)),
        ]
        if self.config.secret is not None:
            headers.append(("X-Codexd-Signature", signature(self.config.secret, body)))
        delay = self.notify.backoff_initial_s
        for attempt in range(1, self.notify.max_attempts + 1):
            self.stats.attempts += 1
            try:
                status = await post(
                    self.config.url,
                    body,
                    [*headers, ("X-Codexd-Attempt", str(attempt))],
                    self.notify.timeout_s,
                )
                if 200 <= status < 300:
                    self.stats.delivered += 1
                    return
                raise DeliveryError(f"HTTP {status}", status)
            except DeliveryError as exc:
                self.stats.last_error = str(exc)
                if not exc.retryable or attempt == self.notify.max_attempts:
                    break
            self.stats.retries += 1
            await trio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.notify.backoff_max_s)
        self.stats.failed += 1
        await store.emit(
            "notify.webhook.failed",
            f"Webhook {redacted(self.config.url)} did not take event {event.seq}"
            f" ({event.type}): {self.stats.last_error}.",
            level="warn",
            detail={
                "url": redacted(self.config.url),
                "seq": event.seq,
                "type": event.type,
                "error": self.stats.last_error,
            },
        )


class WebhookService:
    """Feeds every configured webhook from the store; run :meth:`run` as a daemon service."""

    def __init__(self, store: Store, notify: NotifyConfig) -> None:
        self.store = store
        self.webhooks = [Webhook(config, notify) for config in notify.webhooks]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, start the senders, and route events until cancelled."""
        async with trio.open_nursery() as nursery:
            for webhook in self.webhooks:
                nursery.start_soon(webhook.run, self.store)
            since: int | None = None
            started = False
            while True:
                subscription = self.store.subscribe(since, buffer=SUBSCRIPTION_BUFFER)
                if not started:
                    task_status.started()
                    started = True
                try:
                    async for event in subscription:
                        if event.type.startswith("notify."):
                            continue
                        for webhook in self.webhooks:
                            if webhook.matches(event):
                                webhook.offer(event)
                except SubscriberOverflow as exc:
                    since = exc.last_seq  # catch up from the store: nothing is skipped
                    continue
                finally:
                    subscription.close()
                # The store closed its subscriptions (the daemon is stopping): the senders go
                # on with what is queued until the daemon cancels this service.
                await trio.sleep_forever()
