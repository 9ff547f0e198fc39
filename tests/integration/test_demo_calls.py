"""The calls `meshgate demo` prints run as printed, from a shell outside the virtualenv."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from node.demo import calls
from tests.integration.conftest import Cluster

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
