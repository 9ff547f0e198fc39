"""A worker's tokenizer streamed with GetTokenizer: stored by digest, unpacked, loaded.

The worker sends one zip in chunks and its SHA-256 on the last chunk. The bytes go
into the blob store (size-bounded as they arrive) and are kept only if they hash
to what the worker announced. The zip is unpacked once per digest under the data
dir, refusing any member that is not a plain file name or is too big, so a later
discovery of the same worker (or another worker with the same tokenizer) loads
from disk instead of fetching again.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Final

from smg_grpc_proto.generated import common_pb2

from node.blobs.store import BlobError, BlobStore, check_digest
from node.text.tokenizer import MAX_TOKENIZER_BYTES, TextTokenizer, load_tokenizer

MAX_MEMBERS: Final = 64
MAX_UNPACKED_BYTES: Final = 2 * MAX_TOKENIZER_BYTES
DONE_MARK: Final = ".complete"


class TokenizerFetchFailed(Exception):
    """The worker's tokenizer could not be fetched or used; str() says why."""


async def fetch(
    stub: Any, metadata: Any, store: BlobStore, timeout: float, expected: str | None = None
) -> str:
    """Stream the worker's tokenizer zip into the blob store; its verified digest.
    `expected`: the digest recorded for the worker (other nodes must load the same)."""
    call = stub.GetTokenizer(common_pb2.GetTokenizerRequest(), metadata=metadata, timeout=timeout)
    announced = ""
    hashed = hashlib.sha256()
    try:
        with store.writer() as writer:
            async for chunk in call:
                writer.write(chunk.data)
                hashed.update(chunk.data)
                announced = chunk.sha256 or announced
            actual = hashed.hexdigest()
            if not announced:
                raise TokenizerFetchFailed("GetTokenizer sent no sha256 on its last chunk")
            if announced.lower() != actual:
                raise TokenizerFetchFailed(
                    f"GetTokenizer's bytes hash to {actual}, not the {announced[:64]} it sent"
                )
            if expected and actual != expected:
                raise TokenizerFetchFailed(
                    f"the worker now sends a tokenizer zip hashing to {actual}, not the "
                    f"{expected} recorded for it; remove and add the worker again"
                )
            return await asyncio.to_thread(writer.commit)  # fsync: off the loop
    except BlobError as exc:
        raise TokenizerFetchFailed(f"GetTokenizer: {exc}") from None


def unpacked(store: BlobStore, digest: str, root: Path) -> Path | None:
    """The directory the zip `digest` was unpacked to, if it was (None otherwise)."""
    directory = root / check_digest(digest)
    return directory if (directory / DONE_MARK).is_file() else None


def unpack(store: BlobStore, digest: str, root: Path) -> Path:
    """Unpack the stored zip `digest` under `root` (once); the directory."""
    done = unpacked(store, digest, root)
    if done is not None:
        return done
    blob = store.verified(digest)
    if blob is None:
        raise TokenizerFetchFailed(f"the tokenizer zip {digest} is not in the blob store")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(dir=root, prefix="unpack-"))
    try:
        _extract(blob, staging)
        (staging / DONE_MARK).touch()
        target = root / digest
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def discard(store: BlobStore, digest: str, root: Path) -> None:
    """Remove the zip `digest` and its unpacked directory (once no worker uses them)."""
    store.remove(digest)
    shutil.rmtree(root / check_digest(digest), ignore_errors=True)


def _extract(blob: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(blob) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise TokenizerFetchFailed(f"the tokenizer zip has over {MAX_MEMBERS} members")
            total = 0
            for member in members:
                name = member.filename
                if member.is_dir() or "/" in name or "\\" in name or name.startswith("."):
                    continue  # only plain files at the top: never a path out of `into`
                total += member.file_size
                if member.file_size > MAX_TOKENIZER_BYTES or total > MAX_UNPACKED_BYTES:
                    raise TokenizerFetchFailed("the tokenizer zip unpacks too big")
                with archive.open(member) as source, (into / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as exc:
        raise TokenizerFetchFailed(f"GetTokenizer did not send a zip: {exc}") from None
    except (TokenizerFetchFailed, OSError):
        raise  # OSError: this node's disk, told apart by the caller
    except Exception as exc:  # encrypted or unknown-method members, corrupt streams, ...
        raise TokenizerFetchFailed(
            f"the tokenizer zip cannot be unpacked: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


async def load_unpacked(directory: Path, chat_template: str | None) -> TextTokenizer:
    """Load a tokenizer directory off the event loop (a big tokenizer.json takes a while)."""
    return await asyncio.to_thread(load_tokenizer, directory, chat_template)
