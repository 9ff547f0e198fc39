"""`meshgate serve --processes 3`: one control process and three data-plane processes
sharing the node's port (SO_REUSEPORT), in a 3-node mesh where n1 runs them.

Each request opens a new connection, so the kernel spreads them over the processes;
every answer of a data-plane process names it in `X-Meshgate-Process`. One mesh serves
the module; the test that kills n1's control process runs last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from mesh.events import AppliedStream
from node.ha.peers import MESH_TOKEN_HEADER, mesh_token
from node.plane.data_side import SILENT_AFTER, PlaneLinkError, PlaneReplica
from node.plane.fork_server import SERVER_NAME
from node.plane.handover import BEHIND_HEADER
from node.plane.paths import plane_socket
from node.plane.socket_file import PlaneSocketError, claim
from tests.cluster.conftest import MODEL, Mesh
from tests.support import MESH_SECRET, wait_for

PROCESSES = 3
PROCESS_HEADER = "X-Meshgate-Process"
INDEX = "X-Meshgate-Index"


ADMITTED = 3  # n1's --max-concurrent-requests, with no queue: one slot per process
N1_FLAGS = ["--processes", str(PROCESSES), "--max-concurrent-requests", str(ADMITTED)]
N1_FLAGS += ["--queue-size", "0"]
MESH_COMMIT_TIMEOUT = 3.0  # --mesh-commit-timeout-secs's default
TOKEN_DELAY_MS = 100  # a streamed answer of N tokens takes N x 0.1 s


class ProcessesMesh(Mesh):
    """The cluster tests' mesh, with n1 alone running `--processes 3`, and a worker
    that streams slowly."""

    def node_flags(self, i: int) -> list[str]:
        return super().node_flags(i) + (N1_FLAGS if i == 0 else [])

    def start_workers(self, timeout: float = 30.0) -> None:
        self.worker_args = ["--token-delay-ms", str(TOKEN_DELAY_MS)]
        super().start_workers(timeout)


def fresh(method: str, url: str, **kwargs: object) -> requests.Response:
    """One request on a new connection (a new source port: SO_REUSEPORT picks anew)."""
    with requests.Session() as session:
        return session.request(method, url, timeout=10, **kwargs)  # type: ignore[arg-type]


def every_child_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def is_fork_server(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == SERVER_NAME.decode()
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """The data-plane processes of the control process `pid` (its children but the fork
    server, whose children they were before they were handed to it)."""
    return [child for child in every_child_of(pid) if not is_fork_server(child)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessesMesh]:
    m = ProcessesMesh(tmp_path_factory.mktemp("procs"))
    try:
        m.wait_ready(timeout=60)
        n1 = m.nodes[0]
        wait_for(
            lambda: f"with {PROCESSES} data-plane processes" in n1.proc.log(),
            timeout=60,
            what="n1's control process to report every data-plane process listening",
        )
        yield m
    finally:
        m.stop()


def every_process_ready(url: str) -> list[dict[str, object]] | None:
    """The data-plane processes as /ha/local lists them, once every one is ready."""
    shown: list[dict[str, object]] = fresh("GET", url + "/ha/local").json()["processes"]
    return shown if all(p["ready"] for p in shown) else None


def model_everywhere(url: str, model: str, headers: dict[str, str] | None = None) -> set[str]:
    """The processes of the node at `url` that answered, each on a new connection, until
    every one has (one answer for a node of one process); the first answer that does not
    list `model` fails the test: no retries, the write must be seen at once."""
    seen: set[str] = set()
    wanted = PROCESSES if headers is None else 1
    for _ in range(60):
        answer = fresh("GET", url + "/v1/models", headers=headers or {})
        assert answer.status_code == 200, answer.text
        listed = [m["id"] for m in answer.json()["data"]]
        assert model in listed, (answer.headers.get(PROCESS_HEADER), listed)
        seen.add(answer.headers.get(PROCESS_HEADER, "single"))
        if len(seen) == wanted:
            return seen
    raise AssertionError(f"only {sorted(seen)} of the processes at {url} answered")


def test_a_write_through_any_process_is_read_at_once_through_every_process_and_node(
    mesh: ProcessesMesh,
) -> None:
    n1 = mesh.nodes[0]
    worker_id = fresh("GET", n1.url + "/workers").json()["workers"][0]["id"]
    writers: set[str] = set()
    renamed = MODEL
    for i in range(12):  # until each process has taken a write (new connections spread them)
        renamed = f"renamed-{i}"
        answer = fresh("PATCH", f"{n1.url}/workers/{worker_id}", json={"model_id": renamed})
        assert answer.status_code == 200, answer.text
        writers.add(answer.headers[PROCESS_HEADER])
        # At once, through every process of n1: each one's own replica serves /v1/models.
        assert model_everywhere(n1.url, renamed) == {f"p{k + 1}" for k in range(PROCESSES)}
        index = {"X-Meshgate-Min-Index": answer.headers[INDEX]}
        for other in mesh.nodes[1:]:  # and through the other nodes, with the write's index
            model_everywhere(other.url, renamed, index)
        if len(writers) == PROCESSES:
            break
    assert len(writers) >= 2, writers  # several processes took writes
    back = fresh("PATCH", f"{n1.url}/workers/{worker_id}", json={"model_id": MODEL})
    assert back.status_code == 200, back.text
    # A read of control state handed to the control process comes back through any process.
    shown = fresh("GET", f"{n1.url}/workers/{worker_id}").json()
    assert shown["model_id"] == MODEL


def _series(text: str, node: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each sample of `node` in an exposition, by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("node") == node
    }


def _traffic(url: str, query: str = "?minutes=2") -> int:
    """n1's requests for MODEL in /ha/traffic at `url`, once every process answered."""
    n1 = fresh("GET", url + "/ha/traffic" + query).json()["nodes"]["n1"]
    assert n1["processes"] == PROCESSES and n1["missing_processes"] == []
    return sum(n1["models"].get(MODEL, {"requests": [0]})["requests"])


def test_every_process_audits_what_it_answers_and_a_handed_write_once(
    mesh: ProcessesMesh,
) -> None:
    """A data-plane process audits the writes it answers itself (predict calls, writes to
    no route) to files of its own; a write it hands over is audited by the control process alone."""
    n1 = mesh.nodes[0]
    answered: set[str] = set()
    marks = [f"audit-{i}" for i in range(4 * PROCESSES)]
    for i, mark in enumerate(marks):  # new connections: several processes answer them
        path = "/no/such/route" if i % 2 else "/api/models/nobody/predict"  # served here
        answer = fresh("POST", n1.url + path, headers={"X-Request-Id": mark}, json={})
        assert 400 <= answer.status_code < 500, answer.text
        answered.add(answer.headers[PROCESS_HEADER])
    assert len(answered) >= 2, answered
    worker_id = fresh("GET", n1.url + "/workers").json()["workers"][0]["id"]
    handed = fresh(
        "PATCH",
        f"{n1.url}/workers/{worker_id}",
        json={"priority": 7},
        headers={"X-Request-Id": "audit-handed"},
    )
    assert handed.status_code == 200, handed.text

    def ids(kind: str) -> Counter[str]:
        got = fresh("GET", f"{n1.url}/api/admin/audit?kind={kind}&limit=1000")
        assert got.status_code == 200, got.text
        return Counter(e["request_id"] for e in got.json()["entries"])

    refusals = ids("refusals")
    assert all(refusals[mark] == 1 for mark in marks), refusals
    assert ids("changes")["audit-handed"] == 1  # not once more by the process that took it
    files = {path.name for path in n1.data_dir.glob("audit-refused*.jsonl")}
    assert {f"audit-refused.{name}.jsonl" for name in answered} <= files, files
    assert not [f for f in files if (n1.data_dir / f).stat().st_mode & 0o077]  # private


def test_metrics_through_any_process_are_the_node_view(mesh: ProcessesMesh) -> None:
    n1, n2 = mesh.nodes[0], mesh.nodes[1]  # n2 runs one process
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    ok = ("meshgate_requests_total", "/v1/chat/completions", MODEL, "200")

    def answered(text: str) -> float:
        return sum(
            value
            for (name, labels), value in _series(text, "n1").items()
            if (name, *(dict(labels).get(k) for k in ("route", "model", "status"))) == ok
        )

    before = answered(fresh("GET", n1.url + "/metrics").text)
    traffic_before = _traffic(n1.url)
    served = [fresh("POST", n1.url + "/v1/chat/completions", json=chat) for _ in range(9)]
    assert {a.status_code for a in served} == {200}
    by_process = {a.headers[PROCESS_HEADER] for a in served}
    assert len(by_process) >= 2, by_process  # several processes answered them
    # /ha/traffic (the control process answers it) adds up every process's ring.
    assert _traffic(n1.url) - traffic_before == 9
    assert _traffic(n2.url, "?scope=mesh&minutes=2") - traffic_before == 9
    answer = fresh("GET", n1.url + "/metrics")
    assert answer.status_code == 200
    assert "process=" not in answer.text
    assert answered(answer.text) - before == 9  # one series, every process's requests
    # The same series (names and label names) as a node of one process.
    assert fresh("POST", n2.url + "/v1/chat/completions", json=chat).status_code == 200
    single = fresh("GET", n2.url + "/metrics").text

    def shapes(text: str, node: str) -> set[tuple[str, frozenset[str]]]:
        return {(name, frozenset(k for k, _ in labels)) for name, labels in _series(text, node)}

    assert shapes(answer.text, "n1") == shapes(single, "n2")

    # Each process's own series on asking: its replica, and the requests it answered.
    per = fresh("GET", n1.url + "/metrics?by=process").text

    def processes_of(metric: str) -> set[str]:
        return {dict(labels)["process"] for name, labels in _series(per, "n1") if name == metric}

    assert processes_of("meshgate_raft_applied_index") == {"p1", "p2", "p3", "control"}
    assert by_process <= processes_of("meshgate_requests_total")
    refused = fresh("GET", n1.url + "/metrics?by=nothing")
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "by"


RATE = 1000.0  # requests a second: the test's requests are all admitted


def rate_limit_counts(url: str, node: str, query: str = "") -> dict[str, object]:
    """`node`'s counts of the MODEL rule in /ha/rate-limit/stats through `url`."""
    stats = fresh("GET", f"{url}/ha/rate-limit/stats{query}").json()
    return stats["scopes"][MODEL]["by_node"][node]  # type: ignore[no-any-return]


def test_the_rate_limit_stats_of_a_node_count_every_process(mesh: ProcessesMesh) -> None:
    n1, n2 = mesh.nodes[:2]
    rule = {"model": MODEL, "requests_per_second": RATE}
    assert fresh("POST", n1.url + "/ha/rate-limit", json=rule).status_code == 200
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    served: Counter[str] = Counter()
    try:
        while len(served) < 2 or served.total() < 4:  # until several processes served some
            answer = fresh("POST", n1.url + "/v1/chat/completions", json=chat)
            assert answer.status_code == 200, answer.text
            served[answer.headers[PROCESS_HEADER]] += 1
            assert served.total() < 40, served
        counted = rate_limit_counts(n1.url, n1.name, "?by=process")
        assert counted["admitted"] == served.total(), (counted, served)
        by_process = counted["by_process"]
        assert {p: c["admitted"] for p, c in by_process.items() if c["admitted"]} == served
        assert "by_process" not in rate_limit_counts(n1.url, n1.name)
        # n2 reads n1's from its /ha/local, which the control process refreshes each second.
        wait_for(
            lambda: rate_limit_counts(n2.url, n1.name)["admitted"] == served.total(),
            timeout=10,
            what="n2 to show n1's counts as every process's",
        )
        assert "missing_processes" not in fresh("GET", n2.url + "/ha/rate-limit/stats").json()
        refused = fresh("GET", n1.url + "/ha/rate-limit/stats?by=node")
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "by"
    finally:
        assert fresh("DELETE", f"{n1.url}/ha/rate-limit/{MODEL}").status_code == 200


def test_a_killed_data_plane_process_is_restarted_while_the_others_serve(
    mesh: ProcessesMesh,
) -> None:
    n1 = mesh.nodes[0]
    before = children_of(n1.proc.pid)
    assert len(before) == PROCESSES, before
    shown = fresh("GET", n1.url + "/ha/local").json()["processes"]  # the control's report
    assert sorted(p["pid"] for p in shown) == sorted(before)
    assert all(p["ready"] and p["starts"] == 1 for p in shown), shown
    answered: list[tuple[int, str]] = []
    failures: list[str] = []
    stop = threading.Event()
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

    def load() -> None:
        while not stop.is_set():
            try:
                answer = fresh("POST", n1.url + "/v1/chat/completions", json=chat)
                answered.append((answer.status_code, answer.headers.get(PROCESS_HEADER, "")))
            except requests.ConnectionError as exc:  # queued on the killed one's listener
                failures.append(str(exc))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        wait_for(lambda: len(answered) >= 5, timeout=30, what="load to start")
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        served_before_restart = len(answered)
        wait_for(
            lambda: (
                len(children_of(n1.proc.pid)) == PROCESSES
                and victim not in children_of(n1.proc.pid)
            ),
            timeout=30,
            what="the killed data-plane process to be replaced",
        )
        assert len(answered) > served_before_restart  # the others served meanwhile
        replaced = children_of(n1.proc.pid)
        again = wait_for(
            lambda: every_process_ready(n1.url),
            timeout=30,
            what="/ha/local to show the new process ready",
        )
        assert sorted(p["starts"] for p in again) == [1, 1, 2], again
        wait_for(
            lambda: "restarting it in" in n1.proc.log() and "killed by SIGKILL" in n1.proc.log(),
            timeout=10,
            what="the control process to log why",
        )
        # The new process serves the port too: every name answers again.
        model_everywhere(n1.url, MODEL)
    finally:
        stop.set()
        loader.join(15)
    assert all(status == 200 for status, _ in answered), {s for s, _ in answered}
    assert len(failures) <= max(3, len(answered) // 10), failures
    assert all(alive(pid) for pid in replaced)


def test_the_processes_admit_no_more_than_the_node_limit_together(mesh: ProcessesMesh) -> None:
    n1 = mesh.nodes[0]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    body["max_tokens"] = 10  # about 1 s each: they all overlap
    answers: list[requests.Response] = []

    def send() -> None:
        answers.append(fresh("POST", n1.url + "/v1/chat/completions", json=body))

    senders = [threading.Thread(target=send) for _ in range(4 * ADMITTED)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    statuses = sorted(a.status_code for a in answers)
    admitted = statuses.count(200)
    # Each process takes 1 of the node's 3 slots: with a full limit each, up to 12 would pass.
    assert 1 <= admitted <= ADMITTED, statuses
    assert statuses.count(429) == len(answers) - admitted, statuses


def test_a_plane_socket_of_another_version_or_in_use_is_refused(mesh: ProcessesMesh) -> None:
    path = plane_socket(mesh.nodes[0].data_dir)
    with pytest.raises(PlaneSocketError, match="another process is serving"):
        claim(path)  # a second control process on this data dir would be refused

    async def follow_as_another_version() -> None:
        replica = PlaneReplica(path, AppliedStream(), "999", "stranger", start_timeout=5)
        await replica.start()

    with pytest.raises(PlaneLinkError, match="plane version 1, this process 999"):
        asyncio.run(follow_as_another_version())


WRITE_BOUND = 2.5  # seconds: PROBE_AFTER + ALIVE_SECS (about 1 s), with slack for the load


def test_a_hung_data_plane_process_is_restarted_and_writes_name_it_meanwhile(
    mesh: ProcessesMesh,
) -> None:
    n1 = mesh.nodes[0]
    shown = wait_for(lambda: every_process_ready(n1.url), timeout=30, what="n1 all ready")
    victim = shown[0]
    worker_id = fresh("GET", n1.url + "/workers").json()["workers"][0]["id"]
    named: list[str] = []
    took: list[float] = []

    def a_write_names_the_victim() -> bool:
        started = time.monotonic()
        try:  # a new connection may queue on the stopped process's listener: reset on its kill
            answer = fresh("PATCH", f"{n1.url}/workers/{worker_id}", json={"model_id": MODEL})
        except requests.ConnectionError:
            return False
        took.append(time.monotonic() - started)  # answered by a sibling of the stopped one
        assert answer.status_code == 200, answer.text
        named.append(answer.headers.get(BEHIND_HEADER, ""))
        return named[-1] == victim["name"]

    def stats_name_the_victim() -> bool:
        stats = fresh("GET", n1.url + "/ha/rate-limit/stats").json()
        return stats.get("missing_processes") == {n1.name: [victim["name"]]}

    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        # It misses a ping: writes through its siblings stop waiting for it, and name it.
        wait_for(a_write_names_the_victim, timeout=20, what="a write to name the hung process")
        wait_for(a_write_names_the_victim, timeout=5, what="the next write to name it too")
        assert max(took) < WRITE_BOUND, took
        wait_for(stats_name_the_victim, timeout=5, what="its counts to be named missing")
        wait_for(
            lambda: (
                victim["pid"] not in children_of(n1.proc.pid)
                and len(children_of(n1.proc.pid)) == PROCESSES
            ),
            timeout=20,
            what="the hung process to be replaced",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim["pid"], signal.SIGCONT)
    wait_for(
        lambda: f"{victim['name']} (pid {victim['pid']}) has answered no ping" in n1.proc.log(),
        timeout=10,
        what="the control process to log why it killed it",
    )
    named.clear()
    wait_for(  # the new one confirms writes again
        lambda: a_write_names_the_victim() is False and named[-1] == "",
        timeout=20,
        what="a write that every process confirmed",
    )


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def answer_head(port: int, method: str, path: str, sent: bytes, length: int) -> str:
    """The status line and headers answered to a request that announces `length` bytes
    of body and sends only `sent`: an answer proves nobody waited for the rest."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        conn.sendall(head.encode() + sent)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = conn.recv(65536)
            assert chunk, got
            got += chunk
    return got.split(b"\r\n\r\n")[0].decode()


BIG = 60 * 1024 * 1024


def test_big_bodies_to_no_route_or_a_control_route_are_refused_unbuffered(
    mesh: ProcessesMesh,
) -> None:
    n1 = mesh.nodes[0]
    pids = [n1.proc.pid, *children_of(n1.proc.pid)]
    before = {pid: peak_rss(pid) for pid in pids}
    # Answered by a data-plane process, before the 60 MiB announced have come.
    missing = answer_head(n1.port, "POST", "/nope", b"{}", BIG)
    assert missing.startswith("HTTP/1.1 404"), missing
    assert PROCESS_HEADER.lower() in missing.lower(), missing
    assert fresh("GET", n1.url + "/nope").json()["error"]["message"]  # in the JSON shape
    wrong_method = answer_head(n1.port, "DELETE", "/workers", b"", BIG)
    assert wrong_method.startswith("HTTP/1.1 405"), wrong_method
    too_big = answer_head(n1.port, "POST", "/workers", b"{}", BIG)
    assert too_big.startswith("HTTP/1.1 413"), too_big

    def chunks() -> Iterator[bytes]:  # no length to refuse early from
        for _ in range(BIG // (1024 * 1024)):
            yield b" " * (1024 * 1024)

    for _ in range(PROCESSES):  # new connections: several processes take one
        try:
            answer = requests.post(n1.url + "/workers", data=chunks(), timeout=30)
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"]["limit"] == 1024 * 1024
        except requests.ConnectionError:  # refused while it still sent: nothing was kept
            pass
    grew = {pid: peak_rss(pid) - before[pid] for pid in pids}
    assert all(growth < BIG // 4 for growth in grew.values()), grew


def test_a_frozen_control_process_makes_the_node_unready_and_bounds_handed_over_writes(
    mesh: ProcessesMesh,
) -> None:
    """SIGSTOP of n1's control process: its socket stays open, its stream goes silent."""
    n1 = mesh.nodes[0]
    worker_id = fresh("GET", n1.url + "/workers").json()["workers"][0]["id"]
    patch = f"{n1.url}/workers/{worker_id}"
    bound = SILENT_AFTER + 5.0  # seen down by its silent link, well before answer_bound
    os.kill(n1.proc.pid, signal.SIGSTOP)
    try:
        with requests.Session() as session:  # sent before the link is seen down
            sent = session.patch(patch, json={"model_id": MODEL}, timeout=bound)
        assert sent.status_code == 504, sent.text
        assert sent.json()["error"]["sent"] is True, sent.text
        assert "did not answer" in sent.json()["error"]["message"]
        wait_for(  # every process says so, each of its own link
            lambda: all(
                fresh("GET", n1.url + "/readiness").status_code == 503 for _ in range(PROCESSES * 4)
            ),
            timeout=10,
            what="every process of n1 to say it is not ready",
        )
        refused = fresh("PATCH", patch, json={"model_id": MODEL})
        assert refused.status_code in (503, 504), refused.text
        if refused.status_code == 503:  # the link was down already: not sent at all
            assert refused.json()["error"]["sent"] is False, refused.text
    finally:
        os.kill(n1.proc.pid, signal.SIGCONT)
    wait_for(
        lambda: all(fresh("GET", n1.url + "/readiness").ok for _ in range(PROCESSES * 4)),
        timeout=30,
        what="every process of n1 ready again",
    )
    again = fresh("PATCH", patch, json={"model_id": MODEL})
    assert again.status_code == 200, again.text


QUOTA = 18  # requests a minute, mesh-wide: a whole share for each of n1's processes


def test_a_node_of_several_processes_borrows_quota_shares_within_the_limit(
    mesh: ProcessesMesh,
) -> None:
    """A key's traffic all reaches n1: its control process borrows the idle nodes' shares
    and lends them on to its processes, so n1 admits more than its processes' own, and
    the mesh no more than the limit in the minute. Late in the module: the key it makes
    may turn authentication on."""
    n1 = mesh.nodes[0]
    tenant = fresh("POST", n1.url + "/api/admin/tenants", json={"name": "pub"})
    assert tenant.status_code in (200, 201), tenant.text
    limits = {"requestsPerMinute": QUOTA}
    made = fresh("POST", n1.url + "/api/keys", json={"namespace": "pub", "limits": limits})
    assert made.status_code == 201, made.text
    key = {"Authorization": f"Bearer {made.json()['apiKey']}"}
    chat = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    for node in mesh.nodes:
        wait_for(
            lambda node=node: fresh("GET", node.url + "/v1/models", headers=key).ok,
            timeout=10,
            what="the key on every node",
        )

    def admitted_through(url: str, count: int) -> int:
        return sum(
            fresh("POST", url + "/v1/chat/completions", json=chat, headers=key).ok
            for _ in range(count)
        )

    nodes = len(mesh.nodes)
    own = PROCESSES * -(-QUOTA // (nodes * PROCESSES))  # n1's processes' own shares: 6
    started = time.monotonic()
    at_n1 = [0]

    def n1_borrowed() -> bool:  # new connections: every process of n1
        at_n1[0] += admitted_through(n1.url, 2)
        return at_n1[0] > own

    wait_for(n1_borrowed, timeout=20, what="n1 to borrow the idle nodes' shares")
    as_peer = {MESH_TOKEN_HEADER: mesh_token(MESH_SECRET)}  # authentication is on now
    shown = fresh("GET", n1.url + "/ha/local", headers=as_peer).json()["quota_shares"]
    assert shown["wants"] == [["key", made.json()["id"], "requests_per_minute", QUOTA]], shown
    assert shown["grants"] == {}, shown  # it lends none of the node's: its processes use them
    at_n1[0] += admitted_through(n1.url, 2 * QUOTA)
    assert time.monotonic() - started < 60, "the count below covers one minute"
    # Its processes' own shares and all but one of each idle node's: the whole limit
    # less the reserves the lenders keep, never more (the other nodes admitted none).
    assert own < at_n1[0] <= own + (nodes - 1) * (-(-QUOTA // nodes) - 1) < QUOTA, at_n1[0]


def test_the_control_process_killed_leaves_no_listener(mesh: ProcessesMesh) -> None:
    """Last in the module: n1 stays down."""
    n1 = mesh.nodes[0]
    data_plane = children_of(n1.proc.pid)
    assert len(data_plane) == PROCESSES
    forks = [pid for pid in every_child_of(n1.proc.pid) if is_fork_server(pid)]
    assert len(forks) == 1, forks  # they were forked, with the node's modules loaded
    os.kill(n1.proc.pid, signal.SIGKILL)  # the control process alone, not its group

    def port_closed() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", n1.port)) != 0

    wait_for(port_closed, timeout=10, what="n1's port to close")
    wait_for(
        lambda: not any(alive(pid) for pid in [*data_plane, *forks]),
        timeout=10,
        what="orphans (the fork server too) to exit",
    )
