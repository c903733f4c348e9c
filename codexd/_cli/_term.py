"""The terminal: rich consoles that colour only a terminal, and never with ``NO_COLOR`` set."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO

from rich.console import Console


def color_allowed(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    if os.environ.get("NO_COLOR", ""):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_console(stream: IO[str]) -> Console:
    """A rich console on ``stream``: styled on a colour terminal, plain (and unwrapped) else."""
    tty = False
    with contextlib.suppress(AttributeError, ValueError):
        tty = stream.isatty()
    color = color_allowed(stream)
    return Console(
        file=stream,
        color_system="auto" if color else None,
        force_terminal=color,
        no_color=not color,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        width=None if tty else 100_000,
    )


def error_console() -> Console:
    return make_console(sys.stderr)
