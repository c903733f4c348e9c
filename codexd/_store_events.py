"""How the store encodes what it writes: an event as one JSON line, a record as one row.

The line of an event is encoded once (orjson) and used everywhere: the ``events`` table,
``events.jsonl``, and every API subscriber's frame (spliced in, see
:func:`codexd._subscriptions.event_frames`), so no subscriber encodes an event again.

Encoding never fails a batch: a value that JSON or UTF-8 cannot hold (a lone surrogate, a
non-finite number) is repaired and the event flagged ``repairedByCodexd``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import attrs
import orjson

from ._database import Row
from ._database import dumps as dumps_valid_json
from ._json import dumpb
from ._jsoncheck import scrub
from ._records import Approval, Event, EventLevel, Run, Session, to_wire

#: One event to number: level, type, message, detail, session id, run id.
EventSpec: TypeAlias = tuple[
    EventLevel, str, str, "dict[str, Any] | None", "str | None", "str | None"
]
Keyed: TypeAlias = Session | Run | Approval


def _line(event: Event) -> bytes:
    """The event's JSON line; ValueError/RecursionError for a value JSON or UTF-8 cannot hold."""
    try:
        line = orjson.dumps(
            {
                "seq": event.seq,
                "ts": event.ts,
                "level": event.level,
                "type": event.type,
                "message": event.message,
                "detail": event.detail,
                "sessionId": event.session_id,
                "runId": event.run_id,
            }
        )
    except TypeError:
        # A lone surrogate, a non-string key, a 65-bit integer, deep nesting: json decides.
        line = dumpb(to_wire(event))
    else:
        # orjson writes NaN as null: a "null" before the trailing ids may be one (or a
        # plain null, or the word in a text): json.dumps(allow_nan=False) decides then.
        null = line.find(b"null")
        if null != -1 and null < line.rfind(b',"sessionId":'):
            dumpb(event.detail)
    # orjson's result keeps its whole (~4 KiB) work buffer; lines are kept (subscriber
    # buffers, batches in flight), so keep an exact-size copy.
    return bytes(memoryview(line))


def storable(event: Event) -> tuple[Event, bytes]:
    """The event and its JSON line; a value JSON or UTF-8 cannot hold is repaired and flagged.

    Peers' output is repaired where it enters (the JSON-RPC core, the exec reader); this is the
    last line of defence, so that no event can ever fail a batch or the API's encoder.
    """
    try:
        return event, _line(event)
    except (ValueError, TypeError, RecursionError):
        pass
    fixed = attrs.evolve(
        event,
        message=scrub(event.message)[0],
        type=scrub(event.type)[0],
        detail={**(scrub(event.detail)[0] or {}), "repairedByCodexd": True},
        session_id=scrub(event.session_id)[0],
        run_id=scrub(event.run_id)[0],
    )
    try:
        return fixed, _line(fixed)
    except (ValueError, TypeError, RecursionError):
        # Not JSON at all (an object of no JSON type): keep the event, say what it was.
        fixed = attrs.evolve(fixed, detail={"repairedByCodexd": True, "unencodable": True})
        return fixed, _line(fixed)


def row_of(record: Keyed) -> Row:
    """The upsert of one record: its table, key, indexed columns and camelCase JSON document."""
    wire = to_wire(record)
    try:
        data = dumpb(wire).decode()
    except (ValueError, RecursionError):
        data = dumps_valid_json(scrub(wire)[0])
    if isinstance(record, Session):
        return Row("sessions", record.session_id, record.status, record.thread_id, data)
    if isinstance(record, Run):
        return Row("runs", record.run_id, record.status, record.created_at, data)
    return Row("approvals", record.approval_id, record.status, None, data)
