"""The life of each thing codexd follows, as explicit transition tables (h11's ``_state.py``).

Every status change of a turn, a run, an approval, a session, the child and the app-server
supervisor goes through :meth:`StateTable.move`, which refuses any move its table does not
list (:class:`~codexd._errors.IllegalTransition`): a completed turn can never run again, a
cancelled run never completes, a decided approval is never decided twice. The tables are
data, so the docs and the tests read them too (tests/test_states.py tries every pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import attrs

from ._errors import IllegalTransition

_S = TypeVar("_S", bound=str)


@attrs.frozen
class StateTable:
    """The statuses of one kind of thing and the moves allowed between them."""

    kind: str
    moves: Mapping[str, frozenset[str]]

    @property
    def states(self) -> frozenset[str]:
        return frozenset(self.moves)

    @property
    def final(self) -> frozenset[str]:
        """Statuses with no way out."""
        return frozenset(s for s, targets in self.moves.items() if not targets)

    def allows(self, current: str, new: str) -> bool:
        return new in self.moves.get(current, frozenset())

    def move(self, current: _S, new: _S) -> _S:
        """``new`` if the table allows ``current -> new``; else IllegalTransition."""
        if not self.allows(current, new):
            raise IllegalTransition(f"{self.kind} cannot go from {current!r} to {new!r}")
        return new


def _table(kind: str, moves: Mapping[str, tuple[str, ...]]) -> StateTable:
    return StateTable(kind, {state: frozenset(targets) for state, targets in moves.items()})


#: A turn, as the app-server names its statuses.
TURN = _table(
    "turn",
    {
        "inProgress": ("completed", "failed", "interrupted"),
        "completed": (),
        "failed": (),
        "interrupted": (),
    },
)

#: A ``codex exec`` run.
RUN = _table(
    "run",
    {
        # A queued run can fail before it starts (invalid after a restart, cannot spawn).
        "queued": ("running", "cancelled", "failed", "interrupted"),
        "running": ("completed", "failed", "cancelled", "timed_out", "interrupted"),
        "completed": (),
        "failed": (),
        "cancelled": (),
        "timed_out": (),
        "interrupted": (),
    },
)

#: A server request held for an answer.
APPROVAL = _table(
    "approval",
    {
        "pending": ("accepted", "declined", "cancelled", "timed_out"),
        "accepted": (),
        "declined": (),
        "cancelled": (),
        "timed_out": (),
    },
)

#: A session (its thread stays in CODEX_HOME after it is closed).
SESSION = _table("session", {"active": ("closed",), "closed": ()})

#: The supervised child process, as recorded in ChildState. Any state may be found at boot
#: (a killed daemon left it), so every state can go to ``starting``, ``external`` or ``idle``.
_BOOT = ("starting", "external", "idle")
CHILD = _table(
    "child",
    {
        "idle": (*_BOOT, "stopped"),
        "starting": (*_BOOT, "running", "failed", "stopped"),
        "running": (*_BOOT, "stopped", "failed", "restarting"),
        "stopped": (*_BOOT, "restarting", "failed"),
        "failed": (*_BOOT, "restarting", "failed", "stopped"),
        "restarting": (*_BOOT, "failed", "stopped"),
        "external": (*_BOOT, "restarting", "failed", "stopped"),
    },
)

#: The app-server supervisor's own life: one connection at a time, restarted with backoff,
#: parked in ``failed`` after too many restarts (or a fatal error) until an operator restart.
SUPERVISOR = _table(
    "supervisor",
    {
        "connecting": ("ready", "backoff", "failed", "stopping"),
        "ready": ("backoff", "failed", "stopping", "connecting"),
        "backoff": ("connecting", "stopping"),
        "failed": ("connecting", "stopping"),
        "stopping": ("stopped",),
        "stopped": (),
    },
)

TABLES = (TURN, RUN, APPROVAL, SESSION, CHILD, SUPERVISOR)
