"""Checks across settings: authentication off loopback, the mesh secret, weak secrets.

They run once all settings are merged (node/config/sources.py), because each
involves more than one setting; each message starts with the flag to change.
"""

from __future__ import annotations

import functools
import ipaddress

from node.config.declare import ConfigError
from node.config.model import Config
from node.identity.strength import HOW_TO_GENERATE, weakness


@functools.lru_cache(maxsize=256)  # asked per request (browser_guard): parsing an address is slow
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_identity(config: Config) -> None:
    if config.admin_credentials and not config.jwt_secret:
        raise ConfigError("--admin-credentials: needs --jwt-secret to sign the login tokens")
    if config.idp_jwks_file and config.idp_jwks_url:
        raise ConfigError("--idp-jwks-url: give either --idp-jwks-file or --idp-jwks-url")
    if (config.idp_jwks_file or config.idp_jwks_url) and not (
        config.idp_issuer and config.idp_audience
    ):
        raise ConfigError(
            "--idp-issuer: an identity provider needs --idp-issuer and --idp-audience"
        )


def check_security(config: Config) -> None:
    _check_identity(config)
    has_auth = bool(
        config.api_key
        or config.control_plane_api_keys
        or config.jwt_secret
        or config.idp_jwks_file
        or config.idp_jwks_url
    )
    if not has_auth and not is_loopback(config.host):
        raise ConfigError(
            f"--host: refusing to serve on {config.host} with no authentication; "
            "set --api-key or --control-plane-api-keys, or bind to 127.0.0.1"
        )
    ids = [spec.split(":", 1)[0] for spec in config.control_plane_api_keys]
    if len(ids) != len(set(ids)):
        raise ConfigError("--control-plane-api-keys: key ids must be unique")
    _check_secrets(config)
    if config.mesh_secret_previous and config.mesh_secret_previous == config.mesh_secret:
        raise ConfigError(
            "--mesh-secret-previous: equals --mesh-secret; give it the other secret of the "
            "rotation, or leave it unset"
        )
    if config.mesh_peers and not config.mesh_secret:
        raise ConfigError(
            "--mesh-secret: required for a mesh (--mesh-peers is set), loopback included: "
            "Raft traffic is pickle, and every member must prove it holds the secret; "
            + HOW_TO_GENERATE
        )
    raft_addresses = [config.mesh_bind or "", config.mesh_advertise or ""]
    exposed = [a for a in raft_addresses if a and not is_loopback(a.rpartition(":")[0])]
    if exposed and not config.mesh_secret:
        raise ConfigError(
            f"--mesh-secret: required because the Raft port is reachable off loopback "
            f"({exposed[0]}); the nodes that join need the same secret; " + HOW_TO_GENERATE
        )


def _check_secrets(config: Config) -> None:
    """Refuse short, low-entropy and placeholder keys and secrets, naming the flag."""
    given: list[tuple[str, str | None]] = [
        ("--mesh-secret", config.mesh_secret),
        ("--mesh-secret-previous", config.mesh_secret_previous),
        ("--api-key", config.api_key),
        ("--jwt-secret", config.jwt_secret),
    ]
    for spec in config.control_plane_api_keys:
        key_id, _, _, key = spec.split(":", 3)
        given.append((f"--control-plane-api-keys (key {key_id!r})", key))
    for flag, secret in given:
        problem = weakness(secret) if secret is not None else None
        if problem:
            raise ConfigError(f"{flag}: the value {problem}; {HOW_TO_GENERATE}")
