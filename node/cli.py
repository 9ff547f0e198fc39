"""The `meshgate` command: serve a node, run an echo worker, run the demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from node import cluster_cli, demo, serve
    from node.echo import cli as echo_cli

    serve_parser = sub.add_parser("serve", help="run a gateway node")
    serve.add_arguments(serve_parser)
    serve_parser.set_defaults(run=serve.run, skip_teardown=True)

    echo = sub.add_parser("echo-worker", help="run an OpenAI-compatible inference-engine simulator")
    echo_cli.add_arguments(echo)
    echo.set_defaults(run=echo_cli.run, skip_teardown=True)

    demo_parser = sub.add_parser("demo", help="run a gateway and echo workers on loopback")
    demo.add_arguments(demo_parser)
    demo_parser.set_defaults(run=demo.run)

    from node.identity import passwords

    hash_parser = sub.add_parser("hash-password", help="hash an admin password for the config")
    passwords.add_arguments(hash_parser)
    hash_parser.set_defaults(run=passwords.run)

    secret_parser = sub.add_parser(
        "generate-secret", help="print a new random secret for --mesh-secret, keys and --jwt-secret"
    )
    secret_parser.set_defaults(run=_print_secret)

    cluster = sub.add_parser("cluster", help="inspect and operate a running mesh")
    cluster_cli.add_arguments(cluster)
    cluster.set_defaults(run=cluster_cli.run)

    args = parser.parse_args(argv)
    status = int(args.run(args) or 0)
    if getattr(args, "skip_teardown", False):
        _exit_without_teardown(status)
    return status


def _exit_without_teardown(status: int) -> NoReturn:
    """Exit a stopped server at once. It has closed its journal, sockets and files by
    now; the interpreter's own teardown of the loaded libraries would still take 0.4-0.8 s
    (measured), which every restart of a node (rolling restarts included) waits through."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _print_secret(_: argparse.Namespace) -> int:
    from node.identity.strength import generate

    print(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
