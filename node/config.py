"""`meshgate serve` settings: flags, MESHGATE_* environment variables and a TOML file.

One table (`OPTIONS`) declares every setting once; the flag, the environment
variable and the config-file key are derived from its name, so the three can
never drift apart. Precedence: flag > environment > config file > default.
Any bad value is a `ConfigError` naming the flag; the CLI prints it on one line
and exits with status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from node.identity.strength import HOW_TO_GENERATE, weakness
from node.routing import POLICY_NAMES
from node.workers.credentials import safe_url


class ConfigError(ValueError):
    """A setting is wrong; the message names the flag and says what to fix."""


@dataclass(frozen=True)
class Option:
    name: str  # attribute name; flag is --name-with-dashes, env MESHGATE_NAME
    kind: Callable[[str], Any]
    default: Any
    help: str
    many: bool = False  # takes several values (flag nargs="*", env space/comma separated)
    check: Callable[[Any], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "MESHGATE_" + self.name.upper()


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f"must be >= {low}"


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _one_of(choices: Sequence[str]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _worker_urls(urls: list[str]) -> str | None:
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.hostname:
            return f"{url!r} is not an http(s):// or grpc:// URL with a host"
    return None


# A path on the worker: no scheme, host, userinfo, `..`, backslash, whitespace or control
# characters, so it can only ever name a path on the worker's own host and port.
_PATH = re.compile(r"/(?!/)[A-Za-z0-9._~!$&'()*+,;=:%/?-]{0,255}")


def _url_path(value: str) -> str | None:
    """A path such as /health: appended to each worker's URL, so it must stay a path."""
    if not _PATH.fullmatch(value) or ".." in value or "//" in value:
        return (
            f"{value[:64]!r} is not a path: give one such as /health (starting with one /, at most "
            "256 characters, no scheme, host, @, .., // or whitespace)"
        )
    return None


def _host_ports(values: list[str] | str | None) -> str | None:
    for value in [values] if isinstance(values, str) else values or []:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            return f"{value!r} is not HOST:PORT"
    return None


def _networks(values: list[str]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IP address or CIDR network"
    return None


def _admin_credentials(specs: list[str]) -> str | None:
    from node.identity.passwords import parse_admin_credential

    for spec in specs:
        try:
            parse_admin_credential(spec)
        except ValueError as exc:
            return str(exc)
    return None


def _cp_keys(specs: list[str]) -> str | None:
    for spec in specs:
        parts = spec.split(":", 3)
        if len(parts) != 4 or not all(parts):
            return "each entry must be id:name:role:key"
        if parts[2] not in ("admin", "user"):
            return f"role of {parts[0]!r} must be admin or user"
    return None


OPTIONS: tuple[Option, ...] = (
    Option("host", str, "127.0.0.1", "address to serve HTTP on"),
    Option("port", int, 30000, "HTTP port", check=_between(1, 65535)),
    Option("worker_urls", str, [], "workers to register at start", many=True, check=_worker_urls),
    Option("policy", str, "cache_aware", "default routing policy", check=_one_of(POLICY_NAMES)),
    Option("data_dir", str, "", "Raft journal and snapshots (default ./meshgate-data/NODE)"),
    Option("node_name", str, "", "this node's name in the mesh (default: the hostname)"),
    Option("api_key", str, None, "key clients must send on protected routes"),
    Option(
        "control_plane_api_keys",
        str,
        [],
        "static control-plane keys, each id:name:role:key (role admin or user)",
        many=True,
        check=_cp_keys,
    ),
    Option("max_concurrent_requests", int, 256, "requests proxied at once (<= 0: unlimited)"),
    Option(
        "queue_size",
        int,
        100,
        "requests waiting for a slot (0: refuse at once)",
        check=_at_least(0),
    ),
    Option("queue_timeout_secs", float, 60.0, "longest wait for a slot", check=_at_least(0)),
    Option(
        "request_timeout_secs", float, 1800.0, "upstream request timeout", check=_at_least(0.001)
    ),
    Option(
        "header_read_timeout_secs",
        float,
        10.0,
        "close a connection whose request headers take longer to arrive (slow clients)",
        check=_at_least(0.1),
    ),
    Option(
        "body_read_timeout_secs",
        float,
        60.0,
        "answer 408 to a request whose body takes longer to arrive (slow clients)",
        check=_at_least(0.1),
    ),
    Option(
        "keepalive_timeout_secs",
        float,
        75.0,
        "close a kept-alive connection idle (or holding an unfinished request) this long",
        check=_at_least(1.0),
    ),
    Option(
        "max_payload_size",
        int,
        64 * 1024 * 1024,
        "largest request body (bytes)",
        check=_at_least(1),
    ),
    Option("retry_max_retries", int, 5, "attempts per request, first included", check=_at_least(1)),
    Option("retry_initial_backoff_ms", int, 50, "first retry delay", check=_at_least(0)),
    Option("retry_max_backoff_ms", int, 30_000, "longest retry delay", check=_at_least(0)),
    Option("retry_backoff_multiplier", float, 1.5, "delay growth per retry", check=_at_least(1.0)),
    Option("retry_jitter_factor", float, 0.2, "random spread of each delay", check=_between(0, 1)),
    Option("disable_retries", _bool, False, "send each request once"),
    Option("cb_failure_threshold", int, 10, "failures that open a circuit", check=_at_least(1)),
    Option("cb_success_threshold", int, 3, "half-open successes that close it", check=_at_least(1)),
    Option(
        "cb_timeout_duration_secs", float, 60.0, "open time before half-open", check=_at_least(0)
    ),
    Option(
        "cb_window_duration_secs",
        float,
        120.0,
        "window failures are counted in",
        check=_at_least(0.001),
    ),
    Option("disable_circuit_breaker", _bool, False, "never open circuits"),
    Option(
        "health_failure_threshold", int, 3, "failed checks that mark unhealthy", check=_at_least(1)
    ),
    Option(
        "health_success_threshold", int, 2, "passed checks that mark healthy", check=_at_least(1)
    ),
    Option("health_check_timeout_secs", float, 5.0, "health check timeout", check=_at_least(0.001)),
    Option("health_check_interval_secs", float, 10.0, "time between checks", check=_at_least(0.01)),
    Option("health_check_endpoint", str, "/health", "worker path checked", check=_url_path),
    Option(
        "worker_startup_timeout_secs",
        float,
        600.0,
        "how long discovery retries",
        check=_at_least(0),
    ),
    Option(
        "worker_startup_check_interval",
        float,
        2.0,
        "delay between discovery tries",
        check=_at_least(0.01),
    ),
    Option(
        "worker_drain_timeout_secs",
        float,
        30.0,
        "DELETE waits this long for in-flight",
        check=_at_least(0),
    ),
    Option(
        "request_id_headers", str, ["x-request-id"], "headers that carry a request id", many=True
    ),
    Option(
        "mesh_bind",
        str,
        None,
        "Raft address HOST:PORT (default: a private loopback port)",
        check=_host_ports,
    ),
    Option(
        "mesh_advertise", str, None, "Raft address peers use to reach this node", check=_host_ports
    ),
    Option(
        "mesh_peers", str, [], "Raft addresses of the other voters", many=True, check=_host_ports
    ),
    Option(
        "mesh_secret",
        str,
        None,
        "shared secret authenticating and encrypting Raft traffic (required with "
        "--mesh-peers; a lone node generates one in its data dir)",
    ),
    Option(
        "mesh_commit_timeout_secs",
        float,
        3.0,
        "longest wait for a write to commit (then 1 s more when its outcome is unknown)",
        check=_between(0.1, 60.0),  # mesh.commands.LONGEST_WAIT
    ),
    Option("mesh_voter", _bool, True, "vote in Raft (false: a read-only member that serves alike)"),
    Option(
        "mesh_log_compaction_entries",
        int,
        5000,
        "compact the Raft log past this many entries",
        check=_at_least(10),
    ),
    Option(
        "mesh_log_compaction_secs",
        float,
        300.0,
        "compact the Raft log at least this often (each node in its own time slot)",
        check=_at_least(1),
    ),
    Option("http_advertise_url", str, None, "URL other nodes and tools use to reach this node"),
    Option("redis_url", str, None, "Redis for exact mesh-wide rate limits (redis://host:port/db)"),
    Option(
        "redis_timeout_secs",
        float,
        0.25,
        "longest wait for Redis on a request before deciding from local shares",
        check=_between(0.01, 10),
    ),
    Option(
        "drain_delay_secs",
        float,
        5.0,
        "keep serving this long after turning not-ready",
        check=_at_least(0),
    ),
    Option(
        "shutdown_grace_secs",
        float,
        30.0,
        "longest wait for in-flight requests when stopping",
        check=_at_least(0),
    ),
    Option("jwt_secret", str, None, "HS256 secret for tokens meshgate issues (>= 32 bytes)"),
    Option("jwt_issuer", str, "meshgate", "issuer of the tokens meshgate issues"),
    Option("jwt_audience", str, "meshgate", "audience of the tokens meshgate issues"),
    Option("jwt_lifetime_secs", int, 3600, "lifetime of an issued token", check=_at_least(60)),
    Option(
        "admin_credentials",
        str,
        [],
        "admin logins for /api/admin/login, each user:scrypt$... (meshgate hash-password)",
        many=True,
        check=_admin_credentials,
    ),
    Option("idp_jwks_file", str, None, "identity provider's JWKS (a file)"),
    Option("idp_jwks_url", str, None, "identity provider's JWKS (a URL)"),
    Option("idp_issuer", str, None, "required issuer of the identity provider's tokens"),
    Option("idp_audience", str, None, "required audience of the identity provider's tokens"),
    Option("idp_role_claim", str, "role", "claim holding the role (dotted path allowed)"),
    Option("idp_tenant_claim", str, "tenant", "claim holding the tenant"),
    Option("idp_admin_values", str, ["admin"], "role claim values that mean admin", many=True),
    Option(
        "idp_minter_values",
        str,
        ["minter"],
        "role claim values that mean a tenant minter (may create narrower keys)",
        many=True,
    ),
    Option(
        "management_requests_per_minute",
        int,
        100,
        "per-user limit on the management API, requests a minute (0: none; admins exempt)",
        check=_at_least(0),
    ),
    Option(
        "management_burst",
        int,
        10,
        "per-user limit on the management API, requests a second (0: none)",
        check=_at_least(0),
    ),
    Option(
        "forwarded_allow_ips",
        str,
        [],
        "proxies (IPs or CIDRs, e.g. the load balancer) whose X-Forwarded-For names the client",
        many=True,
        check=_networks,
    ),
    Option(
        "log_level", str, "info", "log level", check=_one_of(("debug", "info", "warning", "error"))
    ),
)
_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    worker_urls: list[str]
    policy: str
    data_dir: str
    node_name: str
    api_key: str | None
    control_plane_api_keys: list[str]
    max_concurrent_requests: int
    queue_size: int
    queue_timeout_secs: float
    request_timeout_secs: float
    header_read_timeout_secs: float
    body_read_timeout_secs: float
    keepalive_timeout_secs: float
    max_payload_size: int
    retry_max_retries: int
    retry_initial_backoff_ms: int
    retry_max_backoff_ms: int
    retry_backoff_multiplier: float
    retry_jitter_factor: float
    disable_retries: bool
    cb_failure_threshold: int
    cb_success_threshold: int
    cb_timeout_duration_secs: float
    cb_window_duration_secs: float
    disable_circuit_breaker: bool
    health_failure_threshold: int
    health_success_threshold: int
    health_check_timeout_secs: float
    health_check_interval_secs: float
    health_check_endpoint: str
    worker_startup_timeout_secs: float
    worker_startup_check_interval: float
    worker_drain_timeout_secs: float
    request_id_headers: list[str]
    mesh_bind: str | None
    mesh_advertise: str | None
    mesh_peers: list[str]
    mesh_secret: str | None
    mesh_commit_timeout_secs: float
    mesh_voter: bool
    mesh_log_compaction_entries: int
    mesh_log_compaction_secs: float
    http_advertise_url: str | None
    redis_url: str | None
    redis_timeout_secs: float
    drain_delay_secs: float
    shutdown_grace_secs: float
    jwt_secret: str | None
    jwt_issuer: str
    jwt_audience: str
    jwt_lifetime_secs: int
    admin_credentials: list[str]
    idp_jwks_file: str | None
    idp_jwks_url: str | None
    idp_issuer: str | None
    idp_audience: str | None
    idp_role_claim: str
    idp_tenant_claim: str
    idp_admin_values: list[str]
    idp_minter_values: list[str]
    management_requests_per_minute: int
    management_burst: int
    forwarded_allow_ips: list[str]
    log_level: str

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def advertised_http_url(self) -> str:
        if self.http_advertise_url:
            return self.http_advertise_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def public(self) -> dict[str, Any]:
        """The effective settings with every secret masked (safe to show and log)."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("api_key", "mesh_secret", "redis_url", "jwt_secret"):
            if shown[secret]:
                shown[secret] = "***"
        shown["admin_credentials"] = [
            spec.split(":", 1)[0] + ":***" for spec in self.admin_credentials
        ]
        shown["control_plane_api_keys"] = [
            ":".join(spec.split(":", 3)[:3]) + ":***" for spec in self.control_plane_api_keys
        ]
        shown["worker_urls"] = [safe_url(url) for url in self.worker_urls]
        return shown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file with settings (keys as flag names)")
    for opt in OPTIONS:
        parser.add_argument(
            opt.flag,
            dest=opt.name,
            default=None,
            nargs="*" if opt.many else None,
            help=f"{opt.help} (env {opt.env}; default {opt.default!r})",
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
    normalised = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(normalised) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"--config: unknown setting(s) in {path}: {', '.join(unknown)}")
    return normalised


def _convert(opt: Option, raw: Any, origin: str) -> Any:
    try:
        if opt.many:
            items = raw if isinstance(raw, list) else [raw]
            value: Any = [opt.kind(str(item)) for item in items]
        elif isinstance(raw, bool) and opt.kind is _bool:
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
    if not values["data_dir"]:
        values["data_dir"] = str(Path("meshgate-data") / values["node_name"])
    config = Config(**values)
    _check_security(config)
    return config


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


def _check_security(config: Config) -> None:
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


def convert_option(name: str, raw: Any, origin: str | None = None) -> Any:
    """Validate one setting given as JSON or text (for runtime changes); ConfigError if bad."""
    opt = _BY_NAME.get(name)
    if opt is None:
        raise ConfigError(f"{name}: unknown setting")
    return _convert(opt, raw, origin or name)


def read_config_file(path: str) -> dict[str, Any]:
    """The settings in a TOML config file, keys normalised; ConfigError if unreadable."""
    return _read_file(path)
