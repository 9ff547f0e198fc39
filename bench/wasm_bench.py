"""The latency an empty OnRequest middleware adds, per call (node/wasm/runtime.py).

Figures, each p50/p99 in microseconds over `--calls` calls after a warm-up:
- handoff: an empty function through the runtime's worker pool, the cost of not
  blocking the event loop alone;
- call: `ModuleRunner.on_request` of an empty component (tests/wasm_components.py,
  component text), awaited: handoff + lowering the request + the wasm run + lifting
  the action;
- in-thread: the same call without the handoff;
- request x3: what a request pays on the inference path for a chain of three such
  modules (`run_chain` in one handoff, the request lowered once), divided by three:
  the cost per module of a request;
- body 256K: one call with a 256 KiB body.
bench/wasm_node_bench.py measures the same module through a real node.
`--python-guest` adds the same for an empty guest built by componentize-py (cached
under `--cache-dir`; the first build and compile take about a minute), whose run
includes a Python interpreter's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' components


from bench.common import percentile  # noqa: E402
from node.wasm.breaker import ModuleBreaker  # noqa: E402
from node.wasm.chain import Edited, request_of, run_chain  # noqa: E402
from node.wasm.convert import lowered_request  # noqa: E402
from node.wasm.registry import Loaded  # noqa: E402
from node.wasm.runtime import (  # noqa: E402
    Limits,
    ModuleRunner,
    WasmRequest,
    artifact_key,
    compile_component,
    deserialize,
    digest_of,
    in_thread,
    serialize,
)
from tests.wasm_components import PYTHON_EMPTY_GUEST, build_python_guest, module_bytes  # noqa: E402

REQUEST = WasmRequest(
    "POST",
    "/v1/chat/completions",
    "",
    [
        ("content-type", "application/json"),
        ("authorization", "Bearer x"),
        ("user-agent", "bench"),
        ("x-request-id", "r-1"),
    ],
    b'{"model":"m","messages":[{"role":"user","content":"hello world"}]}',
    "r-1",
    1_700_000_000_000,
)


async def timed(call: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    for _ in range(min(200, calls)):
        await call()
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1e6)
    return took


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_us": round(percentile(values, 50), 1), "p99_us": round(percentile(values, 99), 1)}


def cached_compile(data: bytes, cache_dir: Path):  # type: ignore[no-untyped-def]
    """Compile once per wasmtime version: the artifact cache the registry keeps, in small."""
    artifact = cache_dir / artifact_key(digest_of(data))
    if artifact.exists():
        return deserialize(artifact.read_bytes())
    compiled = compile_component(data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(serialize(compiled))
    return compiled


async def measure(runner: ModuleRunner, calls: int) -> dict[str, dict[str, float]]:
    async def in_thread_call() -> object:
        arg = lowered_request(REQUEST)
        try:
            return runner.call("OnRequest", arg)
        finally:
            arg.close()

    chain = [
        Loaded({"name": f"m{i}", "on_error": "fail"}, runner, ModuleBreaker(5, 30.0))
        for i in range(3)
    ]

    def request_chain() -> object:
        edited = Edited(list(REQUEST.headers), REQUEST.body)
        lower = lambda now: lowered_request(request_of(now, REQUEST))  # noqa: E731
        return run_chain(chain, "OnRequest", edited, lower, lambda *_: None, 1 << 20)

    big = WasmRequest("POST", REQUEST.path, "", REQUEST.headers, b"x" * 256 * 1024, "r-2", 0)
    per_request = await timed(lambda: in_thread(request_chain), calls)
    return {
        "call": summary(await timed(lambda: runner.on_request(REQUEST), calls)),
        "in-thread": summary(await timed(in_thread_call, calls)),
        "handoff": summary(await timed(lambda: in_thread(lambda: None), calls)),
        "request x3": summary([t / 3 for t in per_request]),
        "body 256K": summary(await timed(lambda: runner.on_request(big), max(20, calls // 20))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--python-guest", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/meshgate-wasm")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = {
        "empty (component text)": asyncio.run(
            measure(ModuleRunner(compile_component(module_bytes("empty")), "empty"), args.calls)
        )
    }
    if args.python_guest:
        data = build_python_guest(PYTHON_EMPTY_GUEST, args.cache_dir)
        # A deadline counts wall time: on a loaded host an interpreter's call can pass 50 ms.
        runner = ModuleRunner(
            cached_compile(data, args.cache_dir), "python-empty", Limits(timeout_ms=1000)
        )
        result["empty (componentize-py)"] = asyncio.run(measure(runner, args.calls))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'module':<26} {'figure':<10} {'p50 us':>9} {'p99 us':>9}")
    for module, figures in result.items():
        for figure, values in figures.items():
            print(f"{module:<26} {figure:<10} {values['p50_us']:>9} {values['p99_us']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
