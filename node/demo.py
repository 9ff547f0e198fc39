"""`meshgate demo`: a 3-node meshgate mesh and two echo workers on loopback, until Ctrl-C.

Everything runs as real child processes, started exactly as an operator would
start them, with data under a fresh temporary directory; the demo prints the
URLs and calls to try, and stops every child on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from node.identity.strength import generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port",
        type=int,
        default=30000,
        help="first node's HTTP port (the other nodes take the next ones)",
    )
    parser.add_argument("--nodes", type=int, default=3, choices=(1, 3, 5), help="nodes in the mesh")
    parser.add_argument("--model", default="demo-model", help="model id the echo workers serve")
    parser.add_argument("--workers", type=int, default=2, help="number of echo workers")
    parser.add_argument(
        "--token-delay-ms",
        type=float,
        default=20.0,
        help="echo workers' delay between streamed tokens",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Children:
    """The demo's processes, with their logs under one directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ)

    def start(self, name: str, *cli: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", *cli],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-demo-"))
    children = Children(workdir)
    try:
        workers = _start_workers(children, args)
        if workers is None:
            return 1
        gateways = _start_mesh(children, args, workers)
        if gateways is None:
            return 1
        _print_banner(gateways, workers, args.model, workdir)
        return _wait_for_ctrl_c(children)
    finally:
        children.stop()


def _start_workers(children: Children, args: argparse.Namespace) -> list[str] | None:
    urls = []
    for i in range(args.workers):
        port, name = _free_port(), f"echo-{i + 1}"
        proc = children.start(
            name,
            "echo-worker",
            "--port",
            str(port),
            "--model",
            args.model,
            "--name",
            name,
            "--token-delay-ms",
            str(args.token_delay_ms),
        )
        url = f"http://127.0.0.1:{port}"
        if not _wait_ok(url + "/health", proc):
            print(f"{name} did not start; see {children.workdir}/{name}.log")
            return None
        urls.append(url)
    return urls


def _start_mesh(
    children: Children, args: argparse.Namespace, workers: list[str]
) -> list[str] | None:
    raft = [f"127.0.0.1:{_free_port()}" for _ in range(args.nodes)]
    # The mesh's Raft traffic is authenticated with a secret made for this run; it
    # reaches the nodes through the environment, never their command lines.
    children.env["MESHGATE_MESH_SECRET"] = generate()
    started = []
    for i in range(args.nodes):
        name, port = f"node-{i + 1}", args.port + i
        peers = [address for j, address in enumerate(raft) if j != i]
        mesh = ["--mesh-bind", raft[i], "--mesh-peers", *peers] if peers else []
        proc = children.start(
            name,
            "serve",
            "--port",
            str(port),
            "--node-name",
            name,
            "--data-dir",
            str(children.workdir / name),
            "--policy",
            "round_robin",
            "--drain-delay-secs",
            "1",
            "--worker-urls",
            *workers,
            *mesh,
        )
        started.append((name, f"http://127.0.0.1:{port}", proc))
    for name, url, proc in started:
        if not _wait_ok(url + "/readiness", proc):
            print(f"{name} did not become ready; see {children.workdir}/{name}.log")
            return None
    return [url for _, url, _ in started]


def _wait_for_ctrl_c(children: Children) -> int:
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        if any(p.poll() is not None for p in children.procs):
            print(f"a demo process exited; logs are in {children.workdir}")
            return 1
        time.sleep(0.2)
    print("\nstopping the demo")
    return 0


def _print_banner(gateways: list[str], workers: list[str], model: str, workdir: Path) -> None:
    gateway, other = gateways[0], gateways[-1]
    print(
        f"""
meshgate demo is running (Ctrl-C stops it)

  mesh nodes   {" ".join(gateways)}
  workers      {" ".join(workers)}
  logs, data   {workdir}

Try:
  curl {gateway}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  curl -N {other}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'

  curl {gateway}/workers              # the registered workers, by UUID
  curl {gateway}/ha/status            # leader, term, every node's role and applied index
  curl -X POST {other}/ha/config -d '{{"key": "greeting", "value": "hello"}}'
  curl {gateway}/ha/config/greeting   # written through one node, read on another
  .venv/bin/meshgate cluster status --url {gateway}

  python -c "import openai; c = openai.OpenAI(base_url='{gateway}/v1', api_key='none'); \\
print(c.chat.completions.create(model='{model}', \\
messages=[{{'role': 'user', 'content': 'Hi'}}]).choices[0].message.content)"
""",
        flush=True,
    )
