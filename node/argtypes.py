"""Argparse value types shared by the worker simulators' command lines: each parses,
then checks, and a bad value is refused at parse time naming the flag."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def arg_type(parse: Callable[[str], Any], check: Callable[[Any], Any], name: str) -> Any:
    """An argparse `type` that parses with `parse`, then validates with `check`."""

    def convert(raw: str) -> Any:
        try:
            return check(parse(raw))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name  # argparse names the type in "invalid <name> value" messages
    return convert


def positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be >= 1, got {value}")
    return value


def port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port between 0 and 65535, got {value}")
    return value
