"""The latency an empty OnRequest module adds to a request through a real node.

One node (`--enable-wasm`) and one echo worker on loopback; chat requests one at a time
(no queueing), in rounds that alternate the module off and on (`PATCH /wasm/{id}`), so
drift on a shared host falls on both. Prints p50/p99 in microseconds of each, and the
difference of the medians. Only the node's public API is used, so the same script
measures any build: run it from the checkout to measure.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import time
from pathlib import Path

import requests

ROOT = Path.cwd()  # the checkout measured: its nodes start from here (python -m node.cli)
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from node.localmesh import LocalMesh, get_json, wait_until  # noqa: E402
from tests.wasm_components import module_bytes  # noqa: E402


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_us": round(percentile(values, 50), 1), "p99_us": round(percentile(values, 99), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured, per setting")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    key, client = ("k" + secrets.token_urlsafe(32) for _ in range(2))
    admin = {"Authorization": f"Bearer {key}"}
    node_args = ["--enable-wasm", "--control-plane-api-keys", f"a:ops:admin:{key}"]
    with LocalMesh(nodes=1, node_args=[*node_args, "--api-key", client]) as mesh:
        url = mesh.nodes[0].url
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {client}"
        chat = {"model": mesh.model, "messages": [{"role": "user", "content": "hi"}]}

        def timed(count: int) -> list[float]:
            took = []
            for _ in range(count):
                started = time.perf_counter()
                session.post(url + "/v1/chat/completions", json=chat, timeout=10).raise_for_status()
                took.append((time.perf_counter() - started) * 1e6)
            return took

        module = {
            "name": "empty",
            "wasm_base64": base64.b64encode(module_bytes("empty")).decode(),
            "module_type": "Middleware",
            "attach_points": [{"Middleware": "OnRequest"}],
            "enabled": False,
        }
        added = requests.post(url + "/wasm", json={"modules": [module]}, headers=admin, timeout=30)
        added.raise_for_status()
        module_id = added.json()["modules"][0]["add_result"]["Success"]

        def ready() -> bool:
            return get_json(url + "/wasm", admin)["modules"][0]["nodes"]["n1"]["state"] == "ready"  # type: ignore[no-any-return]

        wait_until(ready, "the module did not become ready", 60.0)
        timed(200)  # warm-up
        took: dict[bool, list[float]] = {False: [], True: []}
        for i in range(args.rounds * 2):
            enabled = bool(i % 2)
            patch = requests.patch(
                f"{url}/wasm/{module_id}", json={"enabled": enabled}, headers=admin, timeout=10
            )
            patch.raise_for_status()
            took[enabled] += timed(args.requests // args.rounds)
    result = {"no module": summary(took[False]), "empty module": summary(took[True])}
    added = result["empty module"]["p50_us"] - result["no module"]["p50_us"]
    result["added"] = {"p50_us": round(added, 1)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
