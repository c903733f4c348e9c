"""The web console end to end: real headless Chromium, the real Codex binary, the fake model.

Debian's ``chromium`` (``/usr/bin/chromium``, installed by .ci/run) is driven by Playwright's
sync API in a worker thread (``trio.to_thread``) while the daemon runs in the test's Trio loop.
No browser is ever downloaded. ``CODEXD_UPDATE_SCREENSHOT=1`` also writes docs/console.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from playwright.sync_api import Page, expect, sync_playwright

from codexd import ApiConfig, ApprovalsConfig, open_daemon
from codexd._console._login import console_login_url
from codexd.testing import Reply, open_fake_provider

from .real import real_config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 30_000
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "console.png"

#: Opens a WebSocket to the daemon from whatever page it runs in; how it ended.
PROBE_JS = """url => new Promise(done => {
  const ws = new WebSocket(url);
  ws.onopen = () => { ws.close(); done("open"); };
  ws.onclose = event => done("closed " + event.code);
})"""


def _foreign_page(page: Page, origin: str) -> None:
    """Make ``page`` show a page served from ``origin`` (answered by Playwright, no server)."""
    page.route(f"{origin}/**", lambda route: route.fulfill(body="<p>elsewhere</p>"))
    page.goto(f"{origin}/")


def drive_console(
    login_url: str, cwd: str, screenshot: Path, record_gap: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """Everything the browser does (runs in a worker thread: Playwright's sync API).

    ``record_gap`` records three events in the daemon (run in the Trio loop from here).
    """
    base = login_url.split("/console/", 1)[0]
    port = int(base.rsplit(":", 1)[1])
    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(login_url)
            assert page.url == f"{base}/console/"
            cookies = context.cookies()
            assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
                (f"codexd_console_{port}", True, "Strict")
            ]
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
            expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
            expect(page.locator("#child-status")).to_contain_text("running", timeout=WAIT_MS)

            form = page.locator("#new-session")
            form.locator("[name=purpose]").fill("console demo")
            form.locator("[name=cwd]").fill(cwd)
            form.locator("[name=approvalPolicy]").select_option("untrusted")
            form.locator("[name=sandbox]").select_option("workspace-write")
            page.click("#create-session")
            expect(page.locator("#session-head h2")).to_contain_text(
                "console demo", timeout=WAIT_MS
            )

            page.fill("#prompt", "Create the file, please.")
            page.click("#send")
            card = page.locator("#inbox .card.approval")
            expect(card).to_contain_text("echo from-the-console | tee", timeout=WAIT_MS)
            expect(card).to_contain_text(f"in {cwd}")
            expect(card.locator(".countdown")).to_contain_text("left")
            seen["pending"] = card.inner_text()
            card.get_by_role("button", name="Accept", exact=True).click()

            transcript = page.locator("#transcript")
            expect(transcript.locator(".agent-text").last).to_have_text(
                "Done: the file is there.", timeout=WAIT_MS
            )
            expect(transcript.locator(".item.user")).to_contain_text("Create the file, please.")
            command = transcript.locator(".item.command")
            expect(command).to_contain_text("echo from-the-console")
            expect(command).to_contain_text("completed")
            expect(command.locator("pre.output")).to_have_text("from-the-console\n")
            expect(transcript.locator(".item.approval")).to_contain_text("accept")
            expect(transcript.locator(".turn header .badge")).to_have_text("completed")
            expect(page.locator("#inbox")).to_contain_text("Nothing waits for you.")
            expect(page.locator("#inbox .card.answered")).to_contain_text("accept")
            page.fill("#tail-filter", "approval.")
            expect(page.locator("#tail .event .type").first).to_have_text("approval.decided")
            page.fill("#tail-filter", "")

            # A second turn asks to delete the file; it waits in the inbox, then is declined.
            page.fill("#prompt", "Now delete it.")
            page.click("#send")
            expect(page.locator("#send")).to_have_text("Steer", timeout=WAIT_MS)
            expect(page.locator("#interrupt")).to_be_visible()
            card = page.locator("#inbox .card.approval")
            expect(card).to_contain_text("rm ", timeout=WAIT_MS)
            expect(page.locator("#inbox-count")).to_have_text("1")
            page.screenshot(path=str(screenshot))
            card.get_by_role("button", name="Decline").click()
            expect(transcript.locator(".agent-text").last).to_have_text(
                "I was not allowed to delete it.", timeout=WAIT_MS
            )
            expect(transcript.locator(".turn header .badge").last).to_have_text("completed")
            expect(page.locator("#send")).to_have_text("Send")
            expect(transcript.locator(".item.approval").last).to_contain_text("decline")
            seen["transcript"] = transcript.inner_text()

            # Fork: a new session on a copy of the thread, selected at once.
            original = page.locator("#session-head h2 .meta").inner_text()
            page.click("#fork-session")
            expect(page.locator("#session-head h2 .meta")).not_to_have_text(
                original, timeout=WAIT_MS
            )
            seen["fork"] = page.locator("#session-head h2 .meta").inner_text()
            seen["fork of"] = original
            page.locator(f'#sessions .session[data-session="{original}"]').click()
            expect(page.locator("#session-head h2 .meta")).to_have_text(original)

            # The connection drops; events recorded meanwhile appear once, in order, after the
            # page reconnects and resubscribes from its last seq.
            page.evaluate("window.codexdConsole.rpc.ws.close()")
            trio.from_thread.run(record_gap)
            expect(page.locator("#conn")).to_have_text("connected", timeout=WAIT_MS)
            page.fill("#tail-filter", "test.gap")
            expect(page.locator("#tail .event .type")).to_have_count(3, timeout=WAIT_MS)
            seen["gap"] = page.locator("#tail .event .message").all_inner_texts()
            seen["seqs"] = page.evaluate("window.codexdConsole.state.tail.map(e => e.seq)")

            # A page of another web server on this host: same site, so the browser sends the
            # cookie, but its Origin is not the console's: refused.
            foreign = context.new_page()
            _foreign_page(foreign, "http://127.0.0.1:9")
            seen["foreign port"] = foreign.evaluate(PROBE_JS, f"ws://127.0.0.1:{port}/")
            _foreign_page(foreign, "http://evil.example")
            seen["foreign site"] = foreign.evaluate(PROBE_JS, f"ws://127.0.0.1:{port}/")
            seen["own page"] = page.evaluate(PROBE_JS, f"ws://127.0.0.1:{port}/")

            # Another browser profile: no cookie. The page is refused, and so is the API.
            stranger = browser.new_context().new_page()
            answer = stranger.goto(f"{base}/console/")
            assert answer is not None
            seen["no cookie page"] = answer.status
            expect(stranger.locator("h1")).to_have_text("Not logged in")
            seen["no cookie api"] = stranger.evaluate(PROBE_JS, f"ws://127.0.0.1:{port}/")
            again = stranger.goto(login_url)  # the link was used up by the first browser
            assert again is not None
            seen["link reused"] = again.status
            seen["script errors"] = errors
        finally:
            browser.close()
    return seen


async def test_console_login_session_turn_approval_in_chromium(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    marker = work / "made-by-console.txt"
    screenshot = tmp_path / "console.png"
    async with open_fake_provider(
        Reply.shell(f"echo from-the-console | tee {marker}"),
        Reply.text("Done: the file is there."),
        Reply.shell(f"rm {marker}"),
        Reply.text("I was not allowed to delete it."),
    ) as provider:
        config = real_config(
            tmp_path,
            provider,
            approvals=ApprovalsConfig(policy="ask"),
            api=ApiConfig(listen="ws://127.0.0.1:0"),
        )
        with trio.fail_after(120):
            async with open_daemon(config) as daemon:

                async def record_gap() -> None:
                    while daemon.api.open_connections:  # the page's connection is closing
                        await trio.sleep(0.01)
                    for n in (1, 2, 3):
                        await daemon.store.record(f"test.gap.{n}", f"gap {n}")
                    assert daemon.api.open_connections == 0  # all recorded while it was away

                login_url = console_login_url(config.state_dir)
                seen = await trio.to_thread.run_sync(
                    drive_console, login_url, str(work), screenshot, record_gap
                )
                approvals = sorted(daemon.list_approvals(), key=lambda a: a.created_at)
                assert [(a.status, a.decided_by) for a in approvals] == [
                    ("accepted", "api"),
                    ("declined", "api"),
                ]
                everything = daemon.list_sessions()
                (session,) = [s for s in everything if s.forked_from is None]
                assert session.purpose == "console demo"
                assert session.last_turn_status == "completed"
                (fork,) = [s for s in everything if s.forked_from == session.session_id]
                assert fork.status == "active"
                assert seen["fork"] == fork.session_id and seen["fork of"] == session.session_id
    assert marker.read_text() == "from-the-console\n"  # made when accepted, kept when declined
    assert "Accept for session" in seen["pending"]
    assert "Done: the file is there." in seen["transcript"]
    assert seen["script errors"] == []
    assert seen["own page"] == "open"
    assert seen["foreign port"] == "closed 1006"
    assert seen["foreign site"] == "closed 1006"
    assert seen["no cookie page"] == 401
    assert seen["no cookie api"] == "closed 1006"
    assert seen["link reused"] == 401
    assert seen["gap"] == ["gap 3", "gap 2", "gap 1"]  # newest first
    assert seen["seqs"] == sorted(set(seen["seqs"]))  # no event twice, none out of order
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("CODEXD_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
