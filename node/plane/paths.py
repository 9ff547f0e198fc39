"""Where a node's processes meet: two Unix sockets in its data dir (mode 0600)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

PLANE_SOCKET: Final = "plane.sock"  # the plane link (gRPC): state, applied entries, facts
CONTROL_SOCKET: Final = "control.sock"  # the control process's HTTP site, for handed-over requests


def plane_socket(data_path: Path) -> Path:
    return data_path / PLANE_SOCKET


def control_socket(data_path: Path) -> Path:
    return data_path / CONTROL_SOCKET
