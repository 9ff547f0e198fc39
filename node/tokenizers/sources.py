"""Read a tokenizer's source into the blob store, on the node that accepts the registration.

A source is one of:
- a local path (absolute, or starting with `./`, `../` or `~`): a `tokenizer.json`, or a
  directory holding one; the optional files beside it come too;
- an `http(s)://` URL of a `tokenizer.json` (a `tokenizer_config.json` beside it is
  fetched if it is there), with a deadline and the blob size cap;
- a Hugging Face model id (`org/name`), read only from the local Hugging Face cache
  (HF_HOME / HF_HUB_CACHE): this node never downloads from the hub.

A source whose form is wrong, or a path that is not there, is a `SourceError` (the
handler answers 400 at once). What is found out only by reading it (a URL that does
not answer, a model not in the cache) is `Unreadable`: the tokenizer is recorded
`failed` with that reason on every node.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from mesh.commands import TOKENIZER_MAIN_FILE, TOKENIZER_SOURCE_LIMIT
from node.blobs.fetch import DownloadError, download
from node.blobs.store import BlobError, BlobStore
from node.proxy.upstream import Upstream
from node.workers.credentials import safe_url

# Files a tokenizer and its chat template may need, taken when they are beside it.
OPTIONAL_FILES: Final = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
FORMS = (
    "source must be a path (absolute, or starting with ./ or ~), an http(s):// URL of a "
    "tokenizer.json, or a Hugging Face model id such as org/name"
)


class SourceError(ValueError):
    """The source cannot be read as given (the registration is refused with 400)."""


class Unreadable(Exception):
    """The source was read and gave no tokenizer (the tokenizer is recorded failed)."""


@dataclass
class Read:
    """What a source gave: the files by name, the source as it may be recorded and shown."""

    source: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str | None = None
    unused: dict[str, dict[str, Any]] = field(default_factory=dict)  # stored, then refused


def shown_url(url: str) -> str:
    """The URL as it may be recorded and shown: no userinfo, no query or fragment
    (a signed URL's token is in its query)."""
    return urlunsplit(urlsplit(safe_url(url))._replace(query="", fragment=""))


def kind_of(source: str) -> str:
    """ "url", "path" or "hub"; a SourceError for anything else."""
    if source.startswith(("http://", "https://")):
        try:
            host = urlsplit(source).hostname
        except ValueError:
            host = None
        if not host:
            raise SourceError("source URL must have a host")
        try:
            host.encode("idna")  # what the HTTP client does with it: "a..b" fails here
        except UnicodeError:
            raise SourceError("source URL's host is not a valid host name") from None
        return "url"
    if source.startswith(("/", "./", "../", "~")):
        return "path"
    if HUB_ID.fullmatch(source) and ".." not in source and "--" not in source:
        return "hub"
    raise SourceError(FORMS)


async def read_source(source: str, store: BlobStore, session: Upstream, timeout: float) -> Read:
    kind = kind_of(source)
    if kind == "path":
        try:
            path = Path(source).expanduser()
        except RuntimeError:  # ~user of no such user
            raise SourceError(f"source path {source} names no home directory") from None
        return await asyncio.to_thread(_read_path, path, store, source)
    read = Read(shown_url(source) if kind == "url" else source)
    stored: dict[str, dict[str, Any]] = {}
    try:
        if kind == "url":
            read.files = await _read_url(source, store, session, timeout, stored)
        else:
            read.files = await asyncio.to_thread(_read_hub, source, store)
    except Unreadable as exc:
        read.failure = _capped(str(exc))
        read.unused = stored
    return read


def _capped(failure: str) -> str:
    """A failure that fits its record (a long URL must not make the command invalid)."""
    if len(failure) <= TOKENIZER_SOURCE_LIMIT:
        return failure
    return failure[: TOKENIZER_SOURCE_LIMIT - 1] + "\u2026"


def _read_path(path: Path, store: BlobStore, source: str) -> Read:
    if not path.exists():
        raise SourceError(f"source path {source} does not exist on this node")
    main = path / TOKENIZER_MAIN_FILE if path.is_dir() else path
    if not main.is_file():
        raise SourceError(f"source directory {source} holds no {TOKENIZER_MAIN_FILE}")
    found = {TOKENIZER_MAIN_FILE: main}
    found.update({n: main.parent / n for n in OPTIONAL_FILES if (main.parent / n).is_file()})
    try:
        return Read(source, {name: _put(store, name, file) for name, file in found.items()})
    except (BlobError, OSError) as exc:
        raise SourceError(f"source {source}: {exc}") from None


def _read_hub(model_id: str, store: BlobStore) -> dict[str, dict[str, Any]]:
    # Imported here: huggingface_hub reads HF_HOME / HF_HUB_CACHE when first imported.
    from huggingface_hub import constants, try_to_load_from_cache

    def cached(name: str) -> Path | None:
        found = try_to_load_from_cache(model_id, name)
        return Path(found) if isinstance(found, str) else None

    try:
        main = cached(TOKENIZER_MAIN_FILE)
    except ValueError as exc:  # huggingface_hub's own rules for a repo id
        raise SourceError(f"source {model_id!r} is not a Hugging Face model id: {exc}") from None
    if main is None:
        raise Unreadable(
            f"{TOKENIZER_MAIN_FILE} of {model_id} is not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); meshgate reads the hub only through that cache, so "
            f"download it there first (hf download {model_id}), or register a path or URL"
        )
    found = {TOKENIZER_MAIN_FILE: main}
    found.update({n: p for n in OPTIONAL_FILES if (p := cached(n)) is not None})
    try:
        return {name: _put(store, name, file) for name, file in found.items()}
    except (BlobError, OSError) as exc:
        raise Unreadable(f"{model_id} in the Hugging Face cache: {exc}") from None


async def _read_url(
    url: str,
    store: BlobStore,
    session: Upstream,
    timeout: float,
    stored: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The files at `url`; `stored` gets every blob downloaded (so a refusal can drop them)."""
    parts = urlsplit(url)
    folder = parts.path.rsplit("/", 1)[0]
    config_url = urlunsplit(parts._replace(path=f"{folder}/tokenizer_config.json", query=""))
    files = {TOKENIZER_MAIN_FILE: url}
    if config_url != url:
        files["tokenizer_config.json"] = config_url
    found: dict[str, dict[str, Any]] = {}
    for name, address in files.items():
        try:
            digest, size = await download(session, address, store, timeout=timeout)
        except DownloadError as exc:
            if name != TOKENIZER_MAIN_FILE:
                continue  # optional: taken only when it is there
            raise Unreadable(f"{shown_url(url)} {exc}") from None
        stored[name] = {"sha256": digest, "size": size}
        try:  # off the loop: up to --blob-max-bytes of JSON to parse
            await asyncio.to_thread(_check_content, name, store.path(digest), store.max_bytes)
        except SourceError as exc:
            raise Unreadable(str(exc)) from None
        found[name] = {"sha256": digest, "size": size}
    return found


def _put(store: BlobStore, name: str, file: Path) -> dict[str, Any]:
    _check_content(name, file, store.max_bytes)
    digest, size = store.put_file(file)
    return {"sha256": digest, "size": size}


def _check_content(name: str, file: Path, limit: int) -> None:
    """Only tokenizer files enter the store: JSON objects (a tokenizer.json with a model),
    and UTF-8 text for a template. So a registration cannot copy any file of the node's."""
    if file.stat().st_size > limit:
        raise SourceError(f"{name} is larger than the limit of {limit} bytes (--blob-max-bytes)")
    template = name.endswith(".jinja")
    try:
        text = file.read_bytes().decode("utf-8")
        value = None if template else json.loads(text)
    except ValueError:
        raise SourceError(f"{name} is not UTF-8 {'text' if template else 'JSON'}") from None
    if not template and not isinstance(value, dict):
        raise SourceError(f"{name} is not a JSON object")
    if name == TOKENIZER_MAIN_FILE and "model" not in value:  # type: ignore[operator]
        raise SourceError(f"{name} is not a tokenizers file (it has no model)")
