"""What the fuzz suite knows about codexd's API surface, gathered in ONE place.

* The method list comes from the code: :data:`codexd._methods.METHODS` (the only import of it in
  this suite; repoint :func:`_code_methods` if the table moves) plus the two methods the connection
  itself serves, ``events/subscribe`` and ``events/unsubscribe``.
* Parameter names, the documented error codes and the documented enum values come from
  ``docs/api.md`` (its ``Methods`` and ``Errors`` tables), so the fuzzer keys its dicts with the
  names a client is told to use.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"

#: Served by the connection object, not by the METHODS table.
CONNECTION_METHODS = ("events/subscribe", "events/unsubscribe")

#: Methods that may legitimately keep a request open for a long time (they wait on purpose,
#: up to their ``timeoutS``; turn/interrupt is bounded by turns.interrupt_timeout_s instead).
WAITING_METHODS = frozenset({"turn/wait", "run/wait"})

#: "internal error (a bug)": never an acceptable answer to any input.
INTERNAL_ERROR = -32603

#: The size limit of one API message (docs/api.md: "A message over 4 MiB closes the connection").
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _code_methods() -> list[str]:
    from codexd._methods import METHODS  # the one place this suite imports the method table

    return list(METHODS)


def api_methods() -> list[str]:
    """Every method the API serves, in a stable order."""
    methods = _code_methods()
    return sorted({*methods, *CONNECTION_METHODS})


def _table_rows(text: str, header: str) -> list[list[str]]:
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(header))
    except StopIteration:
        raise RuntimeError(f"docs/api.md has no table starting with {header!r}") from None
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _strip_parens(cell: str) -> str:
    previous = None
    while previous != cell:
        previous = cell
        cell = re.sub(r"\([^()]*\)", "", cell)
    return cell


def documented_params() -> dict[str, list[str]]:
    """``{method: [param names]}`` from the Methods table of docs/api.md."""
    text = API_DOC.read_text()
    out: dict[str, list[str]] = {}
    for cells in _table_rows(text, "| method | params |"):
        method = cells[0].strip("`")
        names = re.findall(r"`([A-Za-z][A-Za-z0-9]*)\??`", _strip_parens(cells[1]))
        out[method] = names
    return out


def documented_values() -> list[str]:
    """The enum-ish words the docs list in parentheses (``untrusted``, ``read-only``, ...)."""
    text = API_DOC.read_text()
    values: set[str] = set()
    for cells in _table_rows(text, "| method | params |"):
        for group in re.findall(r"\(([^()]*)\)", cells[1]):
            values.update(re.findall(r"`([A-Za-z][A-Za-z-]*)`", group))
    return sorted(values)


def documented_error_codes() -> frozenset[int]:
    """Every code in the Errors table of docs/api.md."""
    text = API_DOC.read_text()
    return frozenset(int(cells[0]) for cells in _table_rows(text, "| code | meaning |"))


#: Codes a request may be answered with: the documented ones except "internal error".
ACCEPTED_ERROR_CODES = documented_error_codes() - {INTERNAL_ERROR}
PARAMS = documented_params()
ALL_PARAM_NAMES = sorted({name for names in PARAMS.values() for name in names})
DOC_VALUES = documented_values()


def params_of(method: str) -> list[str]:
    """The documented parameter names of ``method`` (none if the docs do not list it; the
    params property then draws keys from every documented name, and
    ``test_every_method_is_documented`` reports the gap)."""
    return PARAMS.get(method, [])


def undocumented_methods() -> list[str]:
    return [method for method in api_methods() if method not in PARAMS]
