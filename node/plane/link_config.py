"""The control process's loaded configuration, handed to each data-plane process over
its link: the first thing on it, `config LENGTH\\n` and that many bytes of JSON.

A child runs with its control process's settings, as they were when the control
process started; it never reads the config file itself (a file changed or broken since
would give a restarted child other settings, or stop the node). The link is a socket
pair: no other process sees what it carries (secrets included), unlike a command line
or an environment.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Final

from node.config import Config

HEADER: Final = b"config"
MOST_HEADER: Final = 32  # b"config 123456789\n"
MOST_CONFIG: Final = 4 * 1024 * 1024  # lists of keys and URLs: kilobytes, not megabytes
READ_SECS: Final = 10.0  # the control process writes it as soon as the child starts
FIELDS: Final = frozenset(field.name for field in dataclasses.fields(Config))
UNCONFIGURED: Final = 1  # a child's exit status without one: its supervisor starts it again


class LinkConfigError(Exception):
    """No configuration on the link, or not a valid one."""


def config_message(config: Config) -> bytes:
    """What the control process writes first on each child's link."""
    body = json.dumps(dataclasses.asdict(config)).encode()
    return HEADER + b" %d\n" % len(body) + body


def read_config(fd: int) -> Config:
    """Read the configuration from the link `fd` (blocking, within READ_SECS), leaving
    what follows it on the link unread."""
    sock = socket.socket(fileno=fd)
    try:
        sock.settimeout(READ_SECS)
        length = _length(_read_line(sock))
        body = _read_exactly(sock, length)
    except OSError as exc:  # TimeoutError among them
        raise LinkConfigError(f"no configuration from the control process: {exc}") from exc
    finally:
        sock.detach()  # the link stays open: the child's ParentLink reads it from here on
    try:
        values = json.loads(body)
        if not isinstance(values, dict) or set(values) != FIELDS:  # every setting, no other
            raise ValueError("it does not name every setting")
        return Config(**values)
    except (ValueError, TypeError) as exc:
        raise LinkConfigError(f"the control process's configuration is not valid: {exc}") from exc


def _read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        if len(line) >= MOST_HEADER:
            raise LinkConfigError("the link does not start with a configuration")
        byte = sock.recv(1)  # one at a time: what follows the body is not ours to read
        if not byte:
            raise LinkConfigError("the link closed before the configuration")
        line += byte
    return line


def _length(line: bytes) -> int:
    words = line.split()
    if len(words) != 2 or words[0] != HEADER or not words[1].isdigit():
        raise LinkConfigError("the link does not start with a configuration")
    length = int(words[1])
    if length > MOST_CONFIG:
        raise LinkConfigError(f"a configuration of {length} bytes is over {MOST_CONFIG}")
    return length


def _read_exactly(sock: socket.socket, length: int) -> bytes:
    body = bytearray()
    while len(body) < length:
        chunk = sock.recv(min(65536, length - len(body)))
        if not chunk:
            raise LinkConfigError("the link closed inside the configuration")
        body += chunk
    return bytes(body)
