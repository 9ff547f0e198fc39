"""`meshgate cluster`: the operator's view of and levers on a running mesh.

    meshgate cluster status          --url URL [--format pretty|json]
    meshgate cluster drain NODE      --url URL [--undo]
    meshgate cluster shutdown TARGET --url URL [--grace SECS]
    meshgate cluster rolling-restart --url URL [--node-timeout SECS] [--settle-secs SECS]
    meshgate cluster add-member HOST:PORT --url URL
    meshgate cluster remove-member NODE [--force] --url URL

The admin token comes from MESHGATE_ADMIN_TOKEN. A rolling restart asks each
node in turn to drain and exit (through a committed shutdown plan), relies on
the supervisor (systemd, Kubernetes) to start it again, and moves on only when
the node is back with a new boot id, ready and caught up, has stayed so for
`--settle-secs` (the load balancer's health checks must put it back in
rotation before the next node leaves it), and every peer sees it so; followers
go first, the leader last, and it refuses to begin unless every voter is
healthy, since taking one down must still leave a majority.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from email.message import Message
from typing import Any

from node import exit_status
from node.digits import ascii_int
from node.index_names import INDEX_HEADER, MIN_INDEX_HEADER


class ClusterError(Exception):
    pass


# There is no join flag: --mesh-peers is how a new node finds the mesh, and the add
# probes its Raft port, so the order matters.
ADD_MEMBER_STEPS = """\
Add a node to the mesh as a Raft voter, in this order:
  1. Start the new node first: --mesh-bind (and, off-host, --mesh-advertise) set to
     RAFT_ADDRESS, --mesh-peers set to the Raft addresses of the current voters, and
     the mesh's --mesh-secret.
  2. Then run add-member RAFT_ADDRESS against any voter's --url. The voter probes the
     new node's Raft port (nothing answering: refused, 409 MEMBER_NOT_ANSWERING, and
     the mesh is unchanged), commits the change, and the new node catches up."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("status", help="show the nodes, the leader and the replicated stores")
    rolling = sub.add_parser(
        "rolling-restart", help="restart every node, one at a time, leader last"
    )
    rolling.add_argument(
        "--node-timeout",
        type=positive_seconds,
        default=180.0,
        help="longest wait for one node to come back",
    )
    rolling.add_argument(
        "--settle-secs",
        type=seconds,
        default=DEFAULT_SETTLE_SECS,
        help="after a node is back and ready, wait this long before the next one: at least "
        "the load balancer's time to put it back (HAProxy: rise x inter, or downinter + "
        f"(rise - 1) x fastinter; docs/operations.md) (default {DEFAULT_SETTLE_SECS:g})",
    )
    drain = sub.add_parser("drain", help="mark a node draining (not ready) or, with --undo, not")
    drain.add_argument("node")
    drain.add_argument("--undo", action="store_true")
    shutdown = sub.add_parser("shutdown", help="drain and stop a node, or the whole cluster")
    shutdown.add_argument("target", help="a node name, 'self' or 'cluster'")
    shutdown.add_argument("--grace", type=float, default=None, help="grace period (seconds)")
    add = sub.add_parser(
        "add-member",
        help="add a running node as a Raft voter (start it first, see add-member --help)",
        description=ADD_MEMBER_STEPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("raft_address", metavar="RAFT_ADDRESS", help="the new node's Raft HOST:PORT")
    remove = sub.add_parser("remove-member", help="remove a node from the Raft group")
    remove.add_argument("node")
    remove.add_argument(
        "--force",
        action="store_true",
        help="the node is gone for good: remove it although it does not answer",
    )
    for child in sub.choices.values():
        child.add_argument(
            "--url",
            default=os.environ.get("MESHGATE_URL", "http://127.0.0.1:30000"),
            help="any node's HTTP URL (env MESHGATE_URL)",
        )
        child.add_argument("--format", choices=("pretty", "json"), default="pretty")


CLUSTER_SHUTDOWN_NOTE = (
    f"every node exits {exit_status.CLUSTER_SHUTDOWN} once drained, which the shipped systemd "
    "unit does not restart; Kubernetes restarts it anyway: scale the StatefulSet to zero "
    "there (docs/operations.md)"
)
DEFAULT_SETTLE_SECS = 3.0  # covers the shipped HAProxy config: downinter 2s + fastinter 0.5s


def seconds(text: str) -> float:
    """A non-negative, finite number of seconds (argparse answers anything else with a
    usage error naming the flag, before any request is sent)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative number of seconds, such as 3 or 0.5, not {text!r}"
        )
    return value


def positive_seconds(text: str) -> float:
    """As `seconds`, and more than zero: a timeout of 0 would stop a node, then give up."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected more than 0 seconds, not 0")
    return value


def run(args: argparse.Namespace) -> int:
    client = Client(args.url, os.environ.get("MESHGATE_ADMIN_TOKEN"))
    try:
        if args.action == "status":
            show_status(client.get("/ha/status"), args.format)
        elif args.action == "drain":
            out(client.post("/ha/drain", {"target": args.node, "draining": not args.undo}), args)
        elif args.action == "shutdown":
            body: dict[str, Any] = {"target": args.target}
            if args.grace is not None:
                body["grace_period_secs"] = args.grace
            out(client.post("/ha/shutdown", body), args)
            if args.target == "cluster":
                print(CLUSTER_SHUTDOWN_NOTE, file=sys.stderr)
        elif args.action == "add-member":
            out(client.post("/ha/members", {"raft_address": args.raft_address}), args)
        elif args.action == "remove-member":
            force = "?force=true" if args.force else ""
            out(client.request("DELETE", f"/ha/members/{args.node}{force}"), args)
        elif args.action == "rolling-restart":
            rolling_restart(client, args.node_timeout, args.settle_secs, log=print)
    except ClusterError as exc:
        print(f"meshgate cluster {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0


def out(data: Any, args: argparse.Namespace) -> None:
    print(json.dumps(data, indent=2 if args.format == "pretty" else None))


class Client:
    """A tiny JSON client that tries the given node first, then any other node it knows."""

    def __init__(self, url: str, token: str | None) -> None:
        self.urls = [url.rstrip("/")]
        self.token = token
        # The highest X-Meshgate-Index seen in this run, sent back as X-Meshgate-Min-Index:
        # whichever node the next call reaches has applied what the last one answered.
        self.index = 0

    def learn(self, status: dict[str, Any]) -> None:
        for node in status.get("nodes", []):
            url = node.get("http_url")
            if url and url not in self.urls:
                self.urls.append(url)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, avoid: str | None = None
    ) -> Any:
        errors = []
        for base in [u for u in self.urls if u != avoid] or self.urls:
            try:
                return self.call(base, method, path, body)
            except ClusterError as exc:
                if "HTTP 4" in str(exc):
                    raise
                errors.append(str(exc))
        raise ClusterError("; ".join(errors))

    def call(
        self,
        base: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if self.index:
            request.add_header(MIN_INDEX_HEADER, str(self.index))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                self._note_index(resp.headers)
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            self._note_index(exc.headers)
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise ClusterError(f"{base}{path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterError(f"{base}{path}: {exc}") from None

    def _note_index(self, headers: Message) -> None:
        index = ascii_int(headers.get(INDEX_HEADER, ""))
        if index is not None:
            self.index = max(self.index, index)


def show_status(status: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(status))
        return
    leader = (status.get("leader") or {}).get("name") or "none"
    print(
        f"leader: {leader}   term: {status['term']}   commit: {status['commit_index']}   "
        f"quorum: {'yes' if status['has_quorum'] else 'NO'}"
    )
    print(
        f"{'NODE':<16}{'ROLE':<12}{'STATUS':<13}{'READY':<7}{'CAUGHT UP':<11}{'APPLIED':<9}"
        f"{'VERSION':<9}URL"
    )
    for node in status["nodes"]:
        print(
            f"{node.get('name') or '?':<16}{node.get('role') or '?':<12}"
            f"{node.get('status') or '?':<13}{node.get('ready')!s:<7}"
            f"{node.get('caught_up')!s:<11}"
            f"{node.get('applied_index')!s:<9}{node.get('version') or '?':<9}"
            f"{node.get('http_url') or node.get('raft_address')}"
        )
    print("stores: " + ", ".join(f"{k}={v}" for k, v in status["stores"].items()))


def _serving(node: dict[str, Any]) -> bool:
    return node.get("status") == "alive" and bool(node.get("ready"))


def _healthy(node: dict[str, Any]) -> bool:
    # `ready` is the data plane only (a node keeps it without a leader): a voter counts
    # towards the majority a restart must leave only when it is also caught up.
    return _serving(node) and bool(node.get("caught_up"))


def restart_order(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Read-only members first, then followers by name, the leader last."""
    leader = (status.get("leader") or {}).get("name")
    nodes = [n for n in status["nodes"] if n.get("name")]
    return sorted(nodes, key=lambda n: (n.get("voter", True), n["name"] == leader, n["name"]))


def check_can_restart(status: dict[str, Any]) -> None:
    voters = [n for n in status["nodes"] if n.get("voter", True)]
    healthy = [n for n in voters if _healthy(n)]
    majority = len(voters) // 2 + 1
    if not status.get("leader") or not status.get("has_quorum"):
        raise ClusterError("the group has no leader or no quorum; fix that first")
    if len(healthy) - 1 < majority:
        sick = ", ".join(f"{n.get('name')} ({n.get('status')})" for n in voters if not _healthy(n))
        raise ClusterError(
            f"refusing to start: {len(healthy)} of {len(voters)} voters are healthy, and taking "
            f"one down must leave a majority of {majority}"
            + (f"; not healthy: {sick}" if sick else "")
        )


def rolling_restart(
    client: Client,
    node_timeout: float,
    settle_secs: float = DEFAULT_SETTLE_SECS,
    log: Any = print,
) -> list[str]:
    status = client.get("/ha/status")
    client.learn(status)
    check_can_restart(status)
    done = []
    for node in restart_order(status):
        name, url = node["name"], node.get("http_url")
        peers = [n["http_url"] for n in status["nodes"] if n.get("http_url") not in (None, url)]
        log(f"restarting {name} ...")
        started = time.monotonic()
        client.request("POST", "/ha/shutdown", {"target": name}, avoid=url)
        _wait_settled(client, node, peers, settle_secs, deadline=started + node_timeout)
        log(f"{name} is back, ready, caught up and settled ({time.monotonic() - started:.1f}s)")
        done.append(name)
    _wait_healthy(client, node_timeout)
    log(f"rolling restart done: {', '.join(done)}")
    return done


def _wait_healthy(client: Client, timeout: float) -> None:
    """After the last node: every voter healthy again, as seen from the first URL."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check_can_restart(client.get("/ha/status"))
            return
        except ClusterError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_settled(
    client: Client, node: dict[str, Any], peers: list[str], settle: float, deadline: float
) -> None:
    """Back (a new boot id), ready and caught up; then, `settle` seconds later, still so in
    the eyes of every peer. The settle covers the load balancer: it puts a node back in
    rotation only after `rise` passing checks, and the next node leaves it at once."""
    name = node["name"]
    boot = _wait_back(client, name, node["boot_id"], node.get("http_url"), deadline)
    while True:
        time.sleep(settle)
        doubt = next(filter(None, (_doubt(client, peer, name, boot) for peer in peers)), None)
        if doubt is None:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{doubt}; stopping the rolling restart here")
        time.sleep(0.2)  # then a whole settle time again: the node must stay healthy


def _doubt(client: Client, peer: str, name: str, boot: str) -> str | None:
    """Why `peer` does not (yet) see this run of `name` healthy, or None if it does."""
    try:
        status = client.call(peer, "GET", "/ha/status")
    except ClusterError as exc:
        return str(exc)
    seen: dict[str, Any] = next((n for n in status["nodes"] if n.get("name") == name), {})
    if seen.get("boot_id") != boot or not _healthy(seen):
        return (
            f"{peer} does not see {name} healthy yet (status={seen.get('status')}, "
            f"ready={seen.get('ready')}, caught_up={seen.get('caught_up')})"
        )
    return None


def _wait_back(client: Client, name: str, old_boot: str, url: str | None, deadline: float) -> str:
    """Wait until a peer sees a new run of `name` ready and caught up; its boot id."""
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            status = client.request("GET", "/ha/status", avoid=url)
        except ClusterError as exc:
            last = str(exc)
            time.sleep(0.2)
            continue
        node = next((n for n in status["nodes"] if n.get("name") == name), None)
        if node and node.get("boot_id") != old_boot and _serving(node):
            # The node's own view: applied within two entries of the commit index it knows.
            # (Comparing its polled applied index with our live commit index never
            # converges under a steady stream of writes.)
            if node.get("caught_up"):
                return str(node["boot_id"])
            last = f"{name} is ready but not caught up yet"
        else:
            last = f"{name}: {node and node.get('status')}, ready={node and node.get('ready')}"
        time.sleep(0.2)
    raise ClusterError(
        f"{name} did not come back ready and caught up in time ({last}); "
        "stopping the rolling restart here"
    )
