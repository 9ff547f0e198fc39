"""The `meshgate` command: serve a node, run an echo worker, run the demo."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NoReturn

from node import __version__


@dataclass(frozen=True)
class Command:
    """A subcommand, and the module that declares its arguments (`add_arguments`) and
    runs it (`run`). Only the chosen command's module is imported: an echo worker does
    not load the gateway, and a node does not load the demo."""

    name: str
    module: str
    help: str
    server: bool = False  # runs until stopped: exits without the interpreter's teardown


COMMANDS: Final = (
    Command("serve", "node.serve", "run a gateway node", server=True),
    Command(
        "echo-worker",
        "node.echo.cli",
        "run an OpenAI-compatible inference-engine simulator",
        server=True,
    ),
    Command(
        "grpc-echo-worker",
        "node.grpc_echo.cli",
        "run an SGLang gRPC scheduler simulator (for tests and demos)",
        server=True,
    ),
    Command("demo", "node.demo", "run a gateway and echo workers on loopback"),
    Command("hash-password", "node.identity.passwords", "hash an admin password for the config"),
    Command(
        "generate-secret",
        "node.identity.strength",
        "print a new random secret for --mesh-secret, keys and --jwt-secret",
    ),
    Command("cluster", "node.cluster_cli", "inspect and operate a running mesh"),
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, chosen = parser_for(argv)
    args = parser.parse_args(argv)
    if chosen is not None and chosen.server:
        _keep_loaded_code_out_of_collections()
        _collect_young_objects_less_often()
    status = int(args.run(args) or 0)
    if chosen is not None and chosen.server:
        _exit_without_teardown(status)
    return status


def parser_for(argv: list[str]) -> tuple[argparse.ArgumentParser, Command | None]:
    """The `meshgate` parser, with the arguments of the command that `argv` names, and
    that command (None when it names none)."""
    parser = argparse.ArgumentParser(prog="meshgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"meshgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # The top-level parser has no option with a value (--version takes none), so the first
    # word is the command.
    first_word = next((arg for arg in argv if not arg.startswith("-")), None)
    chosen = next((c for c in COMMANDS if c.name == first_word), None)
    for command in COMMANDS:
        command_parser = sub.add_parser(command.name, help=command.help)
        if command is chosen:
            with _collector_off_while(command.server):
                module = importlib.import_module(command.module)
            module.add_arguments(command_parser)
            command_parser.set_defaults(run=module.run)
    return parser, chosen


@contextlib.contextmanager
def _collector_off_while(importing_a_server: bool) -> Iterator[None]:
    """Import a server's modules with the garbage collector off. An import builds
    objects that live as long as the process (modules, classes, functions), so the
    hundreds of collections it would trigger free nothing: ~10% of a node's import CPU
    (measured: 0.95 s of CPU down to 0.85 s), paid at every start. The collector comes
    back on before the server runs; main() then freezes what the imports built."""
    if not importing_a_server or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _keep_loaded_code_out_of_collections() -> None:
    """Leave what the imports built (modules, classes, functions: they live as long as the
    process) out of every later garbage collection. Otherwise the first full collection,
    which falls while a node builds its parts, walks them all: 60-90 ms of each start
    (measured), and as much again at each full collection while it serves."""
    gc.freeze()


# Objects a server may allocate (net) before a young-generation collection; Python's is 700.
YOUNG_COLLECTION_THRESHOLD = 20_000


def _collect_young_objects_less_often() -> None:
    """Raise the young generation's threshold. A proxied request keeps a few hundred
    objects alive while in flight, so with Python's 700 a loaded node ran a young
    collection every ~10 requests and an older one every ~100: about 50 µs of CPU per
    request (measured: 6-7% of a node's CPU at 32 connections). Nearly all of those
    objects are freed by reference counting anyway; the rare cycles wait a little longer."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def _exit_without_teardown(status: int) -> NoReturn:
    """Exit a stopped server at once. It has closed its journal, sockets and files by
    now; the interpreter's own teardown of the loaded libraries would still take 0.4-0.8 s
    (measured), which every restart of a node (rolling restarts included) waits through."""
    # Nothing here may change the status: a supervisor acts on it (node/exit_status.py).
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe, say
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
