"""The audit log: every control-plane change asked of this node, who asked, and the result.

Each mutating request to a control-plane or management route (and every
login attempt, and every write no route answers) is written as one JSON line
to `<data-dir>/audit.jsonl`: time, node, principal (id, kind, tenant), method,
path, status (499 for a client that hung up) and request id. Bodies are never
written, so no key, password or token reaches the log; what was changed is in
the replicated records themselves (`updated_by`). The file is rotated once it
passes 10 MiB (one previous file is kept).

Every answer of 400 or more (wrong keys, failed logins, a tenant's requests
its quota refused, routes that do not exist, writes that did not commit) goes
to a file of its own, `audit-refused.jsonl`, rotated at 1 MiB. Anyone who can
reach the node can cause those as fast as they like (a tenant's key too: its
per-user limit answers 429 quickly); in the one log they would rotate the
record of accepted changes away within minutes. Kept apart, a flood only
rotates itself, and the changes stay for as long as their own volume allows.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from node.api.table import installed
from node.auth import PRINCIPAL
from node.client_gone import CLIENT_CLOSED_REQUEST, final_status

MAX_BYTES = 10 * 1024 * 1024
REFUSALS_FILE = "audit-refused.jsonl"
MAX_REFUSAL_BYTES = 1024 * 1024
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")


class _Journal:
    """One JSON-lines file, rotated past `max_bytes` (the previous file is kept as `.1`)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for the process lifetime

    def write(self, line: bytes) -> None:
        self._file.write(line)
        self._file.flush()
        if self._file.tell() > self.max_bytes:
            self._file.close()
            os.replace(self.path, self.path.with_suffix(".jsonl.1"))
            self._file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        self._file.close()


class AuditLog:
    """The node's log at `path`. A data-plane process (`process`) writes files of its own
    beside the control process's (`audit.p1.jsonl`, `audit-refused.p1.jsonl`): only one
    process may rotate a file. `tail` reads the node's files together."""

    def __init__(self, path: Path, node: str, process: str | None = None) -> None:
        self.path = path
        self.node = node
        self._changes = _Journal(_own(path, process), MAX_BYTES)
        self._refusals = _Journal(_own(path.with_name(REFUSALS_FILE), process), MAX_REFUSAL_BYTES)

    def write(self, entry: dict[str, Any]) -> None:
        line = orjson.dumps({"ts": time.time(), "node": self.node, **entry}) + b"\n"
        refused = entry.get("status", 500) >= 400
        (self._refusals if refused else self._changes).write(line)

    def tail(self, limit: int, refusals: bool = False) -> list[dict[str, Any]]:
        """The latest entries of every process of the node: accepted changes, or refusals."""
        base = self.path.with_name(REFUSALS_FILE) if refusals else self.path
        files = [base, *sorted(base.parent.glob(f"{base.stem}.*{base.suffix}"))]
        entries = [entry for path in files if path.exists() for entry in _tail(path, limit)]
        entries.sort(key=lambda entry: entry.get("ts", 0))
        return entries[-limit:]

    def close(self) -> None:
        self._changes.close()
        self._refusals.close()


def _own(path: Path, process: str | None) -> Path:
    return path if process is None else path.with_name(f"{path.stem}.{process}{path.suffix}")


def _tail(path: Path, limit: int) -> list[dict[str, Any]]:
    with open(path, "rb") as handle:
        lines = deque(handle, maxlen=limit)
    return [orjson.loads(line) for line in lines if line.strip()]


def _audited(request: web.Request) -> bool:
    """The route record says (`Route.audited`); a write no route answers is a refusal."""
    table = installed(request)
    return table is not None and table.audited(request)


def _result(status: int) -> str:
    if status == CLIENT_CLOSED_REQUEST:
        return "client_closed"
    return "ok" if status < 400 else "refused" if status < 500 else "failed"


@web.middleware
async def audit_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost middleware: sees the final status, errors included."""
    if not _audited(request):
        return await handler(request)  # type: ignore[no-any-return]
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response  # type: ignore[no-any-return]
    finally:
        principal = request.get(PRINCIPAL)
        status = final_status(request, status)  # a client that hung up is no failure
        request.app[AUDIT].write(
            {
                "method": request.method,
                "path": request.path,
                "status": status,
                "result": _result(status),
                "principal": None
                if principal is None
                else {
                    "id": principal.id,
                    "kind": principal.kind,
                    "role": principal.role,
                    "tenant": principal.tenant,
                },
                "remote": request.remote,
                "request_id": request.headers.get("X-Request-Id"),
            }
        )
