"""The control process's settings on a data-plane process's link (node/plane/link_config.py):
read back whole, leaving what follows on the link; a link that closes early, starts
with something else or announces too much is refused with what is wrong."""

from __future__ import annotations

import argparse
import socket

import pytest

from node import config as config_module
from node.plane.link_config import MOST_CONFIG, LinkConfigError, config_message, read_config


def loaded(*flags: str) -> config_module.Config:
    parser = argparse.ArgumentParser()
    config_module.add_arguments(parser)
    return config_module.load(parser.parse_args(list(flags)), environ={})


def test_the_settings_come_back_whole_and_what_follows_stays_on_the_link() -> None:
    config = loaded("--port", "4242", "--log-level", "debug", "--worker-urls", "http://a:1")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(config_message(config) + b"drain 1 2\n")
        assert read_config(theirs.fileno()) == config
        assert theirs.recv(64) == b"drain 1 2\n"  # the link is still open, unread past it


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (b"", "closed before"),
        (b"hello there, this is not a config header at all\n", "does not start"),
        (b"config %d\n" % (MOST_CONFIG + 1), "is over"),
        (b"config 10\n{}", "closed inside"),
        (b"config 2\n[]", "not valid"),
        (b'config 11\n{"port": 1}', "not valid"),
    ],
)
def test_a_link_without_valid_settings_is_refused(sent: bytes, said: str) -> None:
    ours, theirs = socket.socketpair()
    with theirs:
        ours.sendall(sent)
        ours.close()
        with pytest.raises(LinkConfigError, match=said):
            read_config(theirs.fileno())
