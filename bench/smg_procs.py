"""smg_compare.py's processes: a static nginx backend, SMG in its own virtualenv, and
meshgate nodes; each a process group whose CPU time is read from /proc.

The backend must never be the bottleneck, so it is nginx answering fixed bodies
from its configuration (microseconds a request), not a Python server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path

from common import BenchError, proc_cpu_seconds
from gateway_setup import gateway_flags, http_get, wait_until

from node.localmesh import Child, LocalMesh

MODEL = "bench-model"
# What the backend answers: a small, complete chat completion and a models list.
CHAT_ANSWER = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"' + MODEL + '",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},'
    '"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}'
)
MODELS_ANSWER = '{"object":"list","data":[{"id":"' + MODEL + '","object":"model","owned_by":"b"}]}'
# A whole chat stream (eight events and [DONE]), for a second server that answers streams.
STREAM_ANSWER = (
    "".join(
        'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"' + MODEL + '",'
        '"choices":[{"index":0,"delta":{"content":"t' + str(i) + '"},"finish_reason":null}]}\\n\\n'
        for i in range(8)
    )
    + "data: [DONE]\\n\\n"
)
STREAM_SERVER = """\
  server {{
    listen 127.0.0.1:{port};
    default_type text/event-stream;
    location = /v1/chat/completions {{ return 200 '{stream}'; }}
    location / {{ return 200 '{models}'; }}
  }}
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
error_log stderr warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  default_type application/json;
  server {{
    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{ return 200 '{chat}'; }}
    location = /v1/models {{ return 200 '{models}'; }}
    location / {{ return 200 '{{}}'; }}
  }}
{stream_server}}}
"""


def tool(name: str, package: str) -> str:
    """The path of a Debian tool the comparison needs, or a BenchError saying how to get it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise BenchError(f"{name} is not installed; on Debian: apt-get install -y {package}")
    return found


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every live process in process group `pgid` (a gateway and its helpers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:  # field 5: pgrp
            total += proc_cpu_seconds(int(entry)) or 0.0
    return total


def start_nginx(tmp: Path, port: int, stream_port: int | None = None) -> Child:
    """nginx answering the fixed chat completion on `port`, and with `stream_port` the
    fixed chat stream on that port too."""
    nginx = tool("nginx", "nginx")
    conf = tmp / "nginx.conf"
    streams = (
        STREAM_SERVER.format(port=stream_port, stream=STREAM_ANSWER, models=MODELS_ANSWER)
        if stream_port is not None
        else ""
    )
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp, port=port, chat=CHAT_ANSWER, models=MODELS_ANSWER, stream_server=streams
        )
    )
    proc = Child(
        ["-p", str(tmp), "-c", str(conf)], tmp / "nginx.log", program=[nginx], label="nginx"
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(proc, "nginx to answer", _answers(url + "/v1/models"), 10)
    return proc


def _answers(url: str) -> Callable[[], str | None]:
    def check() -> str | None:
        status, _ = http_get(url)
        return None if status == 200 else f"{url} answered {status}"

    return check


def smg_binary(venv_dir: Path) -> str | None:
    """`smg` from `venv_dir`, installed there with pip first if needed; None (with the
    reason printed) when it cannot be installed here."""
    smg = venv_dir / "bin" / "smg"
    if smg.exists():
        return str(smg)
    print(f"installing SMG into {venv_dir} (pip install smg) ...", file=sys.stderr, flush=True)
    try:
        venv.create(venv_dir, with_pip=True)
        subprocess.run(
            [str(venv_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "smg"],
            check=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"SMG skipped: pip install smg failed here ({exc})", file=sys.stderr)
        return None
    return str(smg) if smg.exists() else None


def start_smg(smg: str, tmp: Path, port: int, metrics_port: int, backend: str) -> Child:
    command = [
        "launch",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--worker-urls",
        backend,
        "--policy",
        "round_robin",
        "--prometheus-host",
        "127.0.0.1",
        "--prometheus-port",
        str(metrics_port),
        "--log-level",
        "warn",
    ]
    proc = Child(command, tmp / "smg.log", program=[smg], label="smg")
    url = f"http://127.0.0.1:{port}"
    wait_until(proc, "SMG to serve /v1/models", _answers(url + "/v1/models"), 60)
    return proc


def meshgate_node(
    tmp: Path, name: str, backend: str, src: Path | None, flags: list[str]
) -> LocalMesh:
    """One `meshgate serve` node in front of `backend`, with extra `flags`; from the
    checkout `src` when given (to compare two versions), else from this one."""
    env = {"MESHGATE_DRAIN_DELAY_SECS": "0"}
    if src is not None:
        # `python -m` puts the working directory (this checkout) before PYTHONPATH;
        # PYTHONSAFEPATH leaves it out, so the node really runs from `src`.
        env["PYTHONPATH"] = str(src)
        env["PYTHONSAFEPATH"] = "1"
    (tmp / name).mkdir()
    return LocalMesh(
        tmp / name,
        nodes=1,
        names=[name],
        workers=0,
        node_args=["--worker-urls", backend, *gateway_flags("round_robin"), *flags],
        env=env,
    )


def wait_meshgate(mesh: LocalMesh, timeout: float) -> None:
    mesh.start_nodes()
    node = mesh.nodes[0]
    deadline = time.monotonic() + timeout
    node.wait_ready(timeout)
    while time.monotonic() < deadline:
        status, _ = http_get(mesh.urls[0] + "/v1/models")
        if status == 200:
            return
        time.sleep(0.1)
    raise BenchError(f"meshgate node {node.name} serves no model after {timeout:.0f}s")
