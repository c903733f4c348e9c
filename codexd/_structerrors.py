"""Turn cattrs' structuring errors into ``(path, problem)`` pairs that name the field.

Used at both of codexd's input boundaries: configuration (``restart.max_restarts``) and API
params (``metadata.owner``). ``rename`` maps each attribute name of the path (``timeout_s``)
to the name the user wrote (``timeoutS`` on the wire; itself in TOML).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from ._jsoncheck import InvalidValue

Problem = tuple[str, str]


def describe(exc: BaseException, rename: Callable[[str], str] = str) -> list[Problem]:
    """Flatten a cattrs error tree; each problem names its dotted path (``""`` for the root)."""
    return _walk(exc, "", rename)


def _join(path: str, part: str) -> str:
    if part.startswith("["):
        return path + part
    return f"{path}.{part}" if path else part


def _walk(exc: BaseException, path: str, rename: Callable[[str], str]) -> list[Problem]:
    if isinstance(exc, ForbiddenExtraKeysError):
        return [(_join(path, key), "unknown key") for key in sorted(exc.extra_fields)]
    if isinstance(exc, ClassValidationError | IterableValidationError):
        out: list[Problem] = []
        for sub in exc.exceptions:
            part = _part_of(sub, rename)
            out.extend(_walk(sub, _join(path, part) if part else path, rename))
        return out
    if isinstance(exc, KeyError):
        return [(path, "missing")]
    if isinstance(exc, InvalidValue):  # raised by a record's own validator, path included
        return [(_join(path, exc.path) if exc.path else path, exc.problem)]
    message = str(exc)
    # cattrs reports a bad Literal generically; list the choices instead.
    if "not in literal" in message:
        choices = re.findall(r"'([^']*)'", message.split("not in literal", 1)[1])
        message = "must be one of " + ", ".join(repr(c) for c in choices)
    elif isinstance(exc, AttributeError | TypeError) and "object has no attribute" in message:
        message = "has the wrong type"
    # attrs validators name their attribute first ("grace_s must be >= 0"): make it the key.
    first, _, rest = message.partition(" ")
    if rest.startswith("must") and first.isidentifier() and not path.endswith(rename(first)):
        return [(_join(path, rename(first)), rest)]
    return [(path, message)]


def _part_of(exc: BaseException, rename: Callable[[str], str]) -> str:
    notes: list[str] = getattr(exc, "__notes__", None) or []
    for note in notes:
        # "Structuring class Config @ attribute child", "... @ index 2", "... @ key 'a'".
        if "@ attribute " in note:
            return rename(note.rsplit("@ attribute ", 1)[1])
        if "@ index " in note:
            return f"[{note.rsplit('@ index ', 1)[1]}]"
        if "@ key " in note:
            return note.rsplit("@ key ", 1)[1].strip("'\"")
    return ""
