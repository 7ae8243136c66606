"""Typed settings: defaults < file < environment < flags, checked at load, errors that name the setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from servers.common.settings import ConfigError, ServerSettings, load_settings


class ExampleSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="EX_")

    model_dir: Path = Path("models/example")
    device: str | None = None
    max_batch: Annotated[int, Field(ge=1)] = 8
    scale: float = 2.0
    warm_up: bool = False


def test_defaults_when_nothing_is_given() -> None:
    settings = load_settings(ExampleSettings, [], env={})

    assert settings == ExampleSettings()
    assert settings.max_message_bytes >= 64 * 1024 * 1024
    assert settings.max_connection_age_s > 0  # replicas added later get traffic


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "server.toml"
    file.write_text('max_batch = 2\nscale = 3\ndevice = "cuda:1"\nport = 7000\n')
    env = {"EX_CONFIG": str(file), "EX_MAX_BATCH": "4", "EX_WARM_UP": "yes"}

    settings = load_settings(ExampleSettings, ["--max-batch", "6", "--model-dir", "/weights"], env=env)

    assert settings.max_batch == 6  # flag beats environment beats file
    assert settings.warm_up is True  # environment
    assert settings.scale == 3.0  # file (an int in TOML, a float field)
    assert settings.device == "cuda:1"
    assert settings.port == 7000
    assert settings.model_dir == Path("/weights")


def test_json_file_and_optional_none(tmp_path: Path) -> None:
    file = tmp_path / "server.json"
    file.write_text(json.dumps({"device": None, "metrics-port": 0}))

    settings = load_settings(ExampleSettings, ["--config", str(file)], env={})

    assert settings.device is None
    assert settings.metrics_port == 0


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--max-batch", "many"], {}, "max_batch (from --max-batch): Input should be a valid integer"),
        (["--max-batch", "0"], {}, "max_batch (from --max-batch): Input should be greater than or equal to 1"),
        ([], {"EX_SCALE": "big"}, "scale (from env EX_SCALE): Input should be a valid number"),
        ([], {"EX_WARM_UP": "maybe"}, "warm_up (from env EX_WARM_UP): Input should be a valid boolean"),
        ([], {"EX_PORT": "70000"}, "port (from env EX_PORT): Input should be less than or equal to 65535"),
        ([], {"EX_LOG_LEVEL": "LOUD"}, "log_level (from env EX_LOG_LEVEL)"),
    ],
)
def test_bad_values_name_the_setting_and_the_source(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ExampleSettings, argv, env=env)
    assert message in str(caught.value)


def test_unknown_setting_in_a_file_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "server.toml"
    file.write_text("max_bach = 2\n")

    with pytest.raises(ConfigError, match="max_bach"):
        load_settings(ExampleSettings, ["--config", str(file)], env={})


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_settings(ExampleSettings, ["--config", str(tmp_path / "missing.toml")], env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("max_batch = [\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(ExampleSettings, ["--config", str(broken)], env={})


def test_settings_objects_are_not_affected_by_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only `load_settings` reads the environment: library callers and tests get what they pass."""
    monkeypatch.setenv("EX_MAX_BATCH", "3")
    assert ExampleSettings().max_batch == 8
    assert load_settings(ExampleSettings, []).max_batch == 3
