"""A throw-away ``CODEX_HOME`` (and ``HOME``) that points the real Codex at a fake provider.

The config turns off everything that would reach out of the machine (plugins fetch a git
remote, analytics, update checks, the shell snapshot that sources the real ``~/.bashrc``) and
every retry loop against a dead provider, so a test fails fast instead of hanging.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from .._binary import bundled_codex, bundled_path_dir

_CONFIG = """\
model = "{model}"
model_provider = "mock"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
shell_snapshot = false
unbounded_connection_retries = false

[model_providers.mock]
name = "mock"
base_url = "{base_url}"
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""

#: Variables that must never leak a developer's real account into a test child.
_SCRUBBED_PREFIXES = ("OPENAI_", "CODEX_", "AZURE_OPENAI")


@attrs.frozen
class CodexHome:
    """Where the fake ``CODEX_HOME`` and ``HOME`` are."""

    codex_home: Path
    home: Path

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The child environment: ``base`` (default ``os.environ``) scrubbed, plus ours.

        With ``base={}`` only the variables codexd adds are returned (for ``child.env``).
        """
        source = os.environ if base is None else base
        env = {k: v for k, v in source.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        path = env.get("PATH") or os.environ.get("PATH", os.defpath)
        helper_dir = bundled_path_dir()
        env.update(
            {
                "CODEX_HOME": str(self.codex_home),
                "HOME": str(self.home),
                "MOCK_API_KEY": "x",
                "PATH": f"{helper_dir}{os.pathsep}{path}" if helper_dir else path,
            }
        )
        return env


def write_codex_home(
    root: Path, *, base_url: str, model: str = "mock-model", extra_config: str = ""
) -> CodexHome:
    """Create ``root/codex-home/config.toml`` and ``root/home``; return where they are."""
    codex_home = root / "codex-home"
    home = root / "home"
    codex_home.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    text = _CONFIG.format(model=model, base_url=base_url)
    if extra_config:
        text += "\n" + extra_config + "\n"
    (codex_home / "config.toml").write_text(text)
    return CodexHome(codex_home, home)


def codex_binary() -> Path:
    """The bundled Codex executable; raises RuntimeError if ``openai-codex-cli-bin`` is absent."""
    return Path(bundled_codex())
