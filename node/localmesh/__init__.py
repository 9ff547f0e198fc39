"""Meshgate processes on this machine: one child process (`process`), a whole mesh (`mesh`).

Used by `meshgate demo`, the tests and the benchmarks, so that all three start nodes
the way an operator would, and clean up the same way."""

from node.localmesh.grpc_worker import GrpcEchoWorker, grpc_echo_worker_args
from node.localmesh.mesh import (
    ECHO_MODEL,
    EchoWorker,
    LocalMesh,
    LocalMeshError,
    LocalNode,
    echo_worker_args,
    get_json,
    http_ok,
    serve_args,
    wait_until,
)
from node.localmesh.process import Child, child_environment, free_port, free_ports, stop_all

__all__ = [
    "ECHO_MODEL",
    "Child",
    "EchoWorker",
    "GrpcEchoWorker",
    "LocalMesh",
    "LocalMeshError",
    "LocalNode",
    "child_environment",
    "echo_worker_args",
    "free_port",
    "free_ports",
    "get_json",
    "grpc_echo_worker_args",
    "http_ok",
    "serve_args",
    "stop_all",
    "wait_until",
]
