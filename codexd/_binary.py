"""Where the bundled Codex binary lives (PyPI ``openai-codex-cli-bin``)."""

from __future__ import annotations

import os
from collections.abc import Mapping


def bundled_codex() -> str:
    """The path of the Codex executable that ships with ``openai-codex-cli-bin``.

    Raises ``RuntimeError`` with an install hint if the package is missing: codexd never falls
    back silently to some other ``codex`` on ``PATH``.
    """
    try:
        import codex_cli_bin
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        raise RuntimeError(
            "the Codex binary is missing: pip install openai-codex-cli-bin"
            " (or set child.command to a codex executable)"
        ) from exc
    return str(codex_cli_bin.bundled_codex_path())


def bundled_path_dir() -> str | None:
    """The folder of helper tools (``rg``) Codex expects on ``PATH``, if the package has one."""
    try:
        import codex_cli_bin
    except ImportError:  # pragma: no cover
        return None
    return str(codex_cli_bin.bundled_path_dir())


def with_codex_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the bundled helper folder prepended to ``PATH``."""
    out = dict(env)
    extra = bundled_path_dir()
    if extra:
        out["PATH"] = extra + os.pathsep + out.get("PATH", os.defpath)
    return out
