"""The read-your-writes headers' names (node/index_headers.py), apart from it so that
`meshgate cluster` can send them without importing the node."""

from __future__ import annotations

from typing import Final

INDEX_HEADER: Final = "X-Meshgate-Index"
MIN_INDEX_HEADER: Final = "X-Meshgate-Min-Index"
