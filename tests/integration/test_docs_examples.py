"""Every example in the documents works: the shell blocks marked `run` run against a real
3-node mesh, the others are checked for syntax, and JSON, TOML and Python blocks parse.

The marks and the documents read are described in tests/doc_blocks.py. A `run` block
gets these placeholders in its environment (and nothing else of the test's):
    $GW         a node's URL (gw1; the nodes are named gw1, gw2, gw3)
    $LB         another node's URL (gw3), where a document says "the load balancer"
    $ADMIN_KEY  an admin control-plane key (`--control-plane-api-keys ops1:ops:admin:…`)
    $CLIENT_KEY the client key (`--api-key`)
    $TENANT_KEY a managed key (role user) of the tenant `acme`
`meshgate` and `python3` are the virtualenv's, and curl reads a ~/.curlrc that makes it
fail on an HTTP error, so an example that gets a 4xx or 5xx fails. The blocks of one
document run in its order, each in its own shell (in an empty directory, its $HOME): a
block sets what it uses itself. The mesh is started once, for the first `run` block.
"""

from __future__ import annotations

import argparse
import ast
import json
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from node import demo
from node.localmesh import LocalMesh
from tests.doc_blocks import KINDS, ROOT, SHELL, Block, blocks, documents
from tests.doc_commands import meshgate_commands, refusal, repository_paths
from tests.support import MESH_SECRET, TEST_NODE_FLAGS, strong

ADMIN_KEY = strong("docs-admin")
CLIENT_KEY = strong("docs-client")
KEY = {"name": "docs", "namespace": "acme", "role": "user"}
CURLRC = '--fail-with-body\n--silent\n--show-error\nwrite-out = "\\n"\n'
NODE_KEYS = {  # as README's "Running a node" sets them
    "MESHGATE_API_KEY": CLIENT_KEY,
    "MESHGATE_CONTROL_PLANE_API_KEYS": f"ops1:ops:admin:{ADMIN_KEY}",
}
PATH = f"{Path(sys.executable).parent}:/usr/bin:/bin"  # the virtualenv's meshgate first

BLOCKS = [block for path in documents() for block in blocks(path)[0]]


def of(*kinds: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang in SHELL and b.kind in kinds]


def ids(block: Block) -> str:
    return block.where


def test_every_shell_example_is_marked() -> None:
    problems = [problem for path in documents() for problem in blocks(path)[1]]
    assert not problems, "see tests/doc_blocks.py for the marks:\n" + "\n".join(problems)


@pytest.mark.parametrize("block", of(*KINDS), ids=ids)
def test_shell_example_syntax(block: Block) -> None:
    check = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert check.returncode == 0, f"{block.where}: not valid bash:\n{check.stderr}"


@pytest.mark.parametrize("block", [b for b in of(*KINDS) if "meshgate" in b.text], ids=ids)
def test_meshgate_command_lines_parse(block: Block) -> None:
    """Run or not, an example's `meshgate` lines name real subcommands and flags, and a
    `serve` line's settings pass the node's checks (with the secrets in the environment,
    where the documents put them)."""
    for argv in meshgate_commands(block.text):
        refused = refusal(argv, {**NODE_KEYS, "MESHGATE_MESH_SECRET": MESH_SECRET})
        if refused:
            pytest.fail(f"{block.where}: meshgate {shlex.join(argv)}\n{refused}", pytrace=False)


@pytest.mark.parametrize("block", [b for b in of(*KINDS) if repository_paths(b.text)], ids=ids)
def test_paths_an_example_names_exist(block: Block) -> None:
    missing = [path for path in repository_paths(block.text) if not (ROOT / path).exists()]
    assert not missing, f"{block.where}: no such file in the checkout: {', '.join(missing)}"


@pytest.mark.parametrize("block", of("demo"), ids=ids)
def test_demo_example_is_what_the_demo_prints(block: Block) -> None:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    defaults = parser.parse_args([])
    urls = [f"http://127.0.0.1:{defaults.port + i}" for i in range(defaults.nodes)]
    printed = " ".join(demo.calls(urls, defaults.model).split())
    assert " ".join(block.text.split()) in printed, f"{block.where}: not printed by the demo"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in ("json", "toml")], ids=ids)
def test_data_example_parses(block: Block) -> None:
    if block.lang == "toml":
        tomllib.loads(block.text)
    elif not _json(block.text) and not _json("{" + block.text + "}"):  # or a member of one
        pytest.fail(f"{block.where}: not JSON, nor a member of an object")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python"], ids=ids)
def test_python_example_compiles(block: Block) -> None:
    compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def _json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a `run` block, with a mesh of gw1, gw2, gw3 behind it."""
    home = tmp_path_factory.mktemp("docs-home")
    (home / ".curlrc").write_text(CURLRC)
    mesh = LocalMesh(
        tmp_path_factory.mktemp("docs-mesh"),
        names=["gw1", "gw2", "gw3"],
        secret=MESH_SECRET,
        env=NODE_KEYS,
        node_args=[*TEST_NODE_FLAGS, "--health-check-interval-secs", "1"],
    )
    try:
        mesh.start_workers()
        mesh.start_nodes()
        mesh.wait_ready(headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        gw, _, lb = mesh.urls
        yield {
            "TENANT_KEY": _tenant_key(gw),
            "PATH": PATH,
            "HOME": str(home),
            "GW": gw,
            "LB": lb,
            "ADMIN_KEY": ADMIN_KEY,
            "CLIENT_KEY": CLIENT_KEY,
        }
    finally:
        mesh.stop()


def _tenant_key(gw: str) -> str:
    """A user key of a new tenant `acme`, made by the admin."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for path, body in [("/api/admin/tenants", {"name": "acme"}), ("/api/keys", KEY)]:
        made = requests.post(gw + path, json=body, headers=admin, timeout=10)
        assert made.status_code == 201, made.text
    return str(made.json()["apiKey"])


@pytest.mark.parametrize("block", of("run"), ids=ids)
def test_run_example(block: Block, shell_env: dict[str, str]) -> None:
    shell = subprocess.run(
        ["bash", "-x", "-euo", "pipefail", "-c", block.text],
        env=shell_env,
        cwd=shell_env["HOME"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # interleaved: each traced command before its output
        text=True,
        timeout=60,
    )
    if shell.returncode != 0:
        pytest.fail(f"{block.where}: exit {shell.returncode}:\n{shell.stdout}", pytrace=False)
