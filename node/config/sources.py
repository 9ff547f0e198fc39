"""Where settings come from: flags, MESHGATE_* environment variables and a TOML file.

Precedence: flag > environment > config file > default. Every flag, variable and
key follows from a setting's declaration (node/config/sections.py). The file
takes flat keys (`retry_max_retries = 3`, or `retry-max-retries`) and section
tables (`[upstream]` with `max_retries = 3` or the full name). Any bad value is
a `ConfigError` naming the flag; the CLI prints it on one line and exits with 2.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import node.config.checks as checks
from node.config.declare import ConfigError, Option, parse_bool
from node.config.model import BY_NAME, OPTIONS, SECTIONS, Config
from node.config.security import check_security

_TABLES = {section.table: section for section in SECTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="TOML file with settings (keys as flag names, or in section tables: [upstream])",
    )
    groups = {section: parser.add_argument_group(section.title) for section in SECTIONS}
    for opt in OPTIONS:
        runtime = "; changeable at runtime" if opt.runtime else ""
        groups[opt.section].add_argument(
            opt.flag,
            dest=opt.name,
            default=None,
            # A switch given alone means true (SMG's `--enable-wasm`); a value still works.
            nargs="*" if opt.many else ("?" if opt.kind is parse_bool else None),
            const="true" if opt.kind is parse_bool else None,
            help=f"{opt.help} (env {opt.env}; default {opt.default!r}{runtime})",
        )


def load(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """Merge flags, environment and config file into a validated Config."""
    environ = os.environ if environ is None else environ
    file_values = _read_file(getattr(args, "config", None) or environ.get("MESHGATE_CONFIG"))
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw: Any = getattr(args, opt.name, None)
        origin = opt.flag
        if raw is None and opt.env in environ:
            raw = environ[opt.env]
            raw = raw.replace(",", " ").split() if opt.many else raw
            origin = f"{opt.flag} (from {opt.env})"
        if raw is None and opt.name in file_values:
            raw = file_values[opt.name]
            origin = f"{opt.flag} (from the config file)"
        values[opt.name] = opt.default if raw is None else _convert(opt, raw, origin)
    return _finish(values)


def _read_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
    normalised, unknown = _flatten(data)
    if unknown:
        raise ConfigError(f"--config: unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return normalised


def _flatten(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The file's settings by name, flat keys and section tables alike; and the unknown keys."""
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in data.items():
        name = key.replace("-", "_")
        if name in _TABLES and isinstance(value, dict):
            names = {o.short_key: o.name for o in OPTIONS if o.section is _TABLES[name]}
            names.update({o.name: o.name for o in OPTIONS if o.section is _TABLES[name]})
            for inner, item in value.items():
                inner_name = inner.replace("-", "_")
                if inner_name in names:
                    values[names[inner_name]] = item
                else:
                    unknown.append(f"{name}.{inner_name}")
        elif name in BY_NAME:
            values[name] = value
        else:
            unknown.append(name)
    return values, unknown


def _convert(opt: Option, raw: Any, origin: str) -> Any:
    try:
        if opt.many:
            items = raw if isinstance(raw, list) else [raw]
            value: Any = [opt.kind(str(item)) for item in items]
        elif isinstance(raw, bool) and opt.kind is parse_bool:
            value = raw
        else:
            value = opt.kind(str(raw))
    except ValueError as exc:
        raise ConfigError(f"{origin}: invalid value {raw!r}: {exc}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{origin}: must be a finite number, not {raw!r}")
    problem = opt.check(value) if opt.check else None
    if problem:
        raise ConfigError(f"{origin}: {problem}")
    return value


def _finish(values: dict[str, Any]) -> Config:
    if not values["node_name"]:
        values["node_name"] = socket.gethostname() or "meshgate"
        problem = checks.node_name(values["node_name"])
        if problem:
            raise ConfigError(f"--node-name (from the hostname): {problem}")
    if not values["data_dir"]:
        values["data_dir"] = str(Path("meshgate-data") / values["node_name"])
    config = Config(**values)
    check_security(config)
    return config


def convert_option(name: str, raw: Any, origin: str | None = None) -> Any:
    """Validate one setting given as JSON or text (for runtime changes); ConfigError if bad."""
    opt = BY_NAME.get(name)
    if opt is None:
        raise ConfigError(f"{name}: unknown setting")
    return _convert(opt, raw, origin or name)


def read_config_file(path: str) -> dict[str, Any]:
    """The settings in a TOML config file, by name; ConfigError if unreadable."""
    return _read_file(path)
