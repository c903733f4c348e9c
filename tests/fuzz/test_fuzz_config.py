"""(d) Random configuration values, in process (no daemon).

For every key of the ``codexd._config.Config`` tree: random TOML values (strings with NUL and
non-ASCII, huge and negative integers, nan/inf, datetimes, arrays, inline tables), random
``CODEXD_*`` environment strings (for real keys and made-up ones, JSON fragments, deep brackets),
sometimes a file with a line that is not UTF-8. ``load_config(path, environ=...)`` must return a
Config or raise ConfigError whose message names a key that was set (or the file, for a damaged
file); never another exception. A returned Config must hold no NaN (a NaN timeout crashes trio).
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from ._cases import config_keys, run_config_case
from ._known_bad import CONFIGS
from ._profiles import fuzz_settings
from ._strategies import env_values, toml_values

KEYS = config_keys()
SECTIONS = sorted({k.split(".")[0] for k in KEYS if "." in k})
_stray = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda s: s not in SECTIONS and s not in KEYS
)


@st.composite
def config_cases(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True))
    toml: dict[str, Any] = {key: draw(toml_values()) for key in chosen}
    if draw(st.integers(0, 4)) == 0:
        stray = draw(_stray)
        section = draw(st.one_of(st.none(), st.sampled_from(SECTIONS)))
        key = f"{section}.{stray}" if section and f"{section}.{stray}" not in KEYS else stray
        toml.setdefault(key, draw(toml_values(3)))
    env_names = draw(
        st.lists(
            st.one_of(
                st.sampled_from(KEYS).map(lambda k: "CODEXD_" + k.upper().replace(".", "__")),
                _stray.map(lambda s: "CODEXD_" + s.upper()),
                st.sampled_from(
                    ["CODEXD_", "CODEXD_CONFIG", "CODEXD_DAEMON_ID", "CODEXD___", "CODEXD_CHILD__"]
                ),
            ),
            max_size=3,
            unique=True,
        )
    )
    env = {name: draw(env_values()) for name in env_names}
    case: dict[str, Any] = {"toml": toml, "env": env}
    if draw(st.integers(0, 9)) == 0:
        case["tail"] = {"$fz:bytes": draw(st.binary(min_size=1, max_size=8)).decode("latin-1")}
    return case


def _with_examples(test: Any) -> Any:
    for case in CONFIGS:
        test = example(case=case)(test)
    return test


@fuzz_settings("config")
@given(case=config_cases())
@_with_examples
def test_random_config_loads_or_names_the_bad_key(case: dict) -> None:
    run_config_case(case)
