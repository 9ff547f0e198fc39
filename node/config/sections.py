"""Every setting of `meshgate serve`, declared once, in one section per part.

A section is the settings of one part (the HTTP server, admission, requests to
workers, circuit breakers, health checks, the mesh, ...); `Config` (node/config/model.py)
is all of them at once. Names are SMG's flat flag names and stay so: the flag
is `--` plus the name with dashes. `runtime=True` marks what `PUT /admin/config`
may change on every node without a restart (node/runtime.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import node.config.checks as checks
from node.config.declare import Section, at_least, between, masked, one_of, setting
from node.origins import origins_problem
from node.outparse.choice import REASONING_NAMES, TOOL_NAMES, entries_check
from node.routing import POLICY_NAMES


@dataclass(frozen=True)
class Serving(Section):
    title = "serving"
    table = "serving"

    host: str = setting("127.0.0.1", "address to serve HTTP on")
    port: int = setting(30000, "HTTP port", check=between(1, 65535))
    max_payload_size: int = setting(
        64 * 1024 * 1024, "largest request body (bytes)", check=at_least(1)
    )
    request_id_headers: list[str] = setting(["x-request-id"], "headers that carry a request id")
    header_read_timeout_secs: float = setting(
        10.0,
        "close a connection whose request headers take longer to arrive (slow clients)",
        check=at_least(0.1),
    )
    body_read_timeout_secs: float = setting(
        60.0,
        "answer 408 to a request whose body takes longer to arrive (slow clients)",
        check=at_least(0.1),
    )
    keepalive_timeout_secs: float = setting(
        75.0,
        "close a kept-alive connection idle (or holding an unfinished request) this long",
        check=at_least(1.0),
    )
    forwarded_allow_ips: list[str] = setting(
        [],
        "proxies (IPs or CIDRs, e.g. the load balancer) whose X-Forwarded-For names the client",
        check=checks.networks,
    )
    log_level: str = setting(
        "info", "log level", check=one_of(("debug", "info", "warning", "error"))
    )
    processes: int = setting(
        0,
        "data-plane processes serving the HTTP port beside the control process (0: one per "
        "usable core; 1: a single process, no plane)",
        check=between(0, 256),
    )
    event_loop: str = setting(
        "auto",
        "event loop: auto (uvloop when it is installed, else asyncio's), uvloop or asyncio",
        check=one_of(("auto", "uvloop", "asyncio")),
    )


@dataclass(frozen=True)
class Workers(Section):
    """The workers registered at start, how discovery reaches them, and the default policy."""

    title = "workers"
    table = "workers"

    worker_urls: list[str] = setting(
        [], "workers to register at start", check=checks.worker_urls, show=checks.show_urls
    )
    policy: str = setting(
        "cache_aware", "default routing policy", check=one_of(POLICY_NAMES), runtime=True
    )
    worker_startup_timeout_secs: float = setting(
        600.0, "how long discovery retries", check=at_least(0)
    )
    worker_startup_check_interval: float = setting(
        2.0, "delay between discovery tries", check=at_least(0.01)
    )
    worker_drain_timeout_secs: float = setting(
        30.0, "DELETE waits this long for in-flight", check=at_least(0)
    )


@dataclass(frozen=True)
class Admission(Section):
    title = "admission"
    table = "admission"

    max_concurrent_requests: int = setting(
        256, "requests proxied at once (<= 0: unlimited)", runtime=True
    )
    queue_size: int = setting(
        100, "requests waiting for a slot (0: refuse at once)", check=at_least(0), runtime=True
    )
    queue_timeout_secs: float = setting(
        60.0, "longest wait for a slot", check=at_least(0), runtime=True
    )


@dataclass(frozen=True)
class Upstream(Section):
    """Requests to workers: how long one may take, and how failed ones are retried."""

    title = "upstream"
    table = "upstream"
    prefix = "retry_"

    request_timeout_secs: float = setting(
        1800.0, "upstream request timeout", check=at_least(0.001), runtime=True
    )
    retry_max_retries: int = setting(
        5, "attempts per request, first included", check=at_least(1), runtime=True
    )
    retry_initial_backoff_ms: int = setting(
        50, "first retry delay", check=at_least(0), runtime=True
    )
    retry_max_backoff_ms: int = setting(
        30_000, "longest retry delay", check=at_least(0), runtime=True
    )
    retry_backoff_multiplier: float = setting(
        1.5, "delay growth per retry", check=at_least(1.0), runtime=True
    )
    retry_jitter_factor: float = setting(
        0.2, "random spread of each delay", check=between(0, 1), runtime=True
    )
    disable_retries: bool = setting(False, "send each request once", runtime=True)
    grpc_stream_interval: int = setting(
        1,
        "tokens a gRPC engine puts in each streamed message (its stream_interval); "
        "more cost the gateway less CPU per token, in coarser chunks",
        check=between(1, 64),
        runtime=True,
    )
    reasoning_parser: list[str] = setting(
        [],
        "split HTTP workers' think blocks into reasoning_content: PARSER (every model) "
        "and/or MODEL=PARSER entries; a worker's own reasoning_parser wins",
        check=entries_check(REASONING_NAMES),
        runtime=True,
    )
    tool_call_parser: list[str] = setting(
        [],
        "turn HTTP workers' raw tool-call text into tool_calls: PARSER (every model) "
        "and/or MODEL=PARSER entries; a worker's own tool_parser wins",
        check=entries_check(TOOL_NAMES),
        runtime=True,
    )


@dataclass(frozen=True)
class Breaker(Section):
    title = "circuit breaker"
    table = "circuit_breaker"
    prefix = "cb_"

    cb_failure_threshold: int = setting(
        10, "failures that open a circuit", check=at_least(1), runtime=True
    )
    cb_success_threshold: int = setting(
        3, "half-open successes that close it", check=at_least(1), runtime=True
    )
    cb_timeout_duration_secs: float = setting(
        60.0, "open time before half-open", check=at_least(0), runtime=True
    )
    cb_window_duration_secs: float = setting(
        120.0, "window failures are counted in", check=at_least(0.001), runtime=True
    )
    disable_circuit_breaker: bool = setting(False, "never open circuits", runtime=True)


@dataclass(frozen=True)
class Health(Section):
    title = "health checks"
    table = "health_checks"
    prefix = "health_"

    health_failure_threshold: int = setting(
        3, "failed checks that mark unhealthy", check=at_least(1), runtime=True
    )
    health_success_threshold: int = setting(
        2, "passed checks that mark healthy", check=at_least(1), runtime=True
    )
    health_check_timeout_secs: float = setting(
        5.0, "health check timeout", check=at_least(0.001), runtime=True
    )
    health_check_interval_secs: float = setting(
        10.0, "time between checks", check=at_least(0.01), runtime=True
    )
    health_check_endpoint: str = setting(
        "/health", "worker path checked", check=checks.url_path, runtime=True
    )


@dataclass(frozen=True)
class Access(Section):
    """Static keys, and the limit on the management API."""

    title = "access"
    table = "access"

    api_key: str | None = setting(None, "key clients must send on protected routes", show=masked)
    control_plane_api_keys: list[str] = setting(
        [],
        "static control-plane keys, each id:name:role:key (role admin or user)",
        check=checks.control_plane_keys,
        show=checks.show_keys,
    )
    cors_origins: list[str] = setting(
        [],
        "web origins (scheme://host[:port]) whose pages may call this node with credentials "
        "(CORS; none: no CORS headers)",
        check=origins_problem,
    )
    management_requests_per_minute: int = setting(
        100,
        "per-user limit on the management API, requests a minute (0: none; admins exempt)",
        check=at_least(0),
    )
    management_burst: int = setting(
        10, "per-user limit on the management API, requests a second (0: none)", check=at_least(0)
    )


@dataclass(frozen=True)
class Identity(Section):
    """Tokens meshgate issues (admin logins), and an identity provider's tokens it trusts."""

    title = "identity"
    table = "identity"

    jwt_secret: str | None = setting(
        None, "HS256 secret for tokens meshgate issues (>= 32 bytes)", show=masked
    )
    jwt_issuer: str = setting("meshgate", "issuer of the tokens meshgate issues")
    jwt_audience: str = setting("meshgate", "audience of the tokens meshgate issues")
    jwt_lifetime_secs: int = setting(3600, "lifetime of an issued token", check=at_least(60))
    admin_credentials: list[str] = setting(
        [],
        "admin logins for /api/admin/login, each user:scrypt$... (meshgate hash-password)",
        check=checks.admin_credentials,
        show=checks.show_logins,
    )
    idp_jwks_file: str | None = setting(None, "identity provider's JWKS (a file)")
    idp_jwks_url: str | None = setting(None, "identity provider's JWKS (a URL)")
    idp_issuer: str | None = setting(None, "required issuer of the identity provider's tokens")
    idp_audience: str | None = setting(None, "required audience of the identity provider's tokens")
    idp_role_claim: str = setting("role", "claim holding the role (dotted path allowed)")
    idp_tenant_claim: str = setting("tenant", "claim holding the tenant")
    idp_admin_values: list[str] = setting(["admin"], "role claim values that mean admin")
    idp_minter_values: list[str] = setting(
        ["minter"], "role claim values that mean a tenant minter (may create narrower keys)"
    )


@dataclass(frozen=True)
class Mesh(Section):
    """This node's place in the mesh: its name, its data, and Raft."""

    title = "mesh"
    table = "mesh"
    prefix = "mesh_"

    data_dir: str = setting("", "Raft journal and snapshots (default ./meshgate-data/NODE)")
    node_name: str = setting(
        "", "this node's name in the mesh (default: the hostname)", check=checks.node_name
    )
    mesh_bind: str | None = setting(
        None, "Raft address HOST:PORT (default: a private loopback port)", check=checks.host_ports
    )
    mesh_advertise: str | None = setting(
        None, "Raft address peers use to reach this node", check=checks.host_ports
    )
    mesh_peers: list[str] = setting(
        [], "Raft addresses of the other voters", check=checks.host_ports
    )
    mesh_secret: str | None = setting(
        None,
        "shared secret authenticating and encrypting Raft traffic (required with "
        "--mesh-peers; a lone node generates one in its data dir)",
        show=masked,
    )
    mesh_secret_previous: str | None = setting(
        None,
        "a second mesh secret accepted (Raft, peers, worker credentials) but never sent "
        "with: set it only while rotating the mesh secret",
        show=masked,
    )
    mesh_commit_timeout_secs: float = setting(
        3.0,
        "longest wait for a write to commit (then 1 s more when its outcome is unknown)",
        check=between(0.1, 60.0),  # mesh.commands.LONGEST_WAIT
    )
    min_index_wait_secs: float = setting(
        2.0,
        "longest wait for this node to apply an X-Meshgate-Min-Index, or to confirm it is "
        "current before a handler decides from its state (then 503 with Retry-After)",
        check=between(0.05, 60.0),
    )
    mesh_voter: bool = setting(True, "vote in Raft (false: a read-only member that serves alike)")
    mesh_log_compaction_entries: int = setting(
        5000, "compact the Raft log past this many entries", check=at_least(10)
    )
    mesh_log_compaction_secs: float = setting(
        300.0,
        "compact the Raft log at least this often (each node in its own time slot)",
        check=at_least(1),
    )
    http_advertise_url: str | None = setting(
        None, "URL other nodes and tools use to reach this node"
    )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


@dataclass(frozen=True)
class Blobs(Section):
    """Files the mesh shares by digest (tokenizers), kept under the data dir."""

    title = "blobs"
    table = "blobs"
    prefix = "blob_"

    blob_max_bytes: int = setting(
        256 * 1024 * 1024, "largest file the blob store takes or fetches (bytes)", check=at_least(1)
    )
    blob_fetch_timeout_secs: float = setting(
        120.0,
        "longest fetch of one file from a peer, or of a tokenizer source URL",
        check=between(0.1, 3600),
    )


@dataclass(frozen=True)
class Wasm(Section):
    """WASM middleware (docs/wasm.md): off unless enabled; each module's default limits."""

    title = "wasm"
    table = "wasm"
    prefix = "wasm_"

    enable_wasm: bool = setting(False, "run registered WASM middleware and serve /wasm")
    wasm_max_module_bytes: int = setting(
        64 * 1024 * 1024, "largest WASM component a node takes (bytes)", check=at_least(1)
    )
    wasm_timeout_ms: int = setting(
        50, "longest call of a module without its own limit (ms)", check=between(1, 60_000)
    )
    wasm_memory_bytes: int = setting(
        64 * 1024 * 1024,
        "most memory a module without its own limit may use (bytes)",
        check=between(64 * 1024, 4 * 1024**3),
    )
    wasm_max_body_bytes: int = setting(
        1024 * 1024,
        "largest body handed to a module, or taken from one as a replacement (bytes)",
        # wasmtime copies a body as one value per byte (~80 bytes of host memory a byte
        # while a call holds it), and refuses to copy a replacement of much more
        check=between(0, 2 * 1024 * 1024),
    )
    wasm_instances: int = setting(
        2, "ready instances of each module: the calls of one module at once", check=between(1, 64)
    )
    wasm_busy_wait_ms: int = setting(
        1000,
        "how long a call waits for one of its module's instances before failing as busy (ms)",
        check=between(0, 60_000),
    )
    wasm_breaker_failures: int = setting(
        5, "consecutive failures that turn a module off on a node", check=at_least(1)
    )
    wasm_breaker_cooldown_secs: float = setting(
        30.0, "how long a module stays off before one call probes it", check=between(0.1, 3600)
    )


@dataclass(frozen=True)
class HotStore(Section):
    """Redis, shared by rate limits, quotas and usage for exact mesh-wide counts."""

    title = "hot store"
    table = "hot_store"
    prefix = "redis_"

    redis_url: str | None = setting(
        None, "Redis for exact mesh-wide rate limits (redis://host:port/db)", show=masked
    )
    redis_timeout_secs: float = setting(
        0.25,
        "longest wait for Redis on a request before deciding from local shares",
        check=between(0.01, 10),
    )


@dataclass(frozen=True)
class Shutdown(Section):
    """When the node takes no traffic: draining, stopping, and what readiness requires."""

    title = "shutdown"
    table = "shutdown"

    drain_delay_secs: float = setting(
        5.0, "keep serving this long after turning not-ready", check=at_least(0)
    )
    shutdown_grace_secs: float = setting(
        30.0, "longest wait for in-flight requests when stopping", check=at_least(0)
    )
    readiness_requires_workers: bool = setting(
        False,
        "report not-ready while no worker is healthy (the load balancer then drops the "
        "node's control plane too, so no worker can be added through it)",
    )
