"""Whole numbers read from outside input (query, path, header, a peer's answer).

`str.isdigit()` is true for superscript, circled, fullwidth and Arabic-Indic digits: `int()`
then fails on the first two (a 500) and reads the others, so neither is refused.
"""

from __future__ import annotations

import re
from typing import Final

_DIGITS: Final = re.compile(r"[0-9]+")
# What Python's repr of a float looks like (float() itself also takes Arabic-Indic digits,
# ' 5 ' and '1_0').
_DECIMAL: Final = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?")


def ascii_int(text: object, max_digits: int = 18) -> int | None:
    """The number `text` spells in 1..max_digits ASCII digits, else None."""
    if not isinstance(text, str) or len(text) > max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)


def ascii_decimal(text: object, max_chars: int = 40) -> float | None:
    """The non-negative number `text` spells in ASCII (digits, a point, an exponent), else
    None."""
    if not isinstance(text, str) or len(text) > max_chars or not _DECIMAL.fullmatch(text):
        return None
    return float(text)
