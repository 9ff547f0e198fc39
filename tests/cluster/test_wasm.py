"""WASM middleware on a real 3-node mesh (issue 14), with real components.

A module registered once, through n1, by `file_path` runs on all three nodes; order,
disable and delete take effect on every node; modules that loop, allocate without bound
or trap are contained (a 500 naming the module, or fail-open with on_error "continue",
and a breaker that turns a failing module off); OnResponse maps a worker's 500 to 503;
every bad registration gets its 400 and nothing enters the log; a batch is committed whole
or not at all, and leaves no file when refused; OnResponse also runs on the node's own
errors; a delete lets the calls in flight finish; an auth module guards /parse/* too; in a
mesh where one node lacks --enable-wasm, that node holds requests back rather than skip the
modules; and a module that sleeps in WASI neither holds requests nor a node's SIGTERM.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import wasmtime

from node.localmesh import LocalNode
from tests.cluster.conftest import MODEL, Mesh
from tests.support import strong, wait_for
from tests.wasm_components import (
    API_KEY,
    EMPTY,
    NO_EXPORTS,
    SEEN_HEADER,
    component_wat,
    module_bytes,
    sleeper,
)

ADMIN_KEY = strong("wasm-registry-admin")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CLIENT_KEY = strong("wasm-registry-client")
SIZE_LIMIT = 64 * 1024
BODY_LIMIT = 512 * 1024  # --wasm-max-body-bytes
TWO_PAGES = bytes(
    wasmtime.wat2wasm(
        component_wat(EMPTY, ("on-request",)).replace(
            '(memory (export "memory") 1)', '(memory (export "memory") 2)'
        )
    )
)
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("wasm")
    extra = (
        "--control-plane-api-keys",
        f"a:ops:admin:{ADMIN_KEY}",
        "--api-key",
        CLIENT_KEY,
        "--enable-wasm",
        "--wasm-max-module-bytes",
        str(SIZE_LIMIT),
        "--wasm-breaker-failures",
        "2",
        "--wasm-max-body-bytes",
        str(BODY_LIMIT),
    )
    mesh = Mesh(tmp, extra=extra)
    try:
        mesh.wait_ready_with(ADMIN)
        yield mesh
    finally:
        mesh.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each test component, written where n1 reads it."""
    folder = tmp_path_factory.mktemp("components")
    found = {}
    names = ("auth", "inject", "status_map", "loop", "allocate", "trap", "mark", "slow_mark")
    for name in (*names, "empty"):
        found[name] = folder / f"{name}.wasm"
        found[name].write_bytes(module_bytes(name))
    return found


def call(method: str, url: str, body: Any = None) -> requests.Response:
    return requests.request(method, url, json=body, headers=ADMIN, timeout=10)


def chat(node: LocalNode, headers: dict[str, str] | None = None, **body: Any) -> requests.Response:
    """A chat request with the client key (the gateway's own auth passes it on to the modules)."""
    sent = {"Authorization": f"Bearer {CLIENT_KEY}", **(headers or {})}
    return requests.post(
        node.url + "/v1/chat/completions", json={**CHAT, **body}, headers=sent, timeout=10
    )


def spec(
    name: str,
    path: Path,
    points: tuple[str, ...] = ("OnRequest",),
    upload: bool = False,
    **more: Any,
) -> dict[str, Any]:
    """One module of a POST /wasm body: by file_path (or uploaded)."""
    given = {"file_path": str(path)}
    if upload:  # the upload form: the component in the body
        given = {"wasm_base64": base64.b64encode(path.read_bytes()).decode()}
    return {
        "name": name,
        **given,
        "module_type": "Middleware",
        "attach_points": [{"Middleware": p} for p in points],
        **more,
    }


def register(
    mesh: Mesh,
    name: str,
    path: Path,
    points: tuple[str, ...] = ("OnRequest",),
    upload: bool = False,
    **more: Any,
) -> str:
    """Register a module through n1 by file_path (or uploaded); its id, once ready on every
    node."""
    module = spec(name, path, points, upload, **more)
    resp = call("POST", mesh.nodes[0].url + "/wasm", {"modules": [module]})
    assert resp.status_code == 200, resp.text
    added = resp.json()["modules"][0]
    assert added["name"] == name
    module_id: str = added["add_result"]["Success"]

    def ready() -> bool:
        listed = call("GET", mesh.nodes[0].url + "/wasm").json()["modules"]
        views = next(m for m in listed if m["id"] == module_id)["nodes"]
        return [v["state"] for v in views.values()] == ["ready"] * 3

    wait_for(ready, timeout=20, what=f"{name} ready on every node")
    return module_id


def remove(mesh: Mesh, module_id: str) -> None:
    resp = call("DELETE", f"{mesh.nodes[1].url}/wasm/{module_id}")
    assert resp.status_code == 200, resp.text


def everywhere(mesh: Mesh, check: Any, what: str) -> None:
    """`check(node)` holds on every node (each applies the change on its own)."""
    for node in mesh.nodes:
        wait_for(lambda n=node: check(n), timeout=10, what=f"{what} on {node.name}")


def test_a_module_registered_once_by_file_path_runs_on_every_node(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    module_id = register(mesh, "auth", files["auth"])
    for node in mesh.nodes:
        refused = chat(node)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "WASM_REJECTED"
        assert "'auth'" in refused.json()["error"]["message"]
        assert chat(node, {"x-api-key": API_KEY}).status_code == 200
    listed = call("GET", mesh.nodes[0].url + "/wasm").json()  # register waited on its view
    (module,) = listed["modules"]
    assert module["attach_points"] == [{"Middleware": "OnRequest"}]
    assert module["sha256"] == hashlib.sha256(files["auth"].read_bytes()).hexdigest()
    assert module["status"] == "ready" and module["on_error"] == "fail"
    remove(mesh, module_id)
    everywhere(mesh, lambda n: chat(n).status_code == 200, "auth removed")


def test_headers_reach_the_worker_and_disable_takes_effect_everywhere(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    module_id = register(mesh, "inject", files["inject"])
    worker = mesh.workers[0].url

    def seen() -> list[str]:
        return requests.get(worker + "/_stats", timeout=5).json()["last_x_headers"]  # type: ignore[no-any-return]

    for node in mesh.nodes:
        resp = chat(node, {"x-drop": "gone", "x-kept": "1"})
        # The module also replaced the body with the request's path: the worker says so.
        assert resp.status_code == 400, resp.text
        assert "x-injected" in seen() and "x-added" in seen() and "x-drop" not in seen()
    resp = call("PATCH", f"{mesh.nodes[2].url}/wasm/{module_id}", {"enabled": False})
    assert resp.status_code == 200 and resp.json()["enabled"] is False
    everywhere(mesh, lambda n: chat(n).status_code == 200, "inject disabled")
    assert "x-injected" not in seen()
    remove(mesh, module_id)


def test_order_decides_which_module_answers_on_every_node(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    trap = register(mesh, "trap-first", files["trap"], order=1)
    auth = register(mesh, "auth-second", files["auth"], order=2)
    failed = chat(mesh.nodes[1])
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "WASM_MODULE_FAILED"
    assert "'trap-first'" in failed.json()["error"]["message"]
    resp = call("PATCH", f"{mesh.nodes[0].url}/wasm/{trap}", {"order": 3})
    assert resp.status_code == 200, resp.text
    everywhere(mesh, lambda n: chat(n).status_code == 401, "auth first")
    for module_id in (trap, auth):
        remove(mesh, module_id)


def test_failing_modules_are_contained_and_fail_open_when_asked(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    node = mesh.nodes[0]
    for name in ("loop", "allocate", "trap"):
        module_id = register(mesh, f"bad-{name}", files[name], limits={"timeout_ms": 20})
        started = time.monotonic()
        resp = chat(node)
        assert resp.status_code == 500, resp.text
        assert f"'bad-{name}'" in resp.json()["error"]["message"]
        assert time.monotonic() - started < 5
        assert requests.get(node.url + "/health", timeout=2).status_code == 200
        # Fail open: the same module, on_error "continue", lets requests through.
        patched = call(
            "PATCH",
            f"{node.url}/wasm/{module_id}",
            {"on_error": "continue", "limits": {"timeout_ms": 10}},
        )
        assert patched.status_code == 200 and patched.json()["limits"]["timeout_ms"] == 10
        wait_for(lambda: chat(node).status_code == 200, timeout=10, what="fail open")
        remove(mesh, module_id)


def test_a_module_that_keeps_failing_is_turned_off_until_re_enabled(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    node = mesh.nodes[2]
    module_id = register(mesh, "flaky", files["trap"])
    assert [chat(node).status_code for _ in range(2)] == [500, 500]
    off = chat(node)
    assert off.status_code == 503 and off.json()["error"]["code"] == "WASM_MODULE_UNAVAILABLE"
    view = call("GET", node.url + "/wasm").json()["modules"][0]["nodes"][node.name]
    assert view["breaker"]["state"] == "open"
    status = requests.get(node.url + "/ha/status", headers=ADMIN, timeout=5).json()
    mine = next(n for n in status["nodes"] if n["name"] == node.name)
    assert mine["wasm_breakers_open"] == [module_id]
    metrics = requests.get(node.url + "/metrics", timeout=5).text
    assert 'module="flaky",node="n3",outcome="error",point="OnRequest"' in metrics
    assert 'meshgate_wasm_breaker_open{module="flaky",node="n3"} 1.0' in metrics
    for enabled in (False, True):
        call("PATCH", f"{node.url}/wasm/{module_id}", {"enabled": enabled})
    wait_for(lambda: chat(node).status_code == 500, timeout=10, what="the breaker closed again")
    remove(mesh, module_id)


def test_a_large_body_reaches_a_module_and_one_over_the_bound_gets_413(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    """Copying a body in is not the module's time: 256 KiB pass the default 50 ms deadline.
    A body over --wasm-max-body-bytes is never handed to a module: 413, and its breaker
    stays closed."""
    module_id = register(mesh, "empty", files["empty"])
    node = mesh.nodes[1]

    def saying(size: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": "x" * size}]

    for _ in range(3):
        passed = chat(node, messages=saying(256 * 1024))
        assert passed.status_code == 200, passed.text
    for _ in range(3):  # more than --wasm-breaker-failures
        refused = chat(node, messages=saying(BODY_LIMIT))
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["code"] == "WASM_BODY_TOO_LARGE" and "'empty'" in error["message"]
        assert "--wasm-max-body-bytes" in error["message"]
    view = call("GET", node.url + "/wasm").json()["modules"][0]["nodes"][node.name]
    assert view["breaker"] == {"state": "closed", "failures_in_a_row": 0, "trips": 0}
    assert chat(node).status_code == 200
    remove(mesh, module_id)


def test_on_response_maps_a_workers_500_to_503(mesh: Mesh, files: dict[str, Path]) -> None:
    module_id = register(mesh, "map", files["status_map"], points=("OnResponse",), upload=True)
    worker = mesh.workers[0].url
    requests.post(worker + "/_faults", json={"fail_rate": 1.0}, timeout=5).raise_for_status()
    try:
        assert chat(mesh.nodes[1]).status_code == 503
    finally:
        requests.post(worker + "/_faults", json={"fail_rate": 0.0}, timeout=5).raise_for_status()
    assert chat(mesh.nodes[1]).status_code == 200
    # A stream passes the module before its first byte (status and headers only).
    streamed = requests.post(
        mesh.nodes[1].url + "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        timeout=10,
    )
    assert streamed.status_code == 200 and b"[DONE]" in streamed.content
    remove(mesh, module_id)


def test_bad_registrations_get_a_400_and_nothing_enters_the_log(
    mesh: Mesh, files: dict[str, Path], tmp_path: Path
) -> None:
    node = mesh.nodes[0]
    no_exports = tmp_path / "none.wasm"
    no_exports.write_bytes(NO_EXPORTS)
    too_big = tmp_path / "big.wasm"
    too_big.write_bytes(b"\0asm" + b"\0" * SIZE_LIMIT)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:SECRET-LINE:/root:/bin/bash\n")
    good = {"name": "m", "attach_points": [{"Middleware": "OnRequest"}]}
    one_page = {"memory_bytes": 65536}
    bad = [
        ({**good, "file_path": str(secret)}, "file_path"),
        ({**good, "file_path": "/etc/passwd"}, "file_path"),
        ({**good, "file_path": str(no_exports)}, "exports neither"),
        ({**good, "file_path": str(tmp_path / "missing.wasm")}, "no such file"),
        ({**good, "file_path": str(too_big)}, "over the limit"),
        ({**good, "file_path": str(files["auth"]), "sha256": "0" * 64}, "sha256 mismatch"),
        (
            {**good, "file_path": str(files["auth"]), "attach_points": [{"Middleware": "OnBoot"}]},
            "OnBoot",
        ),
        ({**good, "wasm_base64": "not base64!"}, "base64"),
        (
            {**good, "wasm_base64": base64.b64encode(module_bytes("status_map")).decode()},
            "does not export OnRequest",
        ),
        (  # two pages of memory at start, under a one-page limit: it could never run
            {**good, "wasm_base64": base64.b64encode(TWO_PAGES).decode(), "limits": one_page},
            "cannot start",
        ),
    ]
    for module, said in bad:
        resp = call("POST", node.url + "/wasm", {"modules": [module]})
        assert resp.status_code == 400, (module, resp.text)
        assert said in resp.text, (said, resp.text)
        assert "SECRET-LINE" not in resp.text and "root:x" not in resp.text
    for each in mesh.nodes:  # no record was committed
        assert call("GET", each.url + "/wasm").json()["total"] == 0


def until_status(send: Any, status: int, what: str) -> requests.Response:
    """The first answer of `send()` with `status` (a Response of an error is falsy)."""
    got: list[requests.Response] = []

    def check() -> bool:
        got[:] = [send()]
        return got[0].status_code == status

    wait_for(check, timeout=10, what=what)
    return got[0]


def stored(node: LocalNode) -> set[str]:
    """Every file under the node's blob store and its compiled-artifact cache."""
    found = set()
    for folder in (node.data_dir / "blobs", node.data_dir / "wasm-artifacts"):
        found |= {str(p) for p in folder.rglob("*") if p.is_file()}
    return found


def test_a_batch_is_committed_whole_or_not_at_all(mesh: Mesh, files: dict[str, Path]) -> None:
    node = mesh.nodes[0]
    before = stored(node)
    good = [spec("b-auth", files["auth"]), spec("b-map", files["status_map"], ("OnResponse",))]
    bad = spec("b-none", files["auth"], sha256="0" * 64)  # read and checked after the others
    resp = call("POST", node.url + "/wasm", {"modules": [*good, bad]})
    assert resp.status_code == 400, resp.text
    assert "'b-none'" in resp.json()["error"]["message"]
    for each in mesh.nodes:  # nothing committed, anywhere
        assert call("GET", each.url + "/wasm").json()["total"] == 0
    assert stored(node) == before  # the two components it had stored are gone again
    resp = call("POST", mesh.nodes[1].url + "/wasm", {"modules": good})
    assert resp.status_code == 200, resp.text
    ids = [m["add_result"]["Success"] for m in resp.json()["modules"]]
    listed = call("GET", mesh.nodes[1].url + "/wasm").json()["modules"]
    assert [m["id"] for m in listed] == ids  # one commit, in the request's order
    assert [m["name"] for m in listed] == ["b-auth", "b-map"]
    for module_id in ids:
        remove(mesh, module_id)


def test_on_response_runs_on_the_nodes_own_errors_too(mesh: Mesh, files: dict[str, Path]) -> None:
    module_id = register(mesh, "mark", files["mark"], points=("OnResponse",))
    node = mesh.nodes[1]
    answered = chat(node)
    assert answered.status_code == 200 and answered.headers[SEEN_HEADER] == "yes"
    unknown = chat(node, model="no-such-model")  # the node's own 404
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers[SEEN_HEADER] == "yes"
    assert unknown.json()["error"]["type"] == "not_found_error"
    rule = {"model": MODEL, "requests_per_second": 0.001, "burst": 1}
    resp = requests.post(node.url + "/ha/rate-limit", json=rule, headers=ADMIN, timeout=10)
    assert resp.status_code == 200, resp.text
    try:
        limited = until_status(lambda: chat(node), 429, "a 429")
        assert limited.headers[SEEN_HEADER] == "yes"  # with the node's own headers kept
        assert "Retry-After" in limited.headers
        assert limited.json()["error"]["type"] == "rate_limit_error"
    finally:
        gone = requests.delete(f"{node.url}/ha/rate-limit/{MODEL}", headers=ADMIN, timeout=10)
        assert gone.status_code == 200, gone.text
    remove(mesh, module_id)


def test_deleting_a_module_lets_the_calls_in_flight_finish(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    node, worker = mesh.nodes[0], mesh.workers[0].url
    # Each call spins ~0.4 s (of a 10 s deadline) before it marks the answer: long enough
    # that a delete committed on a loaded CI machine still comes while calls run.
    module_id = register(
        mesh, "slow", files["slow_mark"], points=("OnResponse",), limits={"timeout_ms": 10_000}
    )

    def served() -> int:
        stats = requests.get(worker + "/_stats", timeout=5).json()
        return sum(stats["requests"].values())  # type: ignore[no-any-return]

    seen = served()
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(chat, node) for _ in range(4)]
        # Once the worker has answered all four, their OnResponse calls run (two at a
        # time: the module's instances) for ~0.8 s: delete the module meanwhile.
        wait_for(lambda: served() >= seen + 4, timeout=10, what="the requests past the worker")
        remove(mesh, module_id)
        assert not all(c.done() for c in calls)  # the delete came while calls ran
        answers = [c.result() for c in calls]
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.headers.get(SEEN_HEADER) for a in answers] == ["yes"] * 4
    everywhere(mesh, lambda n: SEEN_HEADER not in chat(n).headers, "slow removed")


def test_an_auth_module_guards_the_routes_the_node_answers_itself(
    mesh: Mesh, files: dict[str, Path]
) -> None:
    node = mesh.nodes[1]
    module_id = register(mesh, "gate", files["auth"])
    text = '{"name": "get_weather", "arguments": {"city": "SF"}}'
    body = {"text": text, "tool_call_parser": "json", "tools": []}

    def parse(headers: dict[str, str]) -> requests.Response:
        sent = {"Authorization": f"Bearer {CLIENT_KEY}", **headers}
        return requests.post(node.url + "/parse/function_call", json=body, headers=sent, timeout=10)

    refused = parse({})
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "WASM_REJECTED"
    passed = parse({"x-api-key": API_KEY})
    assert passed.status_code == 200, passed.text
    assert passed.json()["calls"][0]["name"] == "get_weather"  # the body read once, by both
    remove(mesh, module_id)


class MixedMesh(Mesh):
    """A mesh whose last node was started without --enable-wasm."""

    def node_flags(self, i: int) -> list[str]:
        flags = super().node_flags(i)
        return [f for f in flags if f != "--enable-wasm"] if i == len(self.names) - 1 else flags


def test_a_node_without_the_flag_holds_requests_back_while_modules_may_not_be_skipped(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    extra = ("--control-plane-api-keys", f"a:ops:admin:{ADMIN_KEY}", "--api-key", CLIENT_KEY)
    mixed = MixedMesh(tmp_path, size=2, extra=(*extra, "--enable-wasm"))
    try:
        mixed.wait_ready_with(ADMIN)
        with_flag, without = mixed.nodes
        assert call("GET", without.url + "/wasm").status_code == 404  # as before
        resp = call("POST", with_flag.url + "/wasm", {"modules": [spec("auth", files["auth"])]})
        assert resp.status_code == 200, resp.text
        module_id = resp.json()["modules"][0]["add_result"]["Success"]
        refused = until_status(
            lambda: chat(without, {"x-api-key": API_KEY}), 503, "the node without the flag refusing"
        )
        error = refused.json()["error"]
        assert error["code"] == "WASM_NOT_ENABLED" and "--enable-wasm" in error["message"]
        assert "'auth'" in error["message"]
        parse = requests.post(
            without.url + "/parse/reasoning",
            json={"text": "hi", "reasoning_parser": "deepseek_r1"},
            headers={"Authorization": f"Bearer {CLIENT_KEY}", "x-api-key": API_KEY},
            timeout=10,
        )
        assert parse.status_code == 503 and parse.json()["error"]["code"] == "WASM_NOT_ENABLED"
        ready = requests.get(without.url + "/readiness", timeout=5)
        assert ready.status_code == 503 and "--enable-wasm" in str(ready.json()["reasons"])

        def view() -> dict[str, Any]:
            listed = call("GET", with_flag.url + "/wasm").json()["modules"][0]
            return listed["nodes"][without.name]  # type: ignore[no-any-return]

        wait_for(lambda: view()["state"] == "off", timeout=10, what="its view in GET /wasm")
        assert "--enable-wasm" in view()["reason"]
        wait_for(lambda: chat(with_flag).status_code == 401, timeout=20, what="auth on n1")
        # Fail open: a module that may be skipped does not hold the node back.
        patched = call("PATCH", f"{with_flag.url}/wasm/{module_id}", {"on_error": "continue"})
        assert patched.status_code == 200, patched.text
        wait_for(lambda: chat(without).status_code == 200, timeout=10, what="served again")
        assert requests.get(without.url + "/readiness", timeout=5).status_code == 200
    finally:
        mixed.stop()


@pytest.mark.timeout(120)
def test_a_module_sleeping_in_wasi_holds_neither_requests_nor_a_sigterm(tmp_path: Path) -> None:
    extra = ("--control-plane-api-keys", f"a:ops:admin:{ADMIN_KEY}", "--api-key", CLIENT_KEY)
    single = Mesh(tmp_path, size=1, extra=(*extra, "--enable-wasm"))
    try:
        single.wait_ready_with(ADMIN)
        (node,) = single.nodes
        path = tmp_path / "sleeper.wasm"
        path.write_bytes(sleeper(600 * 10**9))  # ten minutes in monotonic-clock + block
        body = {"modules": [spec("sleeper", path, limits={"timeout_ms": 50})]}
        resp = call("POST", node.url + "/wasm", body)
        assert resp.status_code == 200, resp.text
        wait_for(lambda: chat(node).status_code == 500, timeout=20, what="the sleeper running")
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: chat(node), range(4)))
        assert [a.status_code for a in answers] == [500] * 4
        assert all("ran past its time limit" in a.json()["error"]["message"] for a in answers)
        assert node.proc.stop(timeout=20) == 0  # SIGTERM, not the SIGKILL after 20 s
    finally:
        single.stop()
