"""Typed, validated configuration on pydantic-settings: one settings class per component.

Every component's settings class owns its defaults and its validation; a component that is made of
parts nests their settings (pydantic dataclasses), so a default is written once, next to the code
that uses it. Values are read, later winning: the defaults, a TOML or JSON file (`--config PATH` or
`<PREFIX>CONFIG`), the environment (`<PREFIX><FIELD>`, nested fields as `<PREFIX><PART>__<FIELD>`),
then flags (`--field-name`, nested `--part.field-name`).

    class MyServerSettings(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="MY_SERVER_")
        model_dir: Path = Path("models/my_model")

    settings = load_settings(MyServerSettings, sys.argv[1:])   # ConfigError names the bad setting

A bad value stops the process at start-up with a message naming the setting and where it came
from, rather than a server that reports SERVING and then refuses every request.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

S = TypeVar("S", bound="ServerSettings")
T = TypeVar("T")

Port = Annotated[int, Field(ge=0, le=65535)]


class ServerSettings(BaseSettings):
    """What every gRPC server of this project needs; components subclass it and add their own fields."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_nested_delimiter="__", validate_default=True)

    host: str = "127.0.0.1"
    port: Port = 50051
    # Prometheus metrics on their own port; 0 turns them off.
    metrics_port: Port = 9464
    # Requests worked on at once; this many more may wait (max_queue), the rest get RESOURCE_EXHAUSTED.
    max_concurrent: Annotated[int, Field(ge=1)] = 1
    max_queue: Annotated[int, Field(ge=0)] = 4
    # Large enough for a 4K PNG in and several out.
    max_message_bytes: Annotated[int, Field(ge=4 * 1024 * 1024)] = 64 * 1024 * 1024
    # On SIGTERM: stop accepting, let in-flight calls finish for at most this long, then exit.
    drain_grace_s: Annotated[float, Field(ge=0)] = 60.0
    # Clients re-resolve DNS only when a connection closes: closing each connection after this long
    # (plus the grace below for calls in flight) lets replicas added later receive traffic. 0: never.
    max_connection_age_s: Annotated[float, Field(ge=0)] = 60.0
    max_connection_age_grace_s: Annotated[float, Field(ge=0)] = 30.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load_settings` reads the file, the environment and the flags itself (in that order, each
        # source named in errors); constructing a settings object directly uses only its arguments, so
        # tests and library callers are never affected by the process environment.
        return (init_settings,)


def section(cls: type[T]) -> type[T]:
    """A component's own (stdlib, frozen) settings dataclass as a validated, nestable settings section.

    The component keeps a plain dataclass with its defaults and checks; the section is a pydantic
    subclass of it (instances are still `cls`), so the settings of a whole process nest each
    component's settings without writing a field twice, and env/flags reach each nested field.
    """
    return pydantic.dataclasses.dataclass(cls, frozen=True, config=ConfigDict(extra="forbid"))  # type: ignore[return-value]


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the setting, the problem and the source."""


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ by default)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror or error}") from error
    try:
        data: object = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"config file {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    return _snake_keys(data)


def _snake_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {str(k).replace("-", "_"): _snake_keys(v) if isinstance(v, dict) else v for k, v in data.items()}


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win, key by key, nested tables merged."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = _merge(merged[key], value)
            else:
                merged[key] = value
    return merged


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _describe(error: ValidationError, origins: Mapping[str, str]) -> str:
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "settings"
        origin = next((o for name, o in origins.items() if name == where or name.startswith(f"{where}.")), "default")
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where} (from {origin}): {message}")
    return "; ".join(problems)


def load_settings(
    cls: type[S],
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    description: str | None = None,
) -> S:
    """Build `cls` from its defaults, a config file, the environment and flags (later wins); validate it."""
    environ = os.environ if env is None else env
    prefix = str(cls.model_config.get("env_prefix", ""))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, rest = pre.parse_known_args(list(argv or []))
    path = known.config or (Path(environ[f"{prefix}CONFIG"]) if environ.get(f"{prefix}CONFIG") else None)

    file_values = _read_file(path) if path is not None else {}
    env_values = _Environment(cls, environ)()
    cli: CliSettingsSource[argparse.ArgumentParser] = CliSettingsSource(
        cls,
        cli_prog_name=None,
        cli_parse_args=None,
        cli_kebab_case=True,
        cli_implicit_flags=False,
        cli_avoid_json=True,
        cli_hide_none_type=True,
        cli_enforce_required=False,
    )
    cli.root_parser.description = description or cls.__doc__
    cli.root_parser.add_argument("--config", type=Path, help=f"TOML or JSON file (env {prefix}CONFIG)")
    flag_values = cli(args=list(rest))()

    origins: dict[str, str] = {}
    for name in _flatten(file_values):
        origins[name] = f"config file {path}"
    for name in _flatten(env_values):
        origins[name] = f"env {prefix}{name.upper().replace('.', '__')}"
    for name in _flatten(flag_values):
        origins[name] = f"--{name.replace('_', '-')}"
    merged = _merge(file_values, env_values, flag_values)
    try:
        return cls(**merged)
    except ValidationError as error:
        raise ConfigError(f"{cls.__name__}: {_describe(error, origins)}") from None
