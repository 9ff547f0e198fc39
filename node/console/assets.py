"""The console's files, indexed once: a request is a dictionary lookup, never a path.

Serving from an index built by walking `static/` makes path traversal impossible by
construction: `..`, encoded dots, absolute paths and backslashes name no key. A
symlink is indexed only when it resolves inside the root, so none leads out of it.
Only files of the known types are indexed (no directory listings, no stray files).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

STATIC: Final = Path(__file__).resolve().parent / "static"
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
MAX_FILE_BYTES: Final = 2 * 1024 * 1024  # the largest vendored file is ~150 KB
MAX_PATH_CHARS: Final = 200  # no asset path is longer; longer requests are 404 at once


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str  # quoted strong validator: a digest of the body


def index(root: Path) -> dict[str, Asset]:
    """Every servable file under `root`, by its path relative to it ('lib/api.js')."""
    base = root.resolve()
    found: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        kind = CONTENT_TYPES.get(path.suffix.lower())
        real = path.resolve()
        if kind is None or not real.is_file() or not real.is_relative_to(base):
            continue
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # editor and VCS droppings
        body = real.read_bytes()
        if len(body) > MAX_FILE_BYTES:
            continue
        digest = hashlib.sha256(body).hexdigest()[:32]
        found[path.relative_to(root).as_posix()] = Asset(body, kind, f'"{digest}"')
    return found


@functools.cache
def shipped() -> dict[str, Asset]:
    """The package's own console files (read at the first request, then kept)."""
    return index(STATIC)


def lookup(files: dict[str, Asset], path: str) -> Asset | None:
    """The asset at a request path under /ui/ ('' is the page), or None."""
    if len(path) > MAX_PATH_CHARS:
        return None
    return files.get(path or "index.html")
