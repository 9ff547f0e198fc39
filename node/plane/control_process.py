"""A node's control process (`meshgate serve --processes N`, N > 1).

It holds what there is one of per node: the Raft member and journal, health checks,
discovery, peer polling and the control loop. It does not serve the public port: it
serves the plane link (node/plane/control_side.py) and an HTTP site on a Unix socket
for the requests its data-plane processes hand over, and it supervises those
processes (node/plane/supervisor.py). It reports started once every one of them
listens and is linked. Stopping (SIGTERM, a shutdown plan) drains them all first,
then stops itself, with the exit status the stop decided.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from aiohttp import web

from node import config as config_module
from node.app import NODE, Node
from node.ha.quota_shares import peer_parts
from node.ha.secret import MeshSecretError
from node.limits.quotas import SPANS
from node.plane.control_side import PlaneServer
from node.plane.facts import plane_facts
from node.plane.forks import ForkServer, fork_spawn
from node.plane.handover import trusted_client
from node.plane.link_config import config_message
from node.plane.node_limits import ProcessLimits
from node.plane.node_shares import NodeShares
from node.plane.paths import control_socket, plane_socket
from node.plane.siblings import ALIVE, SocketClients, process_socket
from node.plane.socket_file import PlaneSocketError, claim
from node.plane.supervisor import PING_EVERY, ChildRefused, Spawn, Supervisor, exec_spawn
from node.serving import make_runner, refuse, set_up, stop_on_signals, wait_and_clean_up
from node.web import create_app

log = logging.getLogger("meshgate")

START_SECS: Final = 60.0  # for every data-plane process to listen and link
EXTRA_STOP_SECS: Final = 5.0  # past the drain delay and grace, before SIGKILL


def port_problem(host: str, port: int) -> str | None:
    """Why the node's port cannot be ours: someone listens on it already. Data-plane
    processes share it with SO_REUSEPORT, which would also share it with any other
    process of this user that asked the same, so look first, without that option."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"--port: cannot listen on {host}:{port}: {exc.strerror}"
    return None


def child_arguments(argv: Sequence[str]) -> Callable[[str, int], list[str]]:
    """A data-plane process's `meshgate` arguments: this process's own, and its place."""
    parent = str(os.getpid())

    def arguments(name: str, fd: int) -> list[str]:
        plane = ["--plane-role", "data", "--plane-link", str(fd), "--plane-parent", parent]
        return [*argv, *plane, "--plane-name", name]

    return arguments


def child_spawn(argv: Sequence[str], forks: ForkServer | None) -> Spawn:
    """Fork each child from `forks`, else start it as a fresh interpreter."""
    arguments = child_arguments(argv)
    interpreter = [sys.executable, "-m", "node.cli"]
    if forks is not None:
        return fork_spawn(forks, arguments, interpreter)
    return exec_spawn(lambda name, fd: [*interpreter, *arguments(name, fd)])


def node_shares(node: Node, sockets: Mapping[str, Path], clients: SocketClients) -> NodeShares:
    """This process borrows quota shares for the node and lends them on to its
    data-plane processes (node/plane/node_shares.py): without Redis, or while it is
    unreachable."""
    quotas = node.quotas
    shares = NodeShares(node.name, SPANS, sockets, clients, node.mesh_size, time.monotonic)
    quotas.shares = shares.outer  # its /ha/local part is the node's
    node.peers.on_polled.append(lambda: shares.exchange(peer_parts(node.peers.views)))
    return shares


async def serve_control(
    config: config_module.Config,
    config_file: str | None,
    argv: Sequence[str],
    forks: ForkServer | None,
) -> int:
    """Run the control process; `forks`, when there is one, starts its children."""
    if forks is not None:
        forks.watch()  # a server that dies is reaped at once, not left a zombie
    try:
        return await _serve_control(config, config_file, argv, forks)
    finally:
        if forks is not None:
            await forks.close()


async def _serve_control(
    config: config_module.Config,
    config_file: str | None,
    argv: Sequence[str],
    forks: ForkServer | None,
) -> int:
    problem = port_problem(config.host, config.port)
    if problem is not None:
        return refuse(problem)
    try:
        app = create_app(config, config_file, outer=(trusted_client,))
    except MeshSecretError as exc:
        return refuse(f"--mesh-secret: {exc}")
    node = app[NODE]
    # Before Raft starts: a live socket means this data dir is in use, and a path too long
    # for a Unix socket is refused here rather than in a child that would die restarting.
    data = config.data_path
    sockets = {f"p{i + 1}": process_socket(data, f"p{i + 1}") for i in range(config.process_count)}
    try:
        for path in [control_socket(data), *sockets.values()]:
            claim(path)
    except PlaneSocketError as exc:
        return refuse(str(exc))
    clients = SocketClients()  # one session per child, to ping it and read its counters

    async def ping(name: str) -> bool:
        path = process_socket(config.data_path, name)
        return await clients.get(path, ALIVE, PING_EVERY) is not None

    supervisor = Supervisor(
        child_spawn(argv, forks),
        config.process_count,
        node.stopper.refuse,
        ping=ping,
        greeting=config_message(config),  # each child runs with this process's settings
    )
    node.processes = supervisor.describe  # shown in /ha/local
    limits = node.process_limits = ProcessLimits(sockets, clients, node.ratelimiter.stats)
    node.stopper.on_request.append(supervisor.drain)  # a signal, a plan or a refusal
    # The children start first: their own start (mostly imports: the CPU time of a
    # process each) runs beside this one's; each links once the plane link serves.
    await supervisor.spawn()
    runner = make_runner(app, config)
    refused = await set_up(runner)  # starts the node, Raft first
    if refused is not None:
        await supervisor.stop(0)
        return refused
    shares = node_shares(node, sockets, clients)  # once started: it hooks the peer poller
    site = web.UnixSite(runner, str(control_socket(config.data_path)))
    await site.start()
    control_socket(config.data_path).chmod(0o600)  # only this node's user hands over
    plane = PlaneServer(
        node.raft,
        node.stream,
        lambda: plane_facts(node.pool, node.is_draining, node.stopper),
        plane_socket(config.data_path),
    )
    stop_on_signals(node, config)  # from here on: a stop while starting drains the children
    limits.start()
    shares.start()
    try:
        await plane.start()
        await supervisor.wait_ready(START_SECS)
    except (PlaneSocketError, TimeoutError, ChildRefused) as exc:
        node.stopper.refuse(f"the data-plane processes did not start: {exc}")
    if supervisor.all_ready() and not node.stopper.requested:
        print(
            f"meshgate node {node.name} serving on http://{config.host}:{config.port} with "
            f"{config.process_count} data-plane processes (control pid {os.getpid()}, raft "
            f"{node.raft.settings.self_address or 'read-only member'}, data {config.data_dir})",
            flush=True,
        )
    await node.stopper.stopped.wait()
    await supervisor.stop(config.drain_delay_secs + config.shutdown_grace_secs + EXTRA_STOP_SECS)
    await limits.stop()
    await shares.stop()
    await clients.close()
    await plane.stop()
    return await wait_and_clean_up(node, runner)
