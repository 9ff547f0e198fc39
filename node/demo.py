"""`meshgate demo`: a gateway and two echo workers on loopback, until Ctrl-C.

Everything runs as real child processes, exactly as an operator would start
them, with data under a fresh temporary directory; the demo prints the URLs
and calls to try, and stops every child on exit.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=30000, help="gateway HTTP port")
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


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-demo-"))
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *cli: str) -> subprocess.Popen[bytes]:
        log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", *cli], stdout=log, stderr=subprocess.STDOUT
        )
        procs.append(proc)
        return proc

    try:
        worker_urls = []
        for i in range(args.workers):
            port = _free_port()
            proc = start(
                f"echo-{i + 1}",
                "echo-worker",
                "--port",
                str(port),
                "--model",
                args.model,
                "--name",
                f"echo-{i + 1}",
                "--token-delay-ms",
                str(args.token_delay_ms),
            )
            url = f"http://127.0.0.1:{port}"
            if not _wait_ok(url + "/health", proc):
                print(f"echo worker {i + 1} did not start; see {workdir}/echo-{i + 1}.log")
                return 1
            worker_urls.append(url)
        gateway = f"http://127.0.0.1:{args.port}"
        proc = start(
            "node-1",
            "serve",
            "--port",
            str(args.port),
            "--node-name",
            "node-1",
            "--data-dir",
            str(workdir / "node-1"),
            "--policy",
            "round_robin",
            "--worker-urls",
            *worker_urls,
        )
        if not _wait_ok(gateway + "/readiness", proc):
            print(f"the gateway did not become ready; see {workdir}/node-1.log")
            return 1
        _print_banner(gateway, worker_urls, args.model, workdir)
        stop = False

        def on_signal(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop:
            if any(p.poll() is not None for p in procs):
                print(f"a demo process exited; logs are in {workdir}")
                return 1
            time.sleep(0.2)
        print("\nstopping the demo")
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _print_banner(gateway: str, workers: list[str], model: str, workdir: Path) -> None:
    print(
        f"""
meshgate demo is running (Ctrl-C stops it)

  gateway      {gateway}
  workers      {" ".join(workers)}
  logs, data   {workdir}

Try:
  curl {gateway}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  curl -N {gateway}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'

  curl {gateway}/workers          # the registered workers, by UUID
  curl {gateway}/readiness        # 200 while the node can serve

  python -c "import openai; c = openai.OpenAI(base_url='{gateway}/v1', api_key='none'); \\
print(c.chat.completions.create(model='{model}', \\
messages=[{{'role': 'user', 'content': 'Hi'}}]).choices[0].message.content)"
""",
        flush=True,
    )
