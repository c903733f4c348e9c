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
import re
from typing import Any, Final

import orjson

#: A run of digits orjson could not hold in 64 bits (it would read it as a float).
_LONG_NUMBER: Final = re.compile(rb"[0-9]{20}")
_STD_ENCODE: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

Fragment = orjson.Fragment


def loads(data: bytes | str) -> Any:
    """Decode one JSON text exactly like ``json.loads`` (errors are ``ValueError``)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def fast_loads(data: bytes) -> Any:
    """orjson's decoding, or ``None`` when only ``json.loads`` gives the exact answer.

    ``None`` for: anything orjson refuses (not UTF-8, not JSON, lone surrogates, non-finite
    numbers, nesting over 1024) and numbers of 20 or more digits. A JSON ``null`` text is never
    asked for (callers want objects), so ``None`` is unambiguous.
    """
    if _LONG_NUMBER.search(data) is not None:
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
