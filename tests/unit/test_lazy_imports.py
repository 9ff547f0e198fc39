"""Each `meshgate` command loads only what it runs, and a node builds nothing at import
that it may never use: every node process, in production and in the tests, pays for
its imports at each start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER = ("node.serve", "node.app", "node.web", "mesh.raft")
TOOLS = ("node.echo.cli", "node.demo", "node.cluster_cli", "node.localmesh")
TOKENS = ("jwt", "cryptography.x509")  # only for a node with tokens on (node.app.token_service)
# Only for a request that renders a chat template or checks a tool's JSON schema.
TEXT = ("jinja2", "jsonschema")
WASM = ("wasmtime", "node.wasm.runtime")  # only for a node started with --enable-wasm
# What a node never builds at import: the OpenAPI document waits for GET /openapi.json.
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
built = None
if "node.api.openapi.document" in sys.modules:
    built = sys.modules["node.api.openapi.document"].document.cache_info().currsize
print(json.dumps({"modules": sorted(sys.modules), "openapi_built": built}))
"""
COMMANDS = {
    "node.serve": TOOLS + TOKENS + TEXT + WASM,
    "node.echo.cli": SERVER + TOKENS,
    "node.demo": SERVER + TOKENS,
    "node.cluster_cli": SERVER + TOKENS,
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict[str, object]]:
    """What importing each command's module loads, each in a fresh interpreter (all at once)."""
    procs = {
        module: subprocess.Popen(
            [sys.executable, "-c", PROBE, module], stdout=subprocess.PIPE, text=True
        )
        for module in COMMANDS
    }
    found = {}
    for module, proc in procs.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, module
        found[module] = json.loads(out)
    return found


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_a_command_does_not_import_the_others(
    loaded: dict[str, dict[str, object]], module: str
) -> None:
    modules = loaded[module]["modules"]
    assert isinstance(modules, list)
    assert [name for name in COMMANDS[module] if name in modules] == []


def test_a_node_builds_its_openapi_document_on_first_request(
    loaded: dict[str, dict[str, object]],
) -> None:
    assert loaded["node.serve"]["openapi_built"] == 0
