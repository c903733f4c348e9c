"""How commands print: JSON for programs, plain words, tables and colour for people.

Human output never shows a Python repr: values go through :func:`human` (``None`` is ``-``,
mappings become ``key=value`` lists, lists are comma-separated). Colour and table styling come
from ``rich``, only when the stream is a terminal and never when ``NO_COLOR`` is set; piped
output is plain text with columns aligned, so ``grep``/``awk`` keep working.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ._app import settings
from ._term import make_console


def human(value: Any) -> str:
    """A value as a person reads it: no ``None``, no dict or list reprs."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value if value else "-"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, Mapping):
        if not value:
            return "-"
        return ", ".join(f"{k}={human(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        return ", ".join(human(v) for v in value)
    return json.dumps(value, default=str)


def counts(mapping: Mapping[str, Any]) -> str:
    """``{"completed": 2, "failed": 1}`` as ``2 completed, 1 failed`` (``none`` if empty)."""
    parts = [f"{n} {name}" for name, n in mapping.items() if n]
    return ", ".join(parts) if parts else "none"


class Output:
    """The output of one command, honouring ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = make_console(sys.stdout)
        self.err = make_console(sys.stderr)

    @classmethod
    def of(cls, ctx: click.Context) -> Output:
        return cls(settings(ctx).as_json)

    def json(self, data: Any, *, indent: int | None = 2) -> None:
        sys.stdout.write(json.dumps(data, indent=indent) + "\n")
        sys.stdout.flush()

    def emit(self, data: Any, lines: Iterable[str | Text] = ()) -> None:
        """``data`` as JSON under ``--json``; else the human ``lines``."""
        if self.as_json:
            self.json(data)
            return
        for line in lines:
            self.out.print(line)

    def line(self, text: str | Text, *, style: str | None = None) -> None:
        self.out.print(text, style=style)

    def note(self, text: str | Text, *, style: str | None = "dim") -> None:
        """A remark for people on stderr (never under ``--json``)."""
        if not self.as_json:
            self.err.print(text, style=style)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Aligned columns (a bold header on a colour terminal); cells are never cut short,
        so ids can be copied even when a row is wider than the terminal."""
        cells = [[human(cell) for cell in row] for row in rows]
        widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for header in headers:
            table.add_column(header, no_wrap=True)
        for row in cells:
            table.add_row(*(Text(cell) for cell in row))
        needed = sum(widths) + 2 * (len(widths) - 1)
        self.out.width = max(self.out.width, needed)  # rich never renders wider than this
        if self.out.is_terminal:
            self.out.print(table)
            return
        with self.out.capture() as capture:
            self.out.print(table)
        for text in capture.get().splitlines():
            sys.stdout.write(text.rstrip() + "\n")
        sys.stdout.flush()

    def record(self, data: Mapping[str, Any], first: Sequence[str]) -> None:
        """One record: JSON under ``--json``; else its fields, the ``first`` ones first."""
        if self.as_json:
            self.json(data)
            return
        self.fields(data, [*first, *(k for k in data if k not in first)])

    def fields(self, data: Mapping[str, Any], keys: Sequence[str] | None = None) -> None:
        """``key  value`` lines of a record (nested objects indented)."""
        for key, text in field_lines(data, keys):
            line = Text()
            line.append(key, style="bold")
            line.append(text)
            self.out.print(line)


def field_lines(
    data: Mapping[str, Any], keys: Sequence[str] | None = None, indent: str = ""
) -> list[tuple[str, str]]:
    """``(label, value)`` pairs with the labels padded; nested objects go one level deeper."""
    chosen = [k for k in (keys or list(data)) if k in data]
    width = max((len(k) for k in chosen), default=0) + 2
    lines: list[tuple[str, str]] = []
    for key in chosen:
        value = data[key]
        if isinstance(value, Mapping) and value:
            lines.append((f"{indent}{key}", ""))
            lines.extend(field_lines(value, None, indent + "  "))
        else:
            lines.append((f"{indent}{key}".ljust(width + len(indent)), human(value)))
    return lines
