"""Checks of setting values that are more than a range: URLs, paths, addresses, key specs.

Each takes the parsed value and returns what is wrong with it, or None; the
loader prefixes the flag, so a message reads `--mesh-peers: 'x' is not HOST:PORT`.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from node.digits import ascii_int
from node.workers.credentials import safe_url

# Targets of `/ha/shutdown` and `/ha/drain` besides member names: a node named so would
# turn a rolling-restart step into a cluster shutdown ("cluster") or restart another node.
RESERVED_NODE_NAMES = frozenset({"self", "cluster"})


def node_name(name: str) -> str | None:
    if name in RESERVED_NODE_NAMES:
        return f"{name!r} is reserved (a shutdown or drain target); choose another node name"
    return None


def worker_urls(urls: list[str]) -> str | None:
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.hostname:
            return f"{url!r} is not an http(s):// or grpc:// URL with a host"
    return None


# A path on the worker: no scheme, host, userinfo, `..`, backslash, whitespace or control
# characters, so it can only ever name a path on the worker's own host and port.
_PATH = re.compile(r"/(?!/)[A-Za-z0-9._~!$&'()*+,;=:%/?-]{0,255}")


def url_path(value: str) -> str | None:
    """A path such as /health: appended to each worker's URL, so it must stay a path."""
    if not _PATH.fullmatch(value) or ".." in value or "//" in value:
        return (
            f"{value[:64]!r} is not a path: give one such as /health (starting with one /, at most "
            "256 characters, no scheme, host, @, .., // or whitespace)"
        )
    return None


def host_ports(values: list[str] | str | None) -> str | None:
    for value in [values] if isinstance(values, str) else values or []:
        host, _, port = value.rpartition(":")
        number = ascii_int(port, max_digits=5)
        if not host or number is None or number > 65535:
            return f"{value!r} is not HOST:PORT"
    return None


def networks(values: list[str]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IP address or CIDR network"
    return None


def admin_credentials(specs: list[str]) -> str | None:
    from node.identity.passwords import parse_admin_credential

    for spec in specs:
        try:
            parse_admin_credential(spec)
        except ValueError as exc:
            return str(exc)
    return None


def control_plane_keys(specs: list[str]) -> str | None:
    for spec in specs:
        parts = spec.split(":", 3)
        if len(parts) != 4 or not all(parts):
            return "each entry must be id:name:role:key"
        if parts[2] not in ("admin", "user"):
            return f"role of {parts[0]!r} must be admin or user"
    return None


# -- how list settings holding secrets are shown by Config.public() ---------------------------


def show_logins(specs: list[str]) -> list[str]:
    return [spec.split(":", 1)[0] + ":***" for spec in specs]


def show_keys(specs: list[str]) -> list[str]:
    return [":".join(spec.split(":", 3)[:3]) + ":***" for spec in specs]


def show_urls(urls: list[str]) -> list[str]:
    return [safe_url(url) for url in urls]
