"""One `meshgate grpc-echo-worker` on this machine (tests, demo, benchmarks)."""

from __future__ import annotations

import functools
import socket
from collections.abc import Sequence
from pathlib import Path

from node.localmesh.mesh import ECHO_MODEL, wait_until
from node.localmesh.process import Child


def grpc_echo_worker_args(
    port: int,
    tokenizer_dir: Path | None,
    model: str = ECHO_MODEL,
    *,
    host: str = "127.0.0.1",
    extra: Sequence[str] = (),
) -> list[str]:
    """The `meshgate grpc-echo-worker` command line of one worker (without a tokenizer
    directory, the simulator's built-in tokenizer)."""
    args = ["grpc-echo-worker", "--host", host, "--port", str(port)]
    if tokenizer_dir is not None:
        args += ["--tokenizer", str(tokenizer_dir)]
    return [*args, "--model-id", model, *extra]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class GrpcEchoWorker:
    """A gRPC echo worker on `port`, its `url` (grpc://127.0.0.1:PORT) and its process."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        tokenizer_dir: Path | None,
        model: str = ECHO_MODEL,
        name: str = "",
        extra: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.url = f"grpc://127.0.0.1:{port}"
        self.name = name or f"grpc-echo-{port}"
        args = grpc_echo_worker_args(port, tokenizer_dir, model, extra=extra)
        self.proc = Child(args, workdir / f"{self.name}.log", label=f"grpc echo {self.name}")

    def wait_listening(self, timeout: float = 30.0) -> None:
        check = functools.partial(_listening, self.port)
        wait_until(check, f"{self.name} did not start", timeout, self.proc)
