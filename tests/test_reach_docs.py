"""The docs keep up with the code: every API method and every appserver key is documented."""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from codexd import AppServerConfig, RunsConfig
from codexd._methods import METHODS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_api_md_lists_every_method_of_the_method_table() -> None:
    text = (DOCS / "api.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))
    missing = sorted(set(METHODS) - rows)
    assert not missing, f"docs/api.md has no table row for: {missing}"
    unknown = sorted(m for m in rows - set(METHODS) if "/" in m)
    assert not unknown, f"docs/api.md documents methods that do not exist: {unknown}"


def test_configuration_md_lists_the_appserver_and_runs_keys() -> None:
    text = (DOCS / "configuration.md").read_text()
    for section, cls in (("appserver", AppServerConfig), ("runs", RunsConfig)):
        for field in attrs.fields(cls):
            assert f"`{section}.{field.name}`" in text, f"{section}.{field.name} undocumented"
