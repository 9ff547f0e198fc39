"""Web origins as browsers send them (RFC 6454 serialization), for --cors-origins.

Kept apart from node/cors.py so the settings' checks need no HTTP layer.
"""

from __future__ import annotations

import re
from typing import Final

# As browsers serialize an origin (RFC 6454): lower case, the port only when not the default.
ORIGIN: Final = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]{2,45}\])"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
)
DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


def origin_problem(origin: str) -> str | None:
    """Why `origin` cannot be listed in --cors-origins, or None."""
    match = ORIGIN.fullmatch(origin)
    if origin == "*":
        return "'*' cannot be listed: credentials go only to the origins named one by one"
    if match is None:
        return (
            f"{origin[:100]!r} is not an origin: give scheme://host[:port] as a browser sends "
            "it (http or https, lower case, no path, no trailing slash), e.g. "
            "https://console.example.com"
        )
    if match["port"] is not None and DEFAULT_PORTS[match["scheme"]] == match["port"]:
        bare = f"{match['scheme']}://{match['host']}"
        return f"{origin!r}: leave the default port out ({bare!r}), as browsers do"
    if int(match["port"] or 1) > 65535:
        return f"{origin!r}: the port must be 1..65535"
    return None


def origins_problem(origins: list[str]) -> str | None:
    """The --cors-origins check: each entry an exact origin."""
    return next((p for o in origins if (p := origin_problem(o)) is not None), None)
