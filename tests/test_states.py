"""The transition tables: every pair a table does not list is refused, every listed one allowed."""

from __future__ import annotations

import itertools

import pytest

from codexd import IllegalTransition
from codexd._states import APPROVAL, RUN, SESSION, TABLES, TURN, StateTable


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.kind)
def test_every_pair_is_allowed_exactly_when_listed(table: StateTable) -> None:
    for current, new in itertools.product(table.states, repeat=2):
        if new in table.moves[current]:
            assert table.move(current, new) == new
        else:
            with pytest.raises(IllegalTransition, match=f"{table.kind} cannot go from"):
                table.move(current, new)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.kind)
def test_every_target_is_a_known_state(table: StateTable) -> None:
    for targets in table.moves.values():
        assert targets <= table.states


@pytest.mark.parametrize("table", [TURN, RUN, APPROVAL, SESSION], ids=lambda t: t.kind)
def test_final_states_have_no_way_out(table: StateTable) -> None:
    assert table.final, f"{table.kind} has no final state"
    for final, other in itertools.product(table.final, table.states):
        with pytest.raises(IllegalTransition):
            table.move(final, other)


def test_the_moves_users_rely_on() -> None:
    assert TURN.move("inProgress", "completed") == "completed"
    with pytest.raises(IllegalTransition):
        TURN.move("completed", "inProgress")
    with pytest.raises(IllegalTransition):
        RUN.move("cancelled", "completed")
    with pytest.raises(IllegalTransition):
        APPROVAL.move("accepted", "declined")
    with pytest.raises(IllegalTransition):
        SESSION.move("closed", "active")
    with pytest.raises(IllegalTransition):
        TURN.move("bogus", "completed")
