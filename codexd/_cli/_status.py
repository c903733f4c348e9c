"""``codexd status`` and ``codexd restart-child``: the daemon as a whole."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from ._calls import call
from ._output import Output, counts, human

#: Status words and their colour on a terminal.
STATUS_STYLES = {
    "running": "green",
    "active": "green",
    "completed": "green",
    "accepted": "green",
    "ok": "green",
    "external": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "queued": "yellow",
    "pending": "yellow",
    "inProgress": "yellow",
    "degraded": "bold yellow",
    "stopping": "yellow",
    "failed": "bold red",
    "declined": "red",
    "timed_out": "red",
    "interrupted": "red",
    "cancelled": "red",
}


def styled(word: Any) -> Text:
    """A status word, coloured by :data:`STATUS_STYLES` on a colour terminal."""
    text = human(word)
    return Text(text, style=STATUS_STYLES.get(text, ""))


def id_status(ident: Any, status: Any) -> Text:
    """``ID status``: what a command that changed one record prints for people."""
    line = Text(f"{ident} ")
    line.append(styled(status))
    return line


def _row(label: str, *parts: str | Text) -> Text:
    line = Text()
    line.append(label.ljust(9), style="bold")
    for index, part in enumerate(parts):
        if index:
            line.append("  ")
        line.append(part)
    return line


@click.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the running daemon's status."""
    out = Output.of(ctx)
    snap = call(ctx, "daemon/status")
    if out.as_json:
        out.json(snap)
        return
    d, c, store = snap["daemon"], snap["child"], snap.get("store") or {}
    out.line(
        _row(
            "daemon", snap["daemonId"], f"pid {d['pid']}", styled(d["status"]), f"mode {d['mode']}"
        )
    )
    child = _row("child", styled(c["status"]), f"pid {human(c.get('pid'))}")
    child.append(f"  restarts {c['restartCount']}")
    if c.get("lastError"):
        child.append(f"  error: {c['lastError']}", style="red")
    out.line(child)
    if store.get("status") == "degraded":
        out.line(_row("store", styled("degraded"), f"since {human(store.get('since'))}"))
        out.line(_row("", f"error: {human(store.get('error'))}"))
    active = sum(1 for s in snap["sessions"] if s.get("status") == "active")
    out.line(
        _row(
            "sessions",
            f"{len(snap['sessions'])} ({active} active)",
            f"runs {counts(snap['runs'])}",
            f"pending approvals {snap['pendingApprovals']}",
            f"last seq {snap['lastSeq']}",
        )
    )
    app = snap.get("appServer") or {}
    if app:
        acct = (app.get("account") or {}).get("account")
        out.line(
            _row(
                "codex",
                human(app.get("codexVersion")),
                f"experimental {'on' if app.get('experimentalApi') else 'off'}",
                "not logged in" if not acct else f"account {human(acct.get('type'))}",
            )
        )
    if d.get("apiUrl"):
        out.line(_row("api", d["apiUrl"], f"state {d.get('stateDir') or '-'}"))


@click.command("restart-child")
@click.pass_context
def restart_child(ctx: click.Context) -> None:
    """Restart the app-server child (for instance after it hit its restart limit)."""
    out = Output.of(ctx)
    result = call(ctx, "daemon/restartChild")
    out.emit(result, ["restart requested"])
