"""Unit tests of `meshgate serve` settings (`node/config/`)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node import config, runtime
from node.config import OPTIONS, Config, ConfigError

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "s3cr3t-adm1n-Xq7vR2mK9pL4tW8zB6nC1dF5"
ADMIN = f"k1:alice:admin:{ADMIN_KEY}"
USER = "k2:bob:user:s3cret:with:colons-Hj3kL9mN2pQ5rS8tV1wY4zA"
API_KEY = "the-client-k3y-7Gh2Jk9Lm4Np6Qr8St1Vw3Xy5Z"
MESH_SECRET = "the-mesh-s3cr3t-9Bc4Df7Gh2Jk5Lm8Np1Qr3St"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return parser.parse_args(list(argv))


def load(*argv: str, env: dict[str, str] | None = None) -> Config:
    return config.load(parse(*argv), environ=env or {})


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "meshgate.toml"
    path.write_text(text)
    return str(path)


# --- defaults and precedence ---------------------------------------------------------------


def test_defaults() -> None:
    cfg = load("--node-name", "n1")
    for opt in OPTIONS:
        if opt.name in ("node_name", "data_dir"):
            continue
        assert getattr(cfg, opt.name) == opt.default, opt.name
    assert cfg.host == "127.0.0.1"
    assert cfg.port == 30000
    assert cfg.policy == "cache_aware"
    assert cfg.worker_urls == []
    assert cfg.api_key is None
    assert cfg.disable_retries is False
    assert cfg.request_id_headers == ["x-request-id"]
    assert cfg.data_dir == str(Path("meshgate-data") / "n1")
    assert cfg.data_path == Path("meshgate-data") / "n1"


def test_node_name_defaults_to_hostname() -> None:
    cfg = load()
    assert cfg.node_name
    assert cfg.data_dir.endswith(cfg.node_name)


@pytest.mark.parametrize("name", ["self", "cluster"])
def test_a_node_name_that_is_a_shutdown_target_is_refused(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A member named "cluster" would turn a rolling-restart step into a cluster shutdown.
    with pytest.raises(config.ConfigError, match=r"--node-name.*reserved"):
        load("--node-name", name)
    monkeypatch.setattr("socket.gethostname", lambda: name)
    with pytest.raises(config.ConfigError, match=r"from the hostname.*reserved"):
        load()


def test_default_list_is_not_shared_between_configs() -> None:
    a = load("--node-name", "a")
    b = load("--node-name", "b")
    assert a.request_id_headers == b.request_id_headers == ["x-request-id"]


def test_every_option_has_a_config_field() -> None:
    assert [o.name for o in OPTIONS] == [f for f in Config.__dataclass_fields__]


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 1111\nqueue_size = 7\npolicy = 'random'\nlog-level = 'debug'\n")
    env = {"MESHGATE_PORT": "2222", "MESHGATE_QUEUE_SIZE": "8"}
    cfg = load("--config", path, "--port", "3333", "--node-name", "n", env=env)
    assert cfg.port == 3333  # flag
    assert cfg.queue_size == 8  # env beats file
    assert cfg.policy == "random"  # file beats default
    assert cfg.log_level == "debug"  # dashed keys work in the file
    assert cfg.max_payload_size == 64 * 1024 * 1024  # default

    cfg = load("--config", path, "--node-name", "n", env=env)
    assert cfg.port == 2222
    cfg = load("--config", path, "--node-name", "n")
    assert cfg.port == 1111


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 4444\n")
    assert load("--node-name", "n", env={"MESHGATE_CONFIG": path}).port == 4444


def test_file_values_with_native_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "disable_retries = true\nqueue_timeout_secs = 2\n"
        "worker_urls = ['http://a:1', 'http://b:2']\nmesh_peers = '127.0.0.1:5000'\n"
        f"mesh_secret = '{MESH_SECRET}'\n",
    )
    cfg = load("--config", path, "--node-name", "n")
    assert cfg.disable_retries is True
    assert cfg.queue_timeout_secs == 2.0 and isinstance(cfg.queue_timeout_secs, float)
    assert cfg.worker_urls == ["http://a:1", "http://b:2"]
    assert cfg.mesh_peers == ["127.0.0.1:5000"]


@pytest.mark.parametrize(
    "raw",
    [
        "http://a:1 http://b:2",
        "http://a:1,http://b:2",
        " http://a:1 ,, http://b:2 ",
        "http://a:1,\thttp://b:2",
    ],
)
def test_list_options_from_env(raw: str) -> None:
    cfg = load("--node-name", "n", env={"MESHGATE_WORKER_URLS": raw})
    assert cfg.worker_urls == ["http://a:1", "http://b:2"]


def test_list_flag_takes_several_values_and_beats_env() -> None:
    env = {"MESHGATE_WORKER_URLS": "http://env:1"}
    cfg = load("--worker-urls", "http://a:1", "http://b:2", "--node-name", "n", env=env)
    assert cfg.worker_urls == ["http://a:1", "http://b:2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("ON", True), ("0", False), ("off", False)],
)
def test_bool_from_env(text: str, expected: bool) -> None:
    cfg = load("--node-name", "n", env={"MESHGATE_DISABLE_RETRIES": text})
    assert cfg.disable_retries is expected


def test_bool_flag() -> None:
    assert load("--disable-circuit-breaker", "yes", "--node-name", "n").disable_circuit_breaker


# --- bad values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--port", "notanumber"], "--port"),
        (["--port", "0"], "--port"),
        (["--port", "65536"], "--port"),
        (["--policy", "fastest"], "--policy"),
        (["--worker-urls", "ftp://x"], "--worker-urls"),
        (["--worker-urls", "http://ok:1", "not a url"], "--worker-urls"),
        (["--worker-urls", "http://"], "--worker-urls"),
        (["--control-plane-api-keys", "id:name:admin"], "--control-plane-api-keys"),
        (["--control-plane-api-keys", "id:name:root:key"], "--control-plane-api-keys"),
        (["--control-plane-api-keys", "id::admin:key"], "--control-plane-api-keys"),
        (["--control-plane-api-keys", ADMIN, "k1:x:user:y"], "--control-plane-api-keys"),
        (["--mesh-peers", "nohostport"], "--mesh-peers"),
        (["--mesh-peers", "127.0.0.1:99999"], "--mesh-peers"),
        (["--mesh-peers", ":5000"], "--mesh-peers"),
        (["--mesh-bind", "127.0.0.1:x"], "--mesh-bind"),
        (["--queue-size", "-1"], "--queue-size"),
        (["--queue-timeout-secs", "nan"], "--queue-timeout-secs"),
        (["--retry-jitter-factor", "1.5"], "--retry-jitter-factor"),
        (["--retry-max-retries", "0"], "--retry-max-retries"),
        (["--disable-retries", "maybe"], "--disable-retries"),
        (["--log-level", "trace"], "--log-level"),
        (["--max-payload-size", "1.5"], "--max-payload-size"),
        (["--cors-origins", "https://console.example/"], "--cors-origins"),
        (["--cors-origins", "https://console.example/path"], "--cors-origins"),
        (["--cors-origins", "*"], "--cors-origins"),
        (["--cors-origins", "null"], "--cors-origins"),
        (["--cors-origins", "HTTPS://CONSOLE.EXAMPLE"], "--cors-origins"),
        (["--cors-origins", "https://console.example:443"], "--cors-origins"),
        (["--cors-origins", "https://console.example:70000"], "--cors-origins"),
        (["--cors-origins", "ftp://console.example"], "--cors-origins"),
        (["--cors-origins", "https://user@console.example"], "--cors-origins"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_bad_flag_value_names_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(*argv, "--node-name", "n")
    assert flag in str(caught.value)
    assert "\n" not in str(caught.value)


def test_cors_origins_are_exact_origins() -> None:
    listed = ["https://console.example", "http://localhost:5173", "http://[::1]:8080"]
    assert load("--cors-origins", *listed, "--node-name", "n").cors_origins == listed
    assert load("--node-name", "n").cors_origins == []  # off by default


@pytest.mark.parametrize(
    ("env", "flag"),
    [
        ({"MESHGATE_PORT": "eighty"}, "--port"),
        ({"MESHGATE_POLICY": "nope"}, "--policy"),
        ({"MESHGATE_WORKER_URLS": "http://a:1,bad"}, "--worker-urls"),
        ({"MESHGATE_CONTROL_PLANE_API_KEYS": "a:b:c"}, "--control-plane-api-keys"),
        ({"MESHGATE_MESH_PEERS": "127.0.0.1"}, "--mesh-peers"),
    ],
)
def test_bad_env_value_names_flag_and_variable(env: dict[str, str], flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load("--node-name", "n", env=env)
    message = str(caught.value)
    assert flag in message
    assert next(iter(env)) in message


def test_bad_file_value_names_flag_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 'eighty'\n")
    with pytest.raises(ConfigError, match=r"--port.*config file"):
        load("--config", path, "--node-name", "n")
    path = write(tmp_path, "port = true\n")
    with pytest.raises(ConfigError, match="--port"):
        load("--config", path, "--node-name", "n")


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 1\nportt = 2\nbogus-key = 3\n")
    with pytest.raises(ConfigError) as caught:
        load("--config", path, "--node-name", "n")
    message = str(caught.value)
    assert message.startswith("--config")
    assert "portt" in message and "bogus_key" in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "port = = 1\n")
    with pytest.raises(ConfigError, match=r"--config: .* is not valid TOML"):
        load("--config", path, "--node-name", "n")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config: cannot read"):
        load("--config", str(tmp_path / "absent.toml"), "--node-name", "n")


# --- security ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.com"])
def test_no_auth_on_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load("--host", host, "--node-name", "n")
    assert str(caught.value).startswith("--host")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_no_auth_on_loopback_is_allowed(host: str) -> None:
    assert load("--host", host, "--node-name", "n").host == host


@pytest.mark.parametrize(
    "auth", [["--api-key", API_KEY], ["--control-plane-api-keys", ADMIN]], ids=["api", "cp"]
)
def test_auth_allows_non_loopback_host(auth: list[str]) -> None:
    assert load("--host", "0.0.0.0", *auth, "--node-name", "n").host == "0.0.0.0"


@pytest.mark.parametrize(
    "peers", [["127.0.0.1:5001", "10.0.0.2:5000"], ["127.0.0.1:5001", "localhost:5002"]]
)
def test_a_mesh_needs_a_secret_even_on_loopback(peers: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load("--mesh-peers", *peers, "--node-name", "n")
    assert str(caught.value).startswith("--mesh-secret")
    assert "generate-secret" in str(caught.value)
    cfg = load("--mesh-peers", *peers, "--mesh-secret", MESH_SECRET, "--node-name", "n")
    assert cfg.mesh_peers == peers


def test_a_lone_node_needs_no_secret() -> None:
    assert load("--node-name", "n").mesh_secret is None  # it generates one in its data dir


def test_empty_mesh_secret_counts_as_none() -> None:
    with pytest.raises(ConfigError, match="--mesh-secret"):
        load(
            "--node-name",
            "n",
            env={"MESHGATE_MESH_PEERS": "10.0.0.2:5000", "MESHGATE_MESH_SECRET": ""},
        )


def test_non_loopback_mesh_bind_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="--mesh-secret"):
        load("--api-key", API_KEY, "--mesh-bind", "0.0.0.0:4321", "--node-name", "n")


WEAK = [
    "shh",  # short
    "a" * 40,  # repetitive
    "abcabcabcabcabcabcabcabcabcabcabcabc",  # low entropy
    "changeme-changeme-changeme-changeme-1234",  # placeholder
    "REPLACE-ME-example-mesh-secret-0123456789",  # the example files' values
    "abcdefghijklmnopqrstuvwxyz012345",  # a run of consecutive characters
    "Password1Password2Password3Pass!",  # a word people build secrets from
    "my-company-production-api-key-2024",
]


@pytest.mark.parametrize("weak", WEAK)
@pytest.mark.parametrize(
    "flag",
    [
        "--mesh-secret",
        "--mesh-secret-previous",
        "--api-key",
        "--jwt-secret",
        "--control-plane-api-keys",
    ],
)
def test_weak_secrets_are_refused_with_how_to_generate(flag: str, weak: str) -> None:
    value = f"k9:ops:admin:{weak}" if flag == "--control-plane-api-keys" else weak
    with pytest.raises(ConfigError) as caught:
        load(flag, value, "--node-name", "n")
    message = str(caught.value)
    assert message.startswith(flag) and "meshgate generate-secret" in message
    assert weak not in message  # never echo a secret, even a bad one


def test_the_previous_mesh_secret_is_masked_and_must_differ() -> None:
    other = "the-previous-s3cr3t-4Xw8Zq2Rt6Yp9Lk3Mn7Bv5Cf"
    env = {"MESHGATE_MESH_SECRET_PREVIOUS": other}
    cfg = load("--mesh-secret", MESH_SECRET, "--node-name", "n", env=env)
    assert cfg.mesh_secret_previous == other
    assert cfg.public()["mesh_secret_previous"] == "***" and other not in repr(cfg.public())
    with pytest.raises(ConfigError, match="--mesh-secret-previous: equals") as caught:
        load(
            "--mesh-secret",
            MESH_SECRET,
            "--node-name",
            "n",
            env={**env, "MESHGATE_MESH_SECRET_PREVIOUS": MESH_SECRET},
        )
    assert MESH_SECRET not in str(caught.value)


def test_generated_secrets_pass(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "generate-secret"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert len(out) >= 64
    load("--mesh-secret", out, "--api-key", out + "x", "--jwt-secret", out, "--node-name", "n")


def test_public_masks_secrets() -> None:
    cfg = load(
        "--api-key",
        API_KEY,
        "--mesh-secret",
        MESH_SECRET,
        "--control-plane-api-keys",
        ADMIN,
        USER,
        "--node-name",
        "n",
    )
    shown = cfg.public()
    assert shown["api_key"] == "***"
    assert shown["mesh_secret"] == "***"
    assert shown["control_plane_api_keys"] == ["k1:alice:admin:***", "k2:bob:user:***"]
    text = repr(shown)
    for secret in (API_KEY, MESH_SECRET, "s3cret"):
        assert secret not in text
    assert shown["port"] == 30000
    assert set(shown) == set(Config.__dataclass_fields__)
    # The config itself is untouched.
    assert cfg.api_key == API_KEY
    assert cfg.control_plane_api_keys == [ADMIN, USER]


def test_public_leaves_unset_secrets_unset() -> None:
    shown = load("--node-name", "n").public()
    assert shown["api_key"] is None
    assert shown["mesh_secret"] is None
    assert shown["control_plane_api_keys"] == []


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_bad_port_exits_2_with_one_line() -> None:
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("MESHGATE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "serve", "--port", "notanumber"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "--port" in lines[0]
    assert "notanumber" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "endpoint",
    [
        "//evil.example/x",
        "http://evil.example/",
        "@evil.example",
        "/a/../b",
        "/ a",
        "/\x01",
        "health",
    ],
)
def test_health_check_endpoint_must_be_a_path(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"--health-check-endpoint: .* is not a path"):
        config.load(parse("--health-check-endpoint", endpoint), environ={})


def test_health_check_endpoint_may_be_a_path_with_a_query() -> None:
    loaded = config.load(parse("--health-check-endpoint", "/health?ready=1"), environ={})
    assert loaded.health_check_endpoint == "/health?ready=1"


# --- the declarations: flags, sections, runtime marks, README ------------------------------------

# SMG's flat flag names: a contract with operators' scripts, so they are pinned here.
FLAGS = [
    "--host",
    "--port",
    "--max-payload-size",
    "--request-id-headers",
    "--header-read-timeout-secs",
    "--body-read-timeout-secs",
    "--keepalive-timeout-secs",
    "--forwarded-allow-ips",
    "--log-level",
    "--processes",
    "--event-loop",
    "--worker-urls",
    "--policy",
    "--worker-startup-timeout-secs",
    "--worker-startup-check-interval",
    "--worker-drain-timeout-secs",
    "--max-concurrent-requests",
    "--queue-size",
    "--queue-timeout-secs",
    "--request-timeout-secs",
    "--retry-max-retries",
    "--retry-initial-backoff-ms",
    "--retry-max-backoff-ms",
    "--retry-backoff-multiplier",
    "--retry-jitter-factor",
    "--disable-retries",
    "--grpc-stream-interval",
    "--reasoning-parser",
    "--tool-call-parser",
    "--cb-failure-threshold",
    "--cb-success-threshold",
    "--cb-timeout-duration-secs",
    "--cb-window-duration-secs",
    "--disable-circuit-breaker",
    "--health-failure-threshold",
    "--health-success-threshold",
    "--health-check-timeout-secs",
    "--health-check-interval-secs",
    "--health-check-endpoint",
    "--api-key",
    "--control-plane-api-keys",
    "--cors-origins",
    "--management-requests-per-minute",
    "--management-burst",
    "--jwt-secret",
    "--jwt-issuer",
    "--jwt-audience",
    "--jwt-lifetime-secs",
    "--admin-credentials",
    "--idp-jwks-file",
    "--idp-jwks-url",
    "--idp-issuer",
    "--idp-audience",
    "--idp-role-claim",
    "--idp-tenant-claim",
    "--idp-admin-values",
    "--idp-minter-values",
    "--data-dir",
    "--node-name",
    "--mesh-bind",
    "--mesh-advertise",
    "--mesh-peers",
    "--mesh-secret",
    "--mesh-secret-previous",
    "--mesh-commit-timeout-secs",
    "--min-index-wait-secs",
    "--mesh-voter",
    "--mesh-log-compaction-entries",
    "--mesh-log-compaction-secs",
    "--http-advertise-url",
    "--blob-max-bytes",
    "--blob-fetch-timeout-secs",
    "--enable-wasm",
    "--wasm-max-module-bytes",
    "--wasm-timeout-ms",
    "--wasm-memory-bytes",
    "--wasm-max-body-bytes",
    "--wasm-instances",
    "--wasm-busy-wait-ms",
    "--wasm-breaker-failures",
    "--wasm-breaker-cooldown-secs",
    "--redis-url",
    "--redis-timeout-secs",
    "--drain-delay-secs",
    "--shutdown-grace-secs",
    "--readiness-requires-workers",
]


def test_flags_keep_their_flat_names() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    given = {flag for action in parser._actions for flag in action.option_strings}
    assert given == {*FLAGS, "--config", "-h", "--help"}
    assert [o.flag for o in OPTIONS] == FLAGS
    assert {o.env for o in OPTIONS} == {
        "MESHGATE_" + f[2:].replace("-", "_").upper() for f in FLAGS
    }


def test_readme_flag_table_follows_the_sections() -> None:
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- flag-groups:start -->")[1].split("<!-- flag-groups:end -->")[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        group, flags = line.strip("|").split("|")
        rows[group.strip()] = re.findall(r"--[a-z][a-z-]*", flags)
    declared = {s.title: [o.flag for o in OPTIONS if o.section is s] for s in config.SECTIONS}
    assert rows == declared


def test_runtime_settings_are_the_ones_marked_so() -> None:
    marked = {o.name for o in OPTIONS if o.runtime}
    assert marked == {"policy", "max_concurrent_requests", "queue_size", "queue_timeout_secs"} | {
        o.name
        for o in OPTIONS
        if o.section.table in ("upstream", "circuit_breaker", "health_checks")
    }
    assert list(config.RUNTIME_SETTINGS) == [o.name for o in OPTIONS if o.runtime]
    assert runtime.RUNTIME_SETTINGS is config.RUNTIME_SETTINGS


def test_sections_as_toml_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "port = 1111\nretry-jitter-factor = 0.5\n"
        "[upstream]\nmax_retries = 7\nrequest_timeout_secs = 9\n"
        "[circuit_breaker]\nfailure-threshold = 4\ndisable_circuit_breaker = true\n"
        "[health_checks]\ncheck_endpoint = '/ready'\n",
    )
    cfg = load("--config", path, "--node-name", "n")
    assert cfg.port == 1111 and cfg.retry_jitter_factor == 0.5  # flat keys still work
    assert cfg.retry_max_retries == 7  # the prefix may be dropped in the section's table
    assert cfg.request_timeout_secs == 9.0  # or the full name given
    assert cfg.cb_failure_threshold == 4 and cfg.disable_circuit_breaker is True
    assert cfg.health_check_endpoint == "/ready"
    assert config.read_config_file(path)["retry_max_retries"] == 7


def test_unknown_key_in_a_section_table(tmp_path: Path) -> None:
    path = write(tmp_path, "[upstream]\nmax_retries = 2\nport = 1\n[nosuch]\nx = 1\n")
    with pytest.raises(ConfigError) as caught:
        load("--config", path, "--node-name", "n")
    message = str(caught.value)
    assert message.startswith("--config") and "upstream.port" in message and "nosuch" in message


def test_bad_value_in_a_section_table_names_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "[upstream]\nmax_retries = 0\n")
    with pytest.raises(ConfigError, match=r"^--retry-max-retries \(from the config file\): must"):
        load("--config", path, "--node-name", "n")


def test_public_masks_every_declared_secret() -> None:
    cfg = load(
        "--jwt-secret",
        MESH_SECRET + "-jwt",
        "--redis-url",
        "redis://:hunter2@redis:6379/0",
        "--worker-urls",
        "http://user:pw@w:1",
        "--node-name",
        "n",
    )
    shown = cfg.public()
    assert shown["jwt_secret"] == "***" and shown["redis_url"] == "***"
    assert "pw" not in repr(shown["worker_urls"])


def test_help_groups_flags_by_section_and_marks_runtime_settings() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    text = parser.format_help()
    for section in config.SECTIONS:
        assert f"\n{section.title}:\n" in text
    assert "changeable at runtime" in text


def test_processes_default_to_one_per_usable_core_and_take_env_and_bounds() -> None:
    assert load().processes == 0
    assert load().process_count == len(os.sched_getaffinity(0))
    assert load("--processes", "1").process_count == 1
    assert load(env={"MESHGATE_PROCESSES": "3"}).process_count == 3
    with pytest.raises(ConfigError, match="--processes"):
        load("--processes", "-1")
    with pytest.raises(ConfigError, match="--processes"):
        load("--processes", "257")
