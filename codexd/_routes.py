"""Where the app-server's messages go: the supervisor's :class:`~codexd._supervisor.Listener`.

The supervisor owns the connection and knows nothing of sessions; the session manager and the
approval broker know nothing of connections. :class:`AppServerRoutes` sits between them:
notifications go through the :class:`~codexd._notifications.NotificationTable` (and
``serverRequest/resolved`` also to the broker), server requests to the broker, connects and
disconnects to both. Every route is contained: a failure to handle one message is recorded and
the reader goes on (a reader that died would take the connection with it).
"""

from __future__ import annotations

from ._approvals import ApprovalBroker
from ._appserver import AppServerClient
from ._errors import StoreError
from ._messages import JsonObject, Notification, ProtocolIssue, Request
from ._notifications import NotificationTable
from ._process import preview
from ._sessions import SessionManager
from ._store import Store
from ._tasks import describe_failure


class AppServerRoutes:
    """Routes one connection's traffic to the sessions, turns and approvals."""

    def __init__(self, store: Store, sessions: SessionManager, approvals: ApprovalBroker) -> None:
        self.store = store
        self.sessions = sessions
        self.approvals = approvals
        self.table = NotificationTable(
            store, sessions.turns, sessions.session_of_thread, sessions.sessions_of_thread
        )

    async def connected(self, client: AppServerClient, *, fresh_server: bool) -> None:
        await self.sessions.resume_sessions(client)
        await self.sessions.settle_orphaned_turns(client, fresh_server=fresh_server)
        self.approvals.reconnected()

    async def disconnected(self, diagnostics: JsonObject, *, server_survives: bool) -> None:
        await self.sessions.connection_closed(diagnostics, server_survives=server_survives)
        await self.approvals.connection_closed(server_survives=server_survives)

    async def notification(self, note: Notification) -> None:
        await self.notifications([note])

    async def notifications(self, notes: list[Notification]) -> None:
        """The notifications of one stdout chunk: their events queued as one store item."""
        await self.table.handle_batch(notes, self._failed)
        for note in notes:
            if note.method == "serverRequest/resolved":
                try:
                    self.approvals.server_resolved(note.params)
                except Exception as exc:
                    await self._failed(note, exc)

    async def _failed(self, note: Notification, exc: Exception) -> None:
        """One notification could not be handled: recorded, and the reader goes on."""
        if isinstance(exc, StoreError):
            self.store.dropped_events += 1  # degraded: counted in daemon/status
            return
        await self.store.emit(
            "app-server.notification.failed",
            f"Could not handle {note.method}: {describe_failure(exc)}",
            level="error",
            detail={"method": note.method, "error": describe_failure(exc)},
        )

    def server_request(self, client: AppServerClient, request: Request) -> None:
        self.approvals.handle_request(client, request)

    async def issue(self, issue: ProtocolIssue) -> None:
        await self.store.emit(
            "app-server.protocol.issue",
            f"App-server sent a bad line ({issue.kind}): {preview(issue.preview, 100)}",
            level="warn",
            detail={
                "kind": issue.kind,
                "detail": issue.detail,
                "line": issue.line_no,
                "size": issue.size,
                "preview": issue.preview,
            },
        )
