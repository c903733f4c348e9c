"""The terminal of a live view: agent text on stdout, progress on stderr, a status line.

Agent text is written to stdout as it arrives (deltas, no buffering), so a pipe gets exactly
the answer. Progress lines (commands, file changes, warnings, approvals) go to stderr. On a
terminal, stderr also carries one status line (elapsed time and what is happening) that is
redrawn in place and erased before anything else is printed; it is never drawn while the
agent's text is in the middle of a line on the same terminal.

:class:`LineReader` reads answers typed at the terminal (for the inline approval prompt) in a
worker thread, so Trio never blocks on stdin and the terminal's modes are never changed.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import IO

import trio
from rich.text import Text

from ._term import make_console

#: Seconds between two redraws of the status line.
TICK_S = 1.0


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def elapsed_text(seconds: float) -> str:
    """``8s``, ``2m05s``, ``1h02m``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Screen:
    """Where a live view writes; see the module docstring."""

    def __init__(self, label: str, *, status_line: bool | None = None) -> None:
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        self.err = make_console(sys.stderr)
        self.status_enabled = _isatty(self.stderr) if status_line is None else status_line
        self.shared = _isatty(self.stdout) and _isatty(self.stderr)
        self.at_line_start = True
        self.label = label
        self.activity = ""
        self.prompt: str | None = None
        self._drawn = False
        self._started = trio.current_time()

    @property
    def elapsed(self) -> float:
        return trio.current_time() - self._started

    # ---- agent text (stdout) -----------------------------------------------------------------

    def text(self, chunk: str) -> None:
        """Write a piece of agent text as it arrived."""
        if not chunk:
            return
        self._erase()
        self.stdout.write(chunk)
        self.stdout.flush()
        self.at_line_start = chunk.endswith("\n")
        self.redraw()

    def end_text(self) -> None:
        """End the current line of agent text, if one is open."""
        if not self.at_line_start:
            self.text("\n")

    # ---- progress (stderr) -------------------------------------------------------------------

    def progress(self, line: str | Text, style: str | None = None) -> None:
        """One line of progress on stderr (after ending open agent text on a shared terminal)."""
        self._erase()
        if self.shared and not self.at_line_start:
            self.stdout.write("\n")
            self.stdout.flush()
            self.at_line_start = True
        self.err.print(line, style=style)
        self.stderr.flush()
        self.redraw()

    def set_activity(self, activity: str) -> None:
        self.activity = activity
        self.redraw()

    def ask(self, prompt: str | None) -> None:
        """Show (or with ``None`` remove) a question on the status line; it stops ticking."""
        self.prompt = prompt
        self._erase()
        self.redraw()

    # ---- the status line ---------------------------------------------------------------------

    def _erase(self) -> None:
        if self._drawn:
            self.stderr.write("\r\x1b[2K")
            self.stderr.flush()
            self._drawn = False

    def redraw(self) -> None:
        """Draw the status line (terminal only, never in the middle of agent text)."""
        if not self.status_enabled or (self.shared and not self.at_line_start):
            return
        if self._drawn and self.prompt is not None:
            return  # a question stays put while the person types
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        parts = [f"{self.label} {elapsed_text(self.elapsed)}"]
        if self.activity:
            parts.append(self.activity)
        text = " · ".join(parts)
        if self.prompt is not None:
            text = f"{text} · {self.prompt}"
        text = text.replace("\n", " ")
        if len(text) > width:
            text = text[: width - 1] + "…"
        self._erase()
        style_on, style_off = ("\x1b[2m", "\x1b[0m") if self.err.color_system else ("", "")
        if self.prompt is not None:
            self.stderr.write(f"{style_on}{text[: -len(self.prompt)]}{style_off}{self.prompt}")
        else:
            self.stderr.write(f"{style_on}{text}{style_off}")
        self.stderr.flush()
        self._drawn = True

    async def tick(self) -> None:
        """Redraw the status line every second (until cancelled)."""
        while True:
            await trio.sleep(TICK_S)
            if self.prompt is None:
                self.redraw()

    def close(self, last: str | Text | None = None) -> None:
        """Erase the status line for good, end open agent text, print a ``last`` line."""
        self._erase()
        self.end_text()
        self.status_enabled = False
        if last is not None:
            self.progress(last)


class LineReader:
    """Lines typed on stdin, read in a worker thread (started on first use)."""

    def __init__(self) -> None:
        self._send, self.lines = trio.open_memory_channel[str](16)
        self._started = False

    def start(self, nursery: trio.Nursery) -> None:
        if not self._started:
            self._started = True
            nursery.start_soon(self._read)

    async def _read(self) -> None:
        while True:
            # A blocked read cannot be interrupted: the thread is abandoned on cancel (it is a
            # daemon thread and ends with the process).
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            await self._send.send(line.strip())


def interactive() -> bool:
    """Whether a person can answer prompts: stdin and stderr are terminals, and this process
    is in the terminal's foreground (reading it from the background would stop us)."""
    if not (_isatty(sys.stdin) and _isatty(sys.stderr)):
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except OSError:
        return True  # not our controlling terminal: reading it cannot stop us
