"""Fuzz cases as plain JSON data, and how they become the bytes that go on the wire.

Every input the suite generates is a JSON-serialisable tree, so a failing input can be saved
verbatim in ``tests/fuzz/corpus/`` and replayed. Inputs that JSON cannot hold directly are
written as one-key *tokens*:

``{"$fz:raw": "1e400"}``
    literal text inserted into a JSON document as is (``NaN``, ``Infinity``, ``1e400``,
    ``-0``...); ``{"$fz:raw": [["0.", 1], ["1", 5000]]}`` spells long literals as runs.
``{"$fz:repeat": [node, n]}``
    ``node`` repeated ``n`` times: a 1 MB string inside JSON, ``"[" * 200000`` as a frame.
``{"$fz:nest": ["array" | "object", n, inner]}``
    ``inner`` nested ``n`` deep in arrays or ``{"k": ...}`` objects, built without recursion.
``{"$fz:bytes": "latin-1 text"}``
    raw bytes (each character is one byte), for handshakes, binary frames and child output.
``{"$fz:json": tree, "ascii": bool}``
    ``tree`` rendered as JSON text; with ``ascii`` every non-ASCII character is escaped,
    otherwise only lone surrogates are (a WebSocket text frame must be valid UTF-8).
``{"$fz:concat": [node, ...]}``
    the rendered nodes one after another.

Strings may hold placeholders such as ``@@TOKEN@@`` or ``@@SESSION@@``; they are replaced by the
runtime values in ``refs`` (the API token, ids created when the daemon started), so that a case
stays meaningful against a fresh daemon.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

Refs = Mapping[str, str]

_SURROGATE = re.compile("[\ud800-\udfff]")
_PLACEHOLDER = re.compile(r"@@[A-Z0-9_]+@@")


def raw(text: str) -> dict[str, Any]:
    return {"$fz:raw": text}


def repeat(node: Any, count: int) -> dict[str, Any]:
    return {"$fz:repeat": [node, count]}


def nest(kind: str, depth: int, inner: Any) -> dict[str, Any]:
    return {"$fz:nest": [kind, depth, inner]}


def as_bytes(data: bytes) -> dict[str, Any]:
    return {"$fz:bytes": data.decode("latin-1")}


def as_json(tree: Any, *, ascii_only: bool = True) -> dict[str, Any]:
    return {"$fz:json": tree, "ascii": ascii_only}


def concat(*nodes: Any) -> dict[str, Any]:
    return {"$fz:concat": list(nodes)}


def _token(node: Any) -> tuple[str, Any] | None:
    if isinstance(node, dict) and len(node) in (1, 2):
        for key in node:
            if isinstance(key, str) and key.startswith("$fz:"):
                return key, node[key]
    return None


def raw_text(arg: Any) -> str:
    """The text of a ``$fz:raw`` token: a string, or ``[[text, count], ...]`` runs."""
    if isinstance(arg, list):
        return "".join(str(text) * int(count) for text, count in arg)
    return str(arg)


def substitute(text: str, refs: Refs) -> str:
    if "@@" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: refs.get(m.group(0)[2:-2], m.group(0)), text)


def _escape_surrogates(text: str) -> str:
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def _json_string(value: str, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


def json_text(tree: Any, refs: Refs, *, ascii_only: bool = True) -> str:
    """``tree`` as JSON text; tokens expand, placeholders are substituted."""
    parts: list[str] = []
    _emit(tree, refs, ascii_only, parts)
    text = "".join(parts)
    return text if ascii_only else _escape_surrogates(text)


def _emit(node: Any, refs: Refs, ascii_only: bool, out: list[str]) -> None:
    token = _token(node)
    if token is not None:
        kind, arg = token
        if kind == "$fz:raw":
            out.append(raw_text(arg))
        elif kind == "$fz:repeat":
            out.append(_json_string(render_text(node, refs), ascii_only))
        elif kind == "$fz:nest":
            shape, depth, inner = arg
            opener, closer = ("[", "]") if shape == "array" else ('{"k":', "}")
            out.append(opener * int(depth))
            _emit(inner, refs, ascii_only, out)
            out.append(closer * int(depth))
        elif kind == "$fz:bytes":
            out.append(_json_string(arg, ascii_only))
        elif kind == "$fz:json":
            _emit(arg, refs, ascii_only, out)
        elif kind == "$fz:concat":
            out.append(_json_string(render_text(node, refs), ascii_only))
        else:
            raise ValueError(f"unknown token {kind}")
        return
    if isinstance(node, str):
        out.append(_json_string(substitute(node, refs), ascii_only))
    elif node is None or isinstance(node, bool | int | float):
        out.append(json.dumps(node))
    elif isinstance(node, list):
        out.append("[")
        for i, item in enumerate(node):
            if i:
                out.append(",")
            _emit(item, refs, ascii_only, out)
        out.append("]")
    elif isinstance(node, dict):
        out.append("{")
        for i, (key, value) in enumerate(node.items()):
            if i:
                out.append(",")
            out.append(_json_string(substitute(str(key), refs), ascii_only))
            out.append(":")
            _emit(value, refs, ascii_only, out)
        out.append("}")
    else:
        raise TypeError(f"cannot render {type(node).__name__}")


def render_text(node: Any, refs: Refs) -> str:
    """A node as text (a text frame): strings as is, tokens expanded."""
    token = _token(node)
    if token is None:
        if isinstance(node, str):
            return substitute(node, refs)
        return json_text(node, refs)
    kind, arg = token
    if kind == "$fz:json":
        return json_text(arg, refs, ascii_only=bool(node.get("ascii", True)))
    if kind == "$fz:repeat":
        inner, count = arg
        return render_text(inner, refs) * int(count)
    if kind == "$fz:concat":
        return "".join(render_text(part, refs) for part in arg)
    if kind == "$fz:bytes":
        return str(arg)
    return json_text(node, refs)


def render_bytes(node: Any, refs: Refs) -> bytes:
    """A node as bytes: ``$fz:bytes`` verbatim, text as UTF-8 (lone surrogates kept raw)."""
    token = _token(node)
    if token is not None:
        kind, arg = token
        if kind == "$fz:bytes":
            return substitute(str(arg), refs).encode("latin-1", "replace")
        if kind == "$fz:repeat":
            inner, count = arg
            return render_bytes(inner, refs) * int(count)
        if kind == "$fz:concat":
            return b"".join(render_bytes(part, refs) for part in arg)
    return render_text(node, refs).encode("utf-8", "surrogatepass")


def describe(node: Any, limit: int = 300) -> str:
    """A short, printable description of a case for failure messages."""
    text = json.dumps(node, ensure_ascii=True, default=repr)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
