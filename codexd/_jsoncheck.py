"""Checks of decoded JSON at codexd's boundaries: storable text, bounded shape, finite numbers.

JSON text may carry escapes that decode to lone surrogates (``"\\ud800"``): Python keeps them in
``str``, but they cannot be encoded as UTF-8, so SQLite, the JSONL log and the wire would all
fail on them later. Values that come from callers (API params) are refused where they enter
(:func:`check_value` names the offending path); values that come from a child's output are
repaired instead (:func:`scrub`), because the child's output must be recorded, never fatal.

Both walk iteratively (no recursion), so a deeply nested value cannot raise RecursionError here.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: Deepest nesting accepted in API params.
MAX_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON escape that decodes to a surrogate code point (the cheap test before a walk).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidValue(ValueError):
    """A value that codexd cannot accept; ``path`` names where it is (``metadata.k``, ``[3]``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


def has_surrogate(text: str) -> bool:
    """True if ``text`` holds a lone surrogate, which UTF-8 cannot encode."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def may_hold_surrogates(raw: str | bytes) -> bool:
    """False when the JSON text certainly decodes to surrogate-free strings (a fast pre-check)."""
    if isinstance(raw, bytes):
        return b"\\u" in raw and _SURROGATE_ESCAPE.search(raw.decode("latin-1")) is not None
    return "\\u" in raw and _SURROGATE_ESCAPE.search(raw) is not None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check_value(value: Any, path: str = "", *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`InvalidValue` naming the first place ``value`` is not acceptable.

    Refused: strings (keys included) with lone surrogates, numbers that are not finite,
    nesting deeper than ``max_depth``, values that are not JSON types.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                raise InvalidValue(where, "is not valid Unicode (it holds a lone surrogate)")
        elif isinstance(item, bool) or item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidValue(where, f"must be a finite number, got {item!r}")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise InvalidValue(where, f"is nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidValue(where, "has a key that is not a string")
                    if has_surrogate(key):
                        raise InvalidValue(
                            where, "has a key that is not valid Unicode (a lone surrogate)"
                        )
                    stack.append((child, _join(where, key), depth + 1))
            else:
                for index, child in enumerate(item):
                    stack.append((child, _join(where, index), depth + 1))
        else:
            raise InvalidValue(where, f"is not a JSON value ({type(item).__name__})")


def _scrub_text(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def scrub(value: Any) -> tuple[Any, bool]:
    """``value`` with every lone surrogate replaced by U+FFFD, and whether anything changed.

    Containers are copied only where something changed; otherwise ``value`` itself is returned.
    """
    if isinstance(value, str):
        if has_surrogate(value):
            return _scrub_text(value), True
        return value, False
    if not isinstance(value, dict | list):
        return value, False
    changed = False
    # Iterative copy-on-write: (container, its copy or None) pairs, children first.
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, slot, item = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                parent[slot] = _scrub_text(item)
                changed = True
        elif isinstance(item, dict):
            copy: dict[str, Any] = {}
            for key, child in item.items():
                new_key = _scrub_text(key) if has_surrogate(key) else key
                changed = changed or new_key is not key
                copy[new_key] = child
                stack.append((copy, new_key, child))
            parent[slot] = copy
        elif isinstance(item, list):
            items = list(item)
            for index, child in enumerate(items):
                stack.append((items, index, child))
            parent[slot] = items
    return (root[0], True) if changed else (value, False)
