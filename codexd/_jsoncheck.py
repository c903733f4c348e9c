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
    integers beyond 64 bits, nesting deeper than ``max_depth``, values that are not JSON types.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                raise InvalidValue(where, "is not valid Unicode (it holds a lone surrogate)")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                raise InvalidValue(where, "is out of range (64-bit integers only)")
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


#: Deepest nesting kept from a peer's output; deeper values are replaced by a marker.
MAX_PEER_DEPTH = 64
TOO_DEEP = "<nested too deeply: removed by codexd>"
#: What in raw JSON text can decode to a value :func:`scrub` must repair.
_NON_FINITE = re.compile(r"NaN|Infinity|[0-9][eE]\+?[0-9]{3}")


def needs_scrub(raw: str | bytes) -> bool:
    """False when decoded ``raw`` certainly needs no :func:`scrub` (cheap, C-speed checks)."""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return (
        may_hold_surrogates(text)
        or _NON_FINITE.search(text) is not None
        or text.count("[") + text.count("{") > MAX_PEER_DEPTH
    )


def scrub(value: Any) -> tuple[Any, bool]:
    """``value`` made storable, and whether anything changed (for a peer's output).

    Lone surrogates become U+FFFD, numbers that are not finite become ``None``, and anything
    nested deeper than :data:`MAX_PEER_DEPTH` is replaced by :data:`TOO_DEEP`. Containers are
    copied only where something changed; otherwise ``value`` itself is returned.
    """
    changed = False

    def fix(item: Any, depth: int) -> Any:
        nonlocal changed
        if isinstance(item, str):
            if has_surrogate(item):
                changed = True
                return _scrub_text(item)
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                changed = True
                return None
            return item
        if not isinstance(item, dict | list):
            return item
        if depth >= MAX_PEER_DEPTH:
            changed = True
            return TOO_DEEP
        if isinstance(item, list):
            return [fix(child, depth + 1) for child in item]
        out: dict[str, Any] = {}
        for key, child in item.items():
            if has_surrogate(key):
                changed = True
                key = _scrub_text(key)
            out[key] = fix(child, depth + 1)
        return out

    # Recursion is bounded by MAX_PEER_DEPTH (well under Python's limit).
    fixed = fix(value, 0)
    return (fixed, True) if changed else (value, False)
