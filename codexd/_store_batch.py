"""What the store takes from its channel, and how a batch of it is prepared for one transaction.

A submission (:class:`Item`) carries events to number (one, or a whole stdout chunk's worth),
record changes, meta keys or child output. :func:`prepare` numbers the events of a batch from
the last committed ``seq``, evaluates the record changes in order on top of the committed state
and of the batch so far, and encodes everything (:mod:`codexd._store_events`): the result
(:class:`Prepared`) is ready to write, and nothing in memory has changed yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from . import _time
from ._errors import StoreError
from ._records import Approval, ChildState, Event, Run, Session, to_wire
from ._store_events import EventSpec, Keyed, storable

StoredRecord = Session | Run | Approval | ChildState


@attrs.frozen
class Update:
    """A change to one record, computed in the store task from its latest value.

    ``change`` gets the current record (``None`` if there is none) and returns the new one, or
    ``None`` to leave it as it is. It must be quick and must not raise.
    """

    kind: type[Session] | type[Run] | type[Approval]
    key: str
    change: Callable[[Any], Any]


Change = StoredRecord | Update


def patch(kind: type[Any], key: str, change: Callable[[Any], Any]) -> Update:
    """An :class:`Update` of an existing record (nothing happens if it does not exist)."""
    return Update(kind, key, lambda current: change(current) if current is not None else None)


def key_of(record: Keyed) -> str:
    if isinstance(record, Session):
        return record.session_id
    if isinstance(record, Run):
        return record.run_id
    return record.approval_id


@attrs.define
class Item:
    """One submission: events to number, record changes, meta keys, or child output.

    ``result`` is the first event once numbered (what :meth:`Store.record` returns).
    """

    events: Sequence[EventSpec] = ()
    changes: tuple[Change, ...] = ()
    meta: Mapping[str, Any] | None = None
    output: tuple[Literal["stdout", "stderr"], bytes] | None = None
    ack: trio.Event | None = None
    result: Event | None = None
    error: BaseException | None = None


@attrs.define
class Prepared:
    """A batch ready to write: nothing in memory has changed yet."""

    events: list[tuple[Event, bytes]]
    records: dict[tuple[type, str], Keyed]
    child: ChildState | None
    meta: dict[str, Any]
    outputs: list[tuple[str, bytes]]
    reopen: bool


def prepare(
    batch: Iterable[Item],
    *,
    last_seq: int,
    committed: Mapping[type, Mapping[str, Any]],
    pending_meta: Mapping[str, Any],
    reopen: bool,
    fail: Callable[[Item, BaseException], None],
) -> Prepared:
    """Number the events (from ``last_seq``) and evaluate the changes; memory is not touched.

    An item whose change raises is failed alone (``fail``) and left out; the batch goes on.
    """
    records: dict[tuple[type, str], Keyed] = {}
    child: ChildState | None = None
    events: list[tuple[Event, bytes]] = []
    outputs: list[tuple[str, bytes]] = []
    meta = dict(pending_meta)
    ts = _time.now_iso()
    seq = last_seq
    append = events.append
    for item in batch:
        if item.changes:
            try:
                changed, child_change = evaluate(item, records, committed)
            except Exception as exc:  # a faulty Update fails its own item, never the batch
                fail(item, StoreError(f"a change could not be applied: {exc!r}"))
                continue
            records.update(changed)
            child = child_change or child
        if item.meta:
            meta.update(item.meta)
        if item.output is not None:
            outputs.append(item.output)
        first = True
        for level, etype, message, detail, session_id, run_id in item.events:
            seq += 1
            stored = storable(Event(seq, ts, level, etype, message, detail, session_id, run_id))
            if first:
                item.result = stored[0]
                first = False
            append(stored)
    if child is not None:
        meta["child"] = to_wire(child)
    if events:
        meta["last_seq"] = events[-1][0].seq
    return Prepared(events, records, child, meta, outputs, reopen)


def evaluate(
    item: Item,
    records: Mapping[tuple[type, str], Keyed],
    committed: Mapping[type, Mapping[str, Any]],
) -> tuple[dict[tuple[type, str], Keyed], ChildState | None]:
    """The records one item changes, evaluated on top of the batch so far."""
    changed: dict[tuple[type, str], Keyed] = {}
    child: ChildState | None = None
    for change in item.changes:
        if isinstance(change, ChildState):
            child = change
            continue
        if isinstance(change, Update):
            slot = (change.kind, change.key)
            current = (
                changed.get(slot) or records.get(slot) or committed[change.kind].get(change.key)
            )
            new = change.change(current)
            if new is None:
                continue
        else:
            new = change
        changed[(type(new), key_of(new))] = new
    return changed, child
