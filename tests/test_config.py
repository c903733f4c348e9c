from __future__ import annotations

from pathlib import Path

import pytest

from codexd import ApiConfig, ConfigError, StoreConfig, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codexd.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    config = load_config(environ={})
    assert config.mode == "app-server"
    assert config.child.strategy == "spawn"
    assert config.child.args == ["app-server"]
    assert config.approvals.policy == "ask"
    assert config.state_dir.endswith("codexd")


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[restart]\npolcy = 'always'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "restart.polcy: unknown key" in str(info.value)
    assert str(path) in str(info.value)


def test_bad_value_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[runs]\nconcurrency = 'lots'\n[approvals]\npolicy = 'maybe'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert "runs.concurrency: expected an integer, got 'lots'" in message
    assert "approvals.policy: must be one of 'ask', 'accept', 'decline'" in message


def test_validator_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[stop]\ngrace_s = -1\n")
    with pytest.raises(ConfigError, match=r"stop\.grace_s: must be >= 0"):
        load_config(path, environ={})


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = write(tmp_path, "mode = 'exec'\n[runs]\nconcurrency = 3\n")
    env = {"CODEXD_RUNS__CONCURRENCY": "5", "CODEXD_API__ENABLED": "false"}
    config = load_config(path, environ=env)
    assert config.mode == "exec"
    assert config.runs.concurrency == 5
    assert config.api.enabled is False
    config = load_config(path, environ=env, overrides={"runs.concurrency": 7})
    assert config.runs.concurrency == 7


def test_bad_env_value_names_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"CODEXD_STOP__GRACE_S": "soon"})
    assert "stop.grace_s" in str(info.value)
    assert "env CODEXD_STOP__GRACE_S" in str(info.value)


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "mode = 'exec'\n")
    assert load_config(environ={"CODEXD_CONFIG": str(path)}).mode == "exec"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})
    path = write(tmp_path, "mode = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path, environ={})


def test_external_needs_endpoint(tmp_path: Path) -> None:
    path = write(tmp_path, "[child]\nstrategy = 'external'\n")
    with pytest.raises(ConfigError, match=r"child\.endpoint: required"):
        load_config(path, environ={})
    path = write(tmp_path, "[child]\nstrategy = 'external'\nendpoint = 'ftp://x'\n")
    with pytest.raises(ConfigError, match=r"child\.endpoint: unsupported scheme"):
        load_config(path, environ={})


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[stop]\ngrace_s = nan\n", "stop.grace_s", "finite"),
        ("[turns]\nrequest_timeout_s = inf\n", "turns.request_timeout_s", "finite"),
        ('state_dir = ""\n', "state_dir", "must not be empty"),
        ('[api]\nlisten = "unix://relative.sock"\n', "api.listen", "absolute"),
        ('[api]\nlisten = "ws://127.0.0.1:99999"\n', "api.listen", "invalid"),
        ('[api]\nlisten = "ws://127.0.0.1"\n', "api.listen", "port"),
        ('[child]\ncommand = "co\\u0000dex"\n', "child.command", "NUL"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "codexd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert key in str(info.value) and problem in str(info.value)
    assert str(path) in str(info.value)


def test_nan_from_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="CODEXD_STOP__GRACE_S"):
        load_config(environ={"CODEXD_STOP__GRACE_S": "nan"})


def test_store_durability_is_full_unless_set_and_checked(tmp_path: Path) -> None:
    assert load_config(environ={}).store.durability == "full"
    path = write(tmp_path, "[store]\ndurability = 'normal'\n")
    assert load_config(path, environ={}).store.durability == "normal"
    env = {"CODEXD_STORE__DURABILITY": "normal"}
    assert load_config(environ=env).store.durability == "normal"
    bad = write(tmp_path, "[store]\ndurability = 'fast'\n")
    with pytest.raises(ConfigError, match=r"store\.durability: must be one of 'full', 'normal'"):
        load_config(bad, environ={})


async def test_a_normal_durability_store_keeps_what_it_acknowledged(tmp_path: Path) -> None:
    import attrs

    from codexd import Config, StopConfig, open_daemon

    config = Config(
        mode="exec",
        state_dir=str(tmp_path / "state"),
        api=ApiConfig(enabled=False),
        stop=StopConfig(grace_s=1),
    )
    config = attrs.evolve(config, store=StoreConfig(durability="normal"))
    async with open_daemon(config) as daemon:
        event = await daemon.store.record("test.marker", "kept")
    async with open_daemon(config) as daemon:
        found = await daemon.store.query_events(limit=10_000)
        assert any(e.seq == event.seq and e.type == "test.marker" for e in found)
