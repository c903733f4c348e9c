"""Fast JSON (orjson) for the hot paths, with the standard library's semantics kept exact.

Every event codexd receives is decoded once and written once (SQLite, ``events.jsonl``, each
subscriber's frame), so JSON is most of the per-event cost: orjson encodes about 20x and decodes
about 2-3x faster than :mod:`json`. Where the two libraries differ, the answer of :mod:`json` (the
semantics codexd had and tests) is kept, at the price of a slow path that only unusual values
take:

* orjson refuses lone surrogates and ``NaN``/``Infinity`` when *decoding*: the caller's slow path
  (``json.loads`` plus the repair of :mod:`codexd._jsoncheck`) handles those lines;
* orjson reads integers beyond 64 bits as floats (lossy): :func:`loads` sends a number of 20 or
  more digits to ``json.loads``;
* orjson writes ``NaN`` as ``null`` where ``json.dumps(allow_nan=False)`` raises: :func:`dumpb`
  re-checks with :mod:`json` whenever its output holds a ``null``;
* orjson refuses non-string keys and integers beyond 64 bits when *encoding*, which :mod:`json`
  accepts: :func:`dumpb` falls back to :mod:`json` for them.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

_STD_ENCODE: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

Fragment = orjson.Fragment


def loads(data: bytes | str) -> Any:
    """Decode one JSON text exactly like ``json.loads`` (errors are ``ValueError``)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    value = fast_loads(raw)
    return value if value is not None else json.loads(data)


#: Byte classes for one C-level pass over a line: digits -> "0", "{" and "[" -> "{", else "x".
_CLASSES: Final = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x7B if b in (0x5B, 0x7B) else 0x78 for b in range(256)
)
_TWENTY_DIGITS: Final = b"0" * 20


def fast_loads(data: bytes, max_containers: int | None = None) -> Any:
    """orjson's decoding, or ``None`` when only ``json.loads`` gives the exact answer.

    ``None`` for: anything orjson refuses (not UTF-8, not JSON, lone surrogates, non-finite
    numbers, nesting over 1024), numbers of 20 or more digits, and more than
    ``max_containers`` ``{``/``[`` bytes (a cheap bound on nesting). A JSON ``null`` text is
    never asked for (callers want objects), so ``None`` is unambiguous.
    """
    classes = data.translate(_CLASSES)
    if _TWENTY_DIGITS in classes:
        return None
    if max_containers is not None and classes.count(b"{") > max_containers:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def dumpb(value: Any) -> bytes:
    """Compact UTF-8 JSON, as ``json.dumps(separators=(",", ":"), ensure_ascii=False,
    allow_nan=False).encode()`` would write it (floats may be spelled differently, same value).

    Raises ``ValueError`` for a non-finite number or a lone surrogate, ``TypeError`` for a value
    that is not JSON, ``RecursionError`` for nesting too deep: the errors of :mod:`json`.
    """
    try:
        out = orjson.dumps(value)
    except TypeError:
        # Not JSON for orjson: a lone surrogate, a non-string key, a 65-bit integer, nesting
        # over 255. json gives the canonical answer (a value or the error).
        return _STD_ENCODE(value).encode()
    if b"null" in out:
        _STD_ENCODE(value)  # orjson writes NaN as null; json.dumps(allow_nan=False) raises
    return out


def dumps(value: Any) -> str:
    """:func:`dumpb` as ``str``."""
    return dumpb(value).decode()
