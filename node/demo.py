"""`meshgate demo`: a 3-node meshgate mesh and two echo workers on loopback, until Ctrl-C.

Everything runs as real child processes, started exactly as an operator would
start them, with data under a fresh temporary directory; the demo prints the
URLs and calls to try, and stops every child on exit.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from node.localmesh import LocalMesh, LocalMeshError


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


def run(args: argparse.Namespace) -> int:
    # Kept after the demo stops: the banner and every error point at its logs.
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-demo-"))
    mesh = LocalMesh(
        workdir,
        names=[f"node-{i + 1}" for i in range(args.nodes)],
        http_ports=[args.port + i for i in range(args.nodes)],
        model=args.model,
        worker_names=[f"echo-{i + 1}" for i in range(args.workers)],
        worker_args=["--token-delay-ms", str(args.token_delay_ms)],
        node_args=["--policy", "round_robin", "--drain-delay-secs", "1"],
    )
    try:
        try:
            mesh.start_workers()
            mesh.start_nodes()
            for node in mesh.nodes:
                node.wait_ready()
        except LocalMeshError as exc:
            print(exc)
            return 1
        _print_banner(mesh.urls, mesh.worker_urls, args.model, workdir)
        return _wait_for_ctrl_c(mesh)
    finally:
        mesh.stop()


def _wait_for_ctrl_c(mesh: LocalMesh) -> int:
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop:
        if not all(child.alive() for child in mesh.children()):
            print(f"a demo process exited; logs are in {mesh.workdir}")
            return 1
        time.sleep(0.2)
    print("\nstopping the demo")
    return 0


def _print_banner(gateways: list[str], workers: list[str], model: str, workdir: Path) -> None:
    print(
        f"""
meshgate demo is running (Ctrl-C stops it)

  mesh nodes   {" ".join(gateways)}
  workers      {" ".join(workers)}
  logs, data   {workdir}

Try:
{calls(gateways, model)}""",
        flush=True,
    )


def calls(gateways: list[str], model: str) -> str:
    """Shell lines to paste anywhere: commands by absolute path, so they run without this
    virtualenv on PATH or the checkout as the working directory."""
    gateway, other = gateways[0], gateways[-1]
    python = shlex.quote(sys.executable)
    lines = f"""\
  curl {gateway}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  curl -N {other}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "stream": true, "messages": [{{"role": "user", "content": "Hi"}}]}}'

  curl {gateway}/workers              # the registered workers, by UUID
  curl {gateway}/ha/status            # leader, term, every node's role and applied index
  curl -X POST {other}/ha/config -H 'Content-Type: application/json' \\
    -d '{{"key": "greeting", "value": "hello"}}'
  curl {gateway}/ha/config/greeting   # written through one node, read on another
  {_meshgate(python)} cluster status --url {gateway}
"""
    if importlib.util.find_spec("openai") is not None:  # a test extra, not a dependency
        lines += f"""
  {python} -c "import openai; c = openai.OpenAI(base_url='{gateway}/v1', api_key='none'); \\
print(c.chat.completions.create(model='{model}', \\
messages=[{{'role': 'user', 'content': 'Hi'}}]).choices[0].message.content)"
"""
    return lines


def _meshgate(python: str) -> str:
    """This installation's `meshgate`, by path: the script beside the interpreter, or the
    interpreter running its module."""
    script = Path(sys.executable).with_name("meshgate")
    return shlex.quote(str(script)) if script.is_file() else f"{python} -m node.cli"
