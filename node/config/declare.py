"""How a setting is declared, once: a dataclass field made by `setting()`.

A section (node/config/sections.py) is a frozen dataclass whose fields are the
settings of one part. The field's name is the setting's name (SMG's flat name:
`retry_max_retries`), its annotation is the type, and `setting()` records the
default, the help, the check (whose bounds the OpenAPI document shows), whether
`PUT /admin/config` may change it, and how `Config.public()` shows it. `Option`
is that declaration read back, with the flag, the environment variable and the
TOML keys derived from the name, so none of them can drift from the others.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A setting is wrong; the message names the flag and says what to fix."""


Check = Callable[[Any], str | None]
Show = Callable[[Any], Any]


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Bounds:
    """A numeric range check that also says its bounds (for the JSON Schema of runtime settings)."""

    minimum: float
    maximum: float | None = None

    def __call__(self, value: Any) -> str | None:
        if self.maximum is None:
            return None if value >= self.minimum else f"must be >= {self.minimum}"
        if self.minimum <= value <= self.maximum:
            return None
        return f"must be between {self.minimum} and {self.maximum}"

    def schema(self) -> dict[str, float]:
        shown = {"minimum": self.minimum}
        return shown if self.maximum is None else {**shown, "maximum": self.maximum}


def at_least(low: float) -> Bounds:
    return Bounds(low)


def between(low: float, high: float) -> Bounds:
    return Bounds(low, high)


def one_of(choices: Sequence[str]) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def masked(value: Any) -> Any:
    """How a secret is shown: *** when set."""
    return "***" if value else value


@dataclass(frozen=True)
class Declared:
    """What `setting()` records beside the default (kept in the field's metadata)."""

    help: str
    check: Check | None
    runtime: bool
    show: Show | None


def setting(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    runtime: bool = False,
    show: Show | None = None,
) -> Any:
    """Declare one setting as a section's field. `runtime`: `PUT /admin/config` may change it.
    `show`: how `Config.public()` shows the value (secrets are masked)."""
    metadata = {"setting": Declared(help, check, runtime, show)}
    if isinstance(default, list):
        items = list(default)
        return dataclasses.field(default_factory=lambda: list(items), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Section:
    """A part's settings. `title` heads its group in `--help` and README's flag table; `table`
    is its TOML table, where a key may drop `prefix` (`[upstream] max_retries = 3`)."""

    title: ClassVar[str]
    table: ClassVar[str]
    prefix: ClassVar[str] = ""


@dataclass(frozen=True)
class Option:
    """One declared setting, read back from its section's field."""

    name: str  # attribute name; flag is --name-with-dashes, env MESHGATE_NAME
    kind: Callable[[str], Any]
    default: Any
    help: str
    section: type[Section]
    many: bool = False  # takes several values (flag nargs="*", env space/comma separated)
    check: Check | None = None
    runtime: bool = False
    show: Show | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "MESHGATE_" + self.name.upper()

    @property
    def short_key(self) -> str:
        """Its key inside its section's TOML table: the name without the section's prefix."""
        prefix = self.section.prefix
        return self.name[len(prefix) :] if prefix and self.name.startswith(prefix) else self.name

    @property
    def bounds(self) -> dict[str, float]:
        return self.check.schema() if isinstance(self.check, Bounds) else {}


_PARSERS: dict[Any, Callable[[str], Any]] = {bool: parse_bool, int: int, float: float, str: str}


def options_of(section: type[Section]) -> tuple[Option, ...]:
    """The section's settings, in declaration order, with each type read from its annotation."""
    hints = typing.get_type_hints(section)
    declared = []
    for field in dataclasses.fields(section):  # type: ignore[arg-type]
        meta: Declared = field.metadata["setting"]
        kind, many = _parser(hints[field.name])
        default = field.default
        if default is dataclasses.MISSING:  # a list: made by its factory
            default = field.default_factory()  # type: ignore[operator]
        declared.append(
            Option(
                field.name,
                kind,
                default,
                meta.help,
                section,
                many=many,
                check=meta.check,
                runtime=meta.runtime,
                show=meta.show,
            )
        )
    return tuple(declared)


def _parser(hint: Any) -> tuple[Callable[[str], Any], bool]:
    """The text parser for a field's type, and whether it takes several values (`list[...]`)."""
    if typing.get_origin(hint) is list:
        return _PARSERS[typing.get_args(hint)[0]], True
    if isinstance(hint, types.UnionType):  # `str | None`: the value's type, None is the default
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return _PARSERS[hint], False
