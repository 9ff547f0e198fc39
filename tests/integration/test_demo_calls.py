"""The calls `meshgate demo` prints run as printed, from a shell outside the virtualenv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from node.demo import calls
from tests.integration.conftest import Cluster
from tests.support import Proc, free_port_run, http_ok, wait_for

MODEL = "demo-model"
CLEAN_PATH = "/usr/bin:/bin"  # no virtualenv on it


def test_the_printed_calls_run_in_a_clean_shell(cluster: Cluster, tmp_path: Path) -> None:
    _, worker = cluster.echo(model=MODEL)
    node = cluster.node("--worker-urls", worker)
    printed = calls([node.url], MODEL)
    assert shutil.which("meshgate", path=CLEAN_PATH) is None
    # Every curl fails on an HTTP error and ends its answer with a newline: curl reads
    # ~/.curlrc, so the lines run exactly as printed.
    (tmp_path / ".curlrc").write_text('--fail\n--silent\n--show-error\nwrite-out = "\\n"\n')
    shell = subprocess.run(
        ["bash", "-e", "-c", printed],
        env={"PATH": CLEAN_PATH, "HOME": str(tmp_path)},
        cwd=tmp_path,  # not the checkout: `node` is not importable from here by accident
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, f"{shell.stdout}\n{shell.stderr}"
    assert "python" in printed and " -c " in printed  # the OpenAI client call was run
    out = shell.stdout.splitlines()
    greeting = [line for line in out if line.startswith("{") and '"greeting"' in line][-1]
    assert json.loads(greeting)["value"] == "hello", greeting  # the write read back
    reply = out[-1]  # the OpenAI client's answer, printed last
    assert reply and not reply.startswith(("{", "data:")), shell.stdout


def test_a_demo_stopped_while_it_starts_leaves_no_node_running(tmp_path: Path) -> None:
    """SIGTERM while the demo still waits for its nodes (its banner not yet printed): it
    stops what it started, as Ctrl-C does. The default action left the nodes running."""
    port = free_port_run(3)
    demo = Proc(["demo", "--port", str(port), "--workers", "1"], tmp_path / "demo.log")
    urls = [f"http://127.0.0.1:{port + i}" for i in range(3)]
    try:
        wait_for(lambda: http_ok(urls[0] + "/liveness"), timeout=60, what="the demo's first node")
        assert "meshgate demo is running" not in demo.log()  # still starting
    finally:
        demo.stop(timeout=30)
    assert demo.popen.returncode == 0, demo.log()
    assert not [url for url in urls if http_ok(url + "/liveness")]
