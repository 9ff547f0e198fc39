"""The record of what a grpc-echo-worker received: JSON lines, for tests to read.

Each Generate and Embed keeps its request's raw bytes (base64), so a test can
decode exactly what the node put on the wire with the pinned stubs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def request(self, event: str, message: Message, raw: bytes, **extra: Any) -> None:
        fields = MessageToDict(message, preserving_proto_field_name=True)
        self.write(event, request=fields, raw=base64.b64encode(raw).decode(), **extra)

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps({"event": event, **fields}, sort_keys=True) + "\n")
        self._file.flush()  # tests read it while the worker runs

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def read_record(path: Path) -> list[dict[str, Any]]:
    """Every entry of a record file, in order (for tests)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def raw_bytes(entry: dict[str, Any]) -> bytes:
    """The raw request bytes a record entry kept."""
    return base64.b64decode(entry["raw"])
