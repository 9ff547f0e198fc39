"""Every registered tokenizer, loaded on this node: pending -> ready | failed.

A subscriber of the applied stream (`sync` runs on each `tokenizer.*` command and
at start). For each record it makes sure every file is in the blob store and still
hashes to its digest, fetching what is missing from peers (node/blobs/fetch.py) and
retrying with backoff while they fail; then it loads the tokenizer
(node/text/tokenizer.py) from a directory of hard links named as the record names
the files. A load error is final: the same bytes would fail again.

A file changed or deleted on disk after that is noticed (a read hashes it again; a
periodic stat check looks for changes) and fetched again. This node's view of each
tokenizer goes into its `/ha/local` report, so any node can show every node's view.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from node.blobs.fetch import BlobFetcher, FetchFailed
from node.blobs.store import BlobStore
from node.record_work import DEFAULT_BACKOFF, Backoff, LocalStatus, RecordWork
from node.service import Periodic
from node.text.tokenizer import TextTokenizer, TokenizerLoadError, load_tokenizer

Record = dict[str, Any]
Loader = Callable[[Path, str | None], TextTokenizer]
TEMPLATE_FILE: Final = "chat_template.jinja"  # transformers' own file for a chat template


class TokenizerRegistry:
    def __init__(
        self,
        records: Callable[[], dict[str, Record]],
        in_use: Callable[[], set[str]],  # every digest a record names (ControlState's)
        store: BlobStore,
        fetcher: BlobFetcher,
        work_dir: Path,
        load: Loader = load_tokenizer,
        backoff: Backoff = DEFAULT_BACKOFF,
        check_every: float = 2.0,
    ) -> None:
        self.records = records
        self.in_use = in_use
        self.store = store
        self.fetcher = fetcher
        self.work_dir = work_dir
        self.load = load
        self.backoff = backoff
        self._known: dict[str, Record] = {}  # the records being served, by id
        self._status: dict[str, LocalStatus] = {}
        self._loaded: dict[str, TextTokenizer] = {}
        # What /v1/tokenize reads from its threads: replaced whole on the loop, never changed.
        self._served: Mapping[str, TextTokenizer] = MappingProxyType({})
        self._names: tuple[str, ...] = ()
        self._work = RecordWork("tokenizer", lambda i, why: self._set(i, "failed", why))
        self._seen: dict[str, tuple[int, int, int]] = {}  # digest -> (inode, size, mtime)
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        store.on_corrupt.append(self._changed)
        self._checker = Periodic("tokenizer-files", self._check_files, check_every)

    # -- the catalog /v1/tokenize reads --------------------------------------------------

    def find(self, name_or_id: str) -> TextTokenizer | None:
        return self._served.get(name_or_id)

    def names(self) -> list[str]:
        return list(self._names)

    def _publish(self) -> None:
        """Rebuild the snapshot the threads read (on the loop, after every change)."""
        loaded = {i: t for i, t in self._loaded.items() if i in self._known}
        by_name = {self._known[i]["name"]: t for i, t in loaded.items()}
        self._served = MappingProxyType({**by_name, **loaded})  # an id wins over a name
        self._names = tuple(sorted(by_name))

    # -- status ---------------------------------------------------------------------

    def status(self, tokenizer_id: str) -> dict[str, Any]:
        local = self._status.get(tokenizer_id)
        return local.view() if local else LocalStatus(reason="not seen yet").view()

    def report(self) -> dict[str, dict[str, Any]]:
        """This node's view of every tokenizer (for its /ha/local report)."""
        return {i: s.view() for i, s in self._status.items()}

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self._loop = asyncio.get_running_loop()
        self.sync()
        self._checker.start()

    async def stop(self) -> None:
        self._started = False
        await self._checker.stop()
        await self._work.stop()

    def sync(self) -> None:
        """Follow the replicated records: prepare new ones, forget removed ones."""
        if not self._started:
            return
        records = self.records()
        for gone in set(self._known) - set(records):
            self._forget(gone)
        for tokenizer_id, record in records.items():
            if tokenizer_id not in self._known:
                self._known[tokenizer_id] = record
                self._status[tokenizer_id] = LocalStatus()
                self._work.run(tokenizer_id, self._prepare(record))

    def _forget(self, tokenizer_id: str) -> None:
        record = self._known.pop(tokenizer_id)
        self._status.pop(tokenizer_id, None)
        self._loaded.pop(tokenizer_id, None)
        self._publish()
        self._work.cancel(tokenizer_id)
        digests = [entry["sha256"] for entry in record["files"].values()]
        # Kept while another tokenizer or a WASM module names it.
        for digest in self.store.remove_unused(digests, self.in_use()):
            self._seen.pop(digest, None)

    def _set(
        self, tokenizer_id: str, state: str, reason: str | None, retrying: bool = False
    ) -> None:
        if tokenizer_id in self._known:
            self._status[tokenizer_id] = LocalStatus(state, reason, retrying=retrying)

    # -- preparing one tokenizer ----------------------------------------------------------

    async def _prepare(self, record: Record) -> None:
        tokenizer_id = record["id"]
        if record.get("failure"):  # its source gave nothing (the accepting node said why)
            self._set(tokenizer_id, "failed", record["failure"])
            return
        await self._fetch_missing(record)
        try:
            tokenizer = await asyncio.to_thread(self._load, record)
        except (TokenizerLoadError, OSError) as exc:
            self._set(tokenizer_id, "failed", f"load error: {exc}")
            return
        self._loaded[tokenizer_id] = tokenizer
        self._publish()
        self._set(tokenizer_id, "ready", None)

    async def _fetch_missing(self, record: Record) -> None:
        """Return once every file is here and verified: fetch, retry with backoff."""
        delay = self.backoff.first
        while True:
            missing = [(n, f) for n, f in record["files"].items() if not await self._here(f)]
            if not missing:
                return
            try:
                for _, entry in missing:
                    await self.fetcher.fetch(entry["sha256"], entry["size"])
            except FetchFailed as exc:
                name = next(n for n, f in missing if f["sha256"] == exc.digest)
                state = "ready" if record["id"] in self._loaded else "failed"
                self._set(record["id"], state, f"{name}: {exc}", retrying=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff.most)

    async def _here(self, entry: dict[str, Any]) -> bool:
        digest = entry["sha256"]
        path = await asyncio.to_thread(self.store.verified, digest)
        if path is None:
            return False
        self._seen[digest] = _identity(path.stat())
        return True

    def _load(self, record: Record) -> TextTokenizer:
        """Load from a private directory of hard links named as the record names the files."""
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(dir=self.work_dir, prefix=f"{record['id']}-"))
        try:
            for name, entry in record["files"].items():
                os.link(self.store.path(entry["sha256"]), folder / name)
            template = record.get("chat_template")
            if template is None and (folder / TEMPLATE_FILE).is_file():
                template = (folder / TEMPLATE_FILE).read_text(encoding="utf-8")
            return self.load(folder, template)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- files changed on disk ---------------------------------------------------------

    def _changed(self, digest: str) -> None:
        """A blob was found changed (and deleted), on any thread: the store hashes in one."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._refetch, digest)

    def _refetch(self, digest: str) -> None:
        """Fetch a blob found changed or missing again, for whoever uses it."""
        self._seen.pop(digest, None)
        for tokenizer_id, record in self._known.items():
            uses = any(f["sha256"] == digest for f in record["files"].values())
            if uses and not self._work.busy(tokenizer_id):
                self._work.run(tokenizer_id, self._restore(record))

    async def _restore(self, record: Record) -> None:
        was = self._status.get(record["id"])
        self._set(record["id"], was.state if was else "pending", "fetching a changed file again")
        await self._fetch_missing(record)
        if record["id"] in self._loaded:
            self._set(record["id"], "ready", None)
        else:
            await self._prepare(record)

    async def _check_files(self) -> None:
        """Notice a file deleted or rewritten since it was verified (a stat, not a hash)."""
        for digest, seen in list(self._seen.items()):
            try:
                now: tuple[int, int, int] | None = _identity(self.store.path(digest).stat())
            except FileNotFoundError:
                now = None
            if now is None:  # deleted (`verified` reports only a changed file)
                self._refetch(digest)
            elif now != seen and await asyncio.to_thread(self.store.verified, digest) is not None:
                self._seen[digest] = now  # touched, not changed


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_ino, info.st_size, info.st_mtime_ns
