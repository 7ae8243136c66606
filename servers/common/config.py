"""Typed configuration: one dataclass per component, its defaults written once, overridden by a file
(TOML or JSON, `--config PATH` or `<PREFIX>CONFIG`), then by the environment (`<PREFIX><FIELD>`), then by
command-line flags (`--field-name`). Field types drive parsing: str, int, float, bool, Path, and
`X | None` of those (an empty string or "none" means None).

    @dataclass
    class MyConfig(ServerConfig):
        model_dir: Path = Path("models/my_model")

    config = load_config(MyConfig, sys.argv[1:], env_prefix="MY_SERVER_")
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class ServerConfig:
    """What every model server needs. Components subclass it and add their own fields."""

    host: str = "127.0.0.1"
    port: int = 50051
    # Prometheus metrics on their own port; 0 turns them off.
    metrics_port: int = 9464
    # One generation at a time per device; this many more requests may wait, the rest get RESOURCE_EXHAUSTED.
    max_concurrent: int = 1
    max_queue: int = 4
    # Large enough for a 4K PNG in and several out.
    max_message_bytes: int = 64 * 1024 * 1024
    # On SIGTERM: stop accepting, let in-flight calls finish for at most this long, then exit.
    drain_grace_s: float = 60.0
    max_connection_age_s: float = 60.0
    max_connection_age_grace_s: float = 30.0
    log_level: str = "INFO"


class ConfigError(ValueError):
    """A configuration value could not be parsed; the message names the field and where it came from."""


def _field_type(cls: type[Any], name: str) -> tuple[type[Any], bool]:
    """(base type, optional) of a dataclass field."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise ConfigError(f"{name}: unsupported type {hint}")
        return rest[0], True
    return hint, False


def _parse(cls: type[Any], name: str, raw: object, source: str) -> object:
    base, optional = _field_type(cls, name)
    if isinstance(raw, str):
        text = raw.strip()
        if optional and text.lower() in ("", "none", "null"):
            return None
        if base is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ConfigError(f"{name} (from {source}): expected a boolean, got {raw!r}")
        try:
            return base(text)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name} (from {source}): expected {base.__name__}, got {raw!r}") from e
    if raw is None:
        if optional:
            return None
        raise ConfigError(f"{name} (from {source}): may not be empty")
    if base is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if base is Path and isinstance(raw, str | os.PathLike):
        return Path(raw)
    if not isinstance(raw, base) or (base is int and isinstance(raw, bool)):
        raise ConfigError(f"{name} (from {source}): expected {base.__name__}, got {raw!r}")
    return raw


def _read_file(path: Path) -> dict[str, object]:
    text = path.read_text()
    data: object = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_config(
    cls: type[C],
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    env_prefix: str = "",
    description: str | None = None,
) -> C:
    """Build `cls` (a dataclass) from its defaults, a config file, the environment and flags, in that order."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    env = os.environ if env is None else env
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = {f.name for f in fields}

    parser = argparse.ArgumentParser(description=description or cls.__doc__)
    parser.add_argument("--config", type=Path, default=None, help=f"TOML or JSON file (env {env_prefix}CONFIG)")
    for f in fields:
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, default=None, help=f"env {env_prefix}{f.name.upper()}"
        )
    args = parser.parse_args(list(argv) if argv is not None else [])

    values: dict[str, object] = {}
    config_path = args.config or (Path(env[f"{env_prefix}CONFIG"]) if env.get(f"{env_prefix}CONFIG") else None)
    if config_path is not None:
        for key, raw in _read_file(config_path).items():
            if key not in names:
                raise ConfigError(f"{key} (from {config_path}): unknown setting")
            values[key] = _parse(cls, key, raw, str(config_path))
    for f in fields:
        key = f"{env_prefix}{f.name.upper()}"
        if key in env:
            values[f.name] = _parse(cls, f.name, env[key], f"env {key}")
    for f in fields:
        raw = getattr(args, f.name)
        if raw is not None:
            values[f.name] = _parse(cls, f.name, raw, f"--{f.name.replace('_', '-')}")
    return cls(**values)
