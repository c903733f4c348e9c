"""The JSON Schema (draft 2020-12) of the local API, generated from the method table.

:func:`api_schema` walks every entry of :data:`codexd._methods.METHODS`: the fields of its
params record and of its result record, recursively, with the wire names the converter gives
them (camelCase). The schema is one object whose ``properties`` are the method names, each with
a ``params`` and a ``result`` schema; the records are in ``$defs`` (so
``#/$defs/Session`` is a Session), with the two notifications a subscriber receives
(``EventNotification``, ``EventsDroppedNotification``). Other languages generate clients from
it; ``docs/api.schema.json`` is its output (``codexd api-schema``).

Params records refuse unknown keys (``additionalProperties: false``) and list the fields a
request must give in ``required``; result records list every field they always carry. What a
schema cannot say (a path must exist, a string must not be blank) is still checked by the
daemon, whose error names the field.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import attrs

from ._methods import METHODS
from ._records import Event, to_camel, to_wire

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://codexd.invalid/api.schema.json"

_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class _Builder:
    """Accumulates ``$defs`` while translating types."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, type] = {}

    def type_schema(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is object:
            return {}
        if tp in _SIMPLE:
            return {"type": _SIMPLE[tp]}
        if attrs.has(tp):
            return {"$ref": f"#/$defs/{self.record(tp)}"}
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is Literal:
            return _literal(args)
        if origin in (Union, types.UnionType):
            return _union([self.type_schema(a) for a in args])
        if origin in (list, typing.Sequence, tuple) or tp is list:
            item = args[0] if args else Any
            return {"type": "array", "items": self.type_schema(item)}
        if origin in (dict, typing.Mapping) or tp is dict:
            value = args[1] if len(args) == 2 else Any
            schema: dict[str, Any] = {"type": "object"}
            inner = self.type_schema(value)
            if inner:
                schema["additionalProperties"] = inner
            return schema
        raise TypeError(f"no JSON Schema for {tp!r}")

    def record(self, cls: type) -> str:
        """The name of ``cls`` in ``$defs``, adding its schema the first time."""
        name = cls.__name__
        owner = self._owners.get(name)
        if owner is cls:
            return name
        if owner is not None:
            raise TypeError(f"two records named {name}: {owner!r} and {cls!r}")
        self._owners[name] = cls
        self.defs[name] = {}  # placeholder: recursion-safe
        strict = bool(getattr(cls, "__strict_params__", False))
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            wire = to_camel(field.name)
            schema = self.type_schema(hints[field.name])
            default = _default(field)
            if default is not _NO_DEFAULT:
                schema = {**schema, "default": default}
            properties[wire] = schema
            if not strict or default is _NO_DEFAULT:
                # Params: what a request must give. Results: the converter writes every field.
                required.append(wire)
        definition: dict[str, Any] = {"type": "object", "title": name}
        doc = _doc(cls)
        if doc:
            definition["description"] = doc
        definition["properties"] = properties
        if required:
            definition["required"] = required
        definition["additionalProperties"] = False
        self.defs[name] = definition
        return name


_NO_DEFAULT = object()


def _default(field: attrs.Attribute[Any]) -> Any:
    default: Any = field.default
    if default is attrs.NOTHING:
        return _NO_DEFAULT
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return _NO_DEFAULT
        default = default.factory()
    try:
        wire = to_wire(default)
        json.dumps(wire)
    except (TypeError, ValueError):
        return _NO_DEFAULT
    return wire


def _doc(cls: type) -> str:
    doc = cls.__doc__ or ""
    if not doc or doc.startswith(f"{cls.__name__}("):  # attrs' generated signature
        return ""
    return " ".join(doc.split())


def _literal(values: tuple[Any, ...]) -> dict[str, Any]:
    kinds = sorted({_SIMPLE[type(v)] for v in values})
    schema: dict[str, Any] = {"enum": list(values)}
    schema["type"] = kinds[0] if len(kinds) == 1 else kinds
    return schema


def _union(options: list[dict[str, Any]]) -> dict[str, Any]:
    if any(not option for option in options):
        return {}  # Any in a union: anything
    if all(set(option) == {"type"} for option in options):
        kinds: list[str] = []
        for option in options:
            kind = option["type"]
            for k in kind if isinstance(kind, list) else [kind]:
                if k not in kinds:
                    kinds.append(k)
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": options}


def _notifications(builder: _Builder) -> None:
    event = builder.type_schema(Event)
    builder.defs["EventNotification"] = {
        "type": "object",
        "title": "EventNotification",
        "description": "params of the `event` notification: one event of a subscription.",
        "properties": {"subscriptionId": {"type": "string"}, "event": event},
        "required": ["subscriptionId", "event"],
        "additionalProperties": False,
    }
    builder.defs["EventsDroppedNotification"] = {
        "type": "object",
        "title": "EventsDroppedNotification",
        "description": (
            "params of `events/dropped`: the subscriber fell behind; the connection is closed"
            " with 4008; subscribe again with since = lastSeq."
        ),
        "properties": {
            "subscriptionId": {"type": "string"},
            "lastSeq": {"type": "integer"},
            "reason": {"type": "string"},
        },
        "required": ["subscriptionId", "lastSeq", "reason"],
        "additionalProperties": False,
    }


def api_schema() -> dict[str, Any]:
    """The JSON Schema of every API method's params and result (see the module docstring)."""
    builder = _Builder()
    methods: dict[str, Any] = {}
    for name in sorted(METHODS):
        method = METHODS[name]
        methods[name] = {
            "type": "object",
            "description": method.summary,
            "properties": {
                "params": builder.type_schema(method.params),
                "result": builder.type_schema(method.result),
            },
            "required": ["params", "result"],
            "additionalProperties": False,
        }
    _notifications(builder)
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "codexd local API",
        "description": (
            "JSON-RPC 2.0 over WebSocket. Each property is a method: the `params` a request"
            " sends and the `result` it gets. Records are in $defs."
        ),
        "type": "object",
        "properties": methods,
        "additionalProperties": False,
        "$defs": dict(sorted(builder.defs.items())),
    }


def api_schema_json() -> str:
    """:func:`api_schema` as the text of ``docs/api.schema.json``."""
    return json.dumps(api_schema(), indent=2, sort_keys=True) + "\n"


def method_schema(method: str, part: Literal["params", "result"]) -> dict[str, Any]:
    """A schema for one method's params or result, with the ``$defs`` it refers to."""
    schema = api_schema()
    return {
        "$schema": DIALECT,
        "$defs": schema["$defs"],
        **schema["properties"][method]["properties"][part],
    }
