"""Typed configuration: defaults < file < environment < flags, errors that name the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from servers.common.config import ConfigError, ServerConfig, load_config


@dataclass
class ExampleConfig(ServerConfig):
    model_dir: Path = Path("models/example")
    device: str | None = None
    max_batch: int = 8
    scale: float = 2.0
    warm_up: bool = False


def test_defaults_when_nothing_is_given() -> None:
    config = load_config(ExampleConfig, [], env={})

    assert config == ExampleConfig()
    assert config.max_message_bytes >= 64 * 1024 * 1024


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "server.toml"
    file.write_text('max_batch = 2\nscale = 3\ndevice = "cuda:1"\nport = 7000\n')
    env = {"EX_CONFIG": str(file), "EX_MAX_BATCH": "4", "EX_WARM_UP": "yes"}

    config = load_config(ExampleConfig, ["--max-batch", "6", "--model-dir", "/weights"], env=env, env_prefix="EX_")

    assert config.max_batch == 6  # flag beats environment beats file
    assert config.warm_up is True  # environment
    assert config.scale == 3.0  # file (an int in TOML, a float field)
    assert config.device == "cuda:1"
    assert config.port == 7000
    assert config.model_dir == Path("/weights")


def test_json_file_and_optional_none(tmp_path: Path) -> None:
    file = tmp_path / "server.json"
    file.write_text(json.dumps({"device": None, "metrics-port": 0}))

    config = load_config(ExampleConfig, ["--config", str(file)], env={"EX_DEVICE": "none"}, env_prefix="EX_")

    assert config.device is None
    assert config.metrics_port == 0


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--max-batch", "many"], {}, "max_batch (from --max-batch): expected int"),
        ([], {"EX_SCALE": "big"}, "scale (from env EX_SCALE): expected float"),
        ([], {"EX_WARM_UP": "maybe"}, "warm_up (from env EX_WARM_UP): expected a boolean"),
    ],
)
def test_bad_values_name_the_field_and_the_source(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(ExampleConfig, argv, env=env, env_prefix="EX_")


def test_unknown_setting_in_a_file_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "server.toml"
    file.write_text("max_bach = 2\n")

    with pytest.raises(ConfigError, match="max_bach"):
        load_config(ExampleConfig, ["--config", str(file)], env={})
