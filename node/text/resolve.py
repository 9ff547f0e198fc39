"""Which tokenizer serves a request: a registered one, or the one its model's workers name.

`tokenizer` names a registered tokenizer (by id or name). `model` looks at the
ready workers serving it: a worker's `tokenizer_path` names a registered
tokenizer or a local file or directory, and its `chat_template` replaces the
tokenizer's. Failing that, a registered tokenizer named like the model serves it.
Loaded files are cached by path, the files' versions and template, a few at a time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from node.text.tokenizer import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    TextTokenizer,
    TokenizerLoadError,
    load_tokenizer,
)

CACHE_SIZE = 16
SHOWN_NAMES = 20


class TokenizerCatalog(Protocol):
    """The registered tokenizers (the registry implements it)."""

    def find(self, name_or_id: str) -> TextTokenizer | None: ...

    def names(self) -> list[str]: ...


class NoCatalog:
    """No registered tokenizers: what a node has before the registry is wired in."""

    def find(self, name_or_id: str) -> TextTokenizer | None:
        return None

    def names(self) -> list[str]:
        return []


class TokenizerNotFound(LookupError):
    """Nothing serves the name; `code` says which kind of name, the message what to do.
    `public`: the message without the registered names (for callers who are not admins)."""

    def __init__(self, code: str, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.public = public or message


class TokenizerUnavailable(ValueError):
    """A worker's `tokenizer_path` names files this node cannot load."""


# A model's ready workers' records (tokenizer_path, chat_template), in a stable order.
WorkerRecords = Callable[[str], Iterable[Mapping[str, Any]]]


class TokenizerResolver:
    """Finds the tokenizer for a request; safe to call from worker threads."""

    def __init__(self, workers_of: WorkerRecords, catalog: TokenizerCatalog | None = None) -> None:
        self._workers_of = workers_of
        self.catalog: TokenizerCatalog = catalog or NoCatalog()
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def by_name(self, name: str) -> TextTokenizer:
        found = self.catalog.find(name)
        if found is None:
            raise TokenizerNotFound(
                "TOKENIZER_NOT_FOUND",
                f"no tokenizer is registered as {name!r} ({self._known()}); "
                "register it with POST /v1/tokenizers",
                f"no tokenizer is registered as {name!r}",
            )
        return found

    def for_model(self, model: str) -> TextTokenizer:
        records = list(self._workers_of(model))
        template = next((r["chat_template"] for r in records if r.get("chat_template")), None)
        path = next((r["tokenizer_path"] for r in records if r.get("tokenizer_path")), None)
        if path is not None:
            found = self.catalog.find(path)
            base = found if found is not None else self._load(path, template)
            return self._with_template(base, template) if found is not None else base
        found = self.catalog.find(model)
        if found is not None:
            return self._with_template(found, template)
        if records:
            raise TokenizerNotFound(
                "TOKENIZER_NOT_FOUND",
                f"the workers serving model {model!r} name no tokenizer_path, and no tokenizer "
                f"is registered as {model!r}; set the workers' tokenizer_path or register one "
                "under the model's name with POST /v1/tokenizers",
            )
        nothing = f"no ready worker serves model {model!r} and no tokenizer is registered under "
        raise TokenizerNotFound(
            "MODEL_NOT_FOUND",
            f"{nothing}that name ({self._known()}); register one with POST /v1/tokenizers",
            f"{nothing}that name",
        )

    def _known(self) -> str:
        names = self.catalog.names()
        shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
        return f"registered: {shown}" if names else "none is registered"

    def _load(self, path: str, template: str | None) -> TextTokenizer:
        """The files at `path`, loaded once per version of the file (a failure too)."""
        target = Path(path)
        file = target / TOKENIZER_FILE if target.is_dir() else target
        try:
            stat = os.stat(file)
        except OSError as exc:
            raise TokenizerUnavailable(
                f"tokenizer_path {path!r}: no tokenizer file at {file} ({exc.strerror})"
            ) from None
        key = ("path", str(file), _version(stat), _version(file.parent / CONFIG_FILE), template)
        value = self._cached(key)
        if value is None:
            try:
                value = load_tokenizer(file, chat_template=template)
            except TokenizerLoadError as exc:
                value = TokenizerUnavailable(f"tokenizer_path {path!r}: {exc}")
            self._store(key, value)
        if isinstance(value, TokenizerUnavailable):
            raise value
        return cast(TextTokenizer, value)

    def _with_template(self, base: TextTokenizer, template: str | None) -> TextTokenizer:
        if template is None:
            return base
        key = ("template", id(base), template)
        cached = self._cached(key)
        if cached is not None and cached[0] is base:
            return cast(TextTokenizer, cached[1])
        try:
            derived = base.with_chat_template(template)
        except TokenizerLoadError as exc:
            raise TokenizerUnavailable(f"the worker's chat_template: {exc}") from None
        self._store(key, (base, derived))
        return derived

    def _cached(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
            return value

    def _store(self, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)


def _version(what: os.stat_result | Path) -> tuple[int, int] | None:
    """A file's modification time and size: a changed file is loaded again."""
    try:
        stat = what if isinstance(what, os.stat_result) else os.stat(what)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
