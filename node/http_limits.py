"""Limits of the node's HTTP face that other parts bound their own input by."""

from __future__ import annotations

# The longest request line or header field aiohttp reads (a name or a value).
MAX_FIELD_SIZE = 16384
