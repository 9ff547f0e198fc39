"""`meshgate demo`: a 3-node meshgate mesh, two HTTP echo workers and one gRPC echo worker
on loopback, until Ctrl-C.

Everything runs as real child processes, started exactly as an operator would
start them, with data under a fresh temporary directory; the demo prints the
URLs and calls to try, and stops every child on exit. The gRPC worker (the
simulator with its built-in tokenizer) serves the same model, so a chat
completion may be answered by either kind; `X-Meshgate-Worker` says which.
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

from node.localmesh import GrpcEchoWorker, LocalMesh, LocalMeshError, free_port, stop_all


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
        "--grpc-workers",
        type=int,
        default=1,
        help="number of gRPC echo workers (SGLang's protocol)",
    )
    parser.add_argument(
        "--token-delay-ms",
        type=float,
        default=20.0,
        help="echo workers' delay between streamed tokens",
    )


def run(args: argparse.Namespace) -> int:
    # SIGTERM stops the demo as Ctrl-C does, from the start: a demo stopped while it still
    # starts stops the nodes and workers it started too (the default action left them running).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Kept after the demo stops: the banner and every error point at its logs.
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-demo-"))
    delay = ["--token-delay-ms", str(args.token_delay_ms)]
    engines: list[GrpcEchoWorker] = []
    mesh: LocalMesh | None = None
    try:
        for i in range(args.grpc_workers):
            engines.append(
                GrpcEchoWorker(workdir, free_port(), None, args.model, f"grpc-echo-{i + 1}", delay)
            )
        mesh = LocalMesh(
            workdir,
            names=[f"node-{i + 1}" for i in range(args.nodes)],
            http_ports=[args.port + i for i in range(args.nodes)],
            model=args.model,
            worker_names=[f"echo-{i + 1}" for i in range(args.workers)],
            worker_args=delay,
            extra_worker_urls=[engine.url for engine in engines],
            node_args=["--policy", "round_robin", "--drain-delay-secs", "1"],
        )
        try:
            for engine in engines:
                engine.wait_listening()
            mesh.start_workers()
            mesh.start_nodes()
            for node in mesh.nodes:
                node.wait_ready()
        except LocalMeshError as exc:
            print(exc)
            return 1
        _print_banner(mesh.urls, mesh.worker_urls, args.model, workdir)
        return _wait_for_ctrl_c(mesh, engines)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        print("\nstopping the demo", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one does not cut this short
        if mesh is not None:
            mesh.stop()
        stop_all([engine.proc for engine in engines], grace=5)


def _wait_for_ctrl_c(mesh: LocalMesh, engines: list[GrpcEchoWorker]) -> int:
    """Until Ctrl-C or SIGTERM (KeyboardInterrupt, for `run` to catch), or until a demo
    process exits (1)."""
    while True:
        children = mesh.children() + [engine.proc for engine in engines]
        if not all(child.alive() for child in children):
            print(f"a demo process exited; logs are in {mesh.workdir}")
            return 1
        time.sleep(0.2)


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

  curl -si {gateway}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Who?"}}]}}' \\
    | grep -i '^x-meshgate-worker'   # the worker that served it (HTTP or gRPC), by UUID
  curl {gateway}/workers              # the registered workers: UUID, url, connection_mode
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
