"""What a grpc-echo-worker is told at start: its model, tokenizer, replies and faults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

# The gRPC statuses a test may inject, by name (the flag and the prompt markers use them).
INJECTABLE_STATUSES = {
    code.name: code
    for code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNKNOWN,
    )
}
DISAGGREGATION_MODES = ("null", "prefill", "decode")


def check_status_name(value: str) -> grpc.StatusCode:
    """The gRPC status named `value` (case-insensitive), among those a test may inject."""
    code = INJECTABLE_STATUSES.get(value.upper())
    if code is None:
        raise ValueError(f"must be one of {', '.join(INJECTABLE_STATUSES)}, got {value!r}")
    return code


@dataclass(frozen=True)
class Faults:
    """Faults applied to every Generate (a prompt's markers add per-request ones)."""

    fail_status: grpc.StatusCode | None = None
    hang: bool = False
    cut_after: int | None = None  # abort the RPC after this many tokens were streamed
    unhealthy: bool = False  # HealthCheck answers healthy=false
    no_tokenizer: bool = False  # GetTokenizer answers UNIMPLEMENTED, as older engines do


@dataclass(frozen=True)
class SimConfig:
    host: str
    port: int
    tokenizer_dir: Path
    model_id: str
    model_path: str
    max_context_length: int
    max_new_tokens_default: int
    reply_text: str | None
    token_delay_ms: float
    embedding_dim: int
    base_load: int  # added to the running requests GetLoads reports
    api_key: str | None
    record_file: Path | None
    disaggregation_mode: str
    bootstrap_port: int | None
    faults: Faults
    bootstrap_wait_s: float = 5.0  # decode: how long a request waits for its prefill half
