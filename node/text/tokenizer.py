"""A tokenizer loaded from `tokenizer.json`, with what `tokenizer_config.json` adds.

`load_tokenizer` takes the file or its directory. The config beside it gives the
special tokens, the context length and the chat template (compiled at load, so a
malformed template fails the load with Jinja's message, not the first request).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import AddedToken, Tokenizer

from node.text.detokenize import IncrementalDetokenizer
from node.text.errors import ChatTemplateError

if TYPE_CHECKING:
    from node.text.chat_template import ChatTemplate

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
MAX_TOKENIZER_BYTES = 128 * 1024 * 1024
MAX_CONFIG_BYTES = 16 * 1024 * 1024
# transformers writes int(1e30) (or similar) for "no limit"; no model has a context this long.
MAX_REAL_CONTEXT = 1 << 32


class InvalidTokenIds(ValueError):
    """A list of ids holds one that is not a token of the vocabulary."""


class TokenizerLoadError(ValueError):
    """The tokenizer files are missing, too big or malformed; the message says which."""


def load_tokenizer(path: Path, chat_template: str | None = None) -> TextTokenizer:
    """Load `path` (a `tokenizer.json` or a directory holding one).

    `chat_template` overrides the one in `tokenizer_config.json`."""
    path = Path(path)
    file = path / TOKENIZER_FILE if path.is_dir() else path
    if not file.is_file():
        raise TokenizerLoadError(f"no tokenizer file at {file}")
    raw = _read_bounded(file, MAX_TOKENIZER_BYTES)
    try:
        tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:  # the Rust side raises plain Exception for any bad file
        raise TokenizerLoadError(f"{file} is not a valid tokenizer.json: {exc}") from None
    config = _read_json(file.parent / CONFIG_FILE)
    generation = _read_json(file.parent / GENERATION_CONFIG_FILE)
    _add_config_tokens(tokenizer, config)
    template_source = chat_template if chat_template is not None else _config_template(config)
    return TextTokenizer(
        tokenizer,
        bos_token=_token_text(config.get("bos_token")),
        eos_token=_token_text(config.get("eos_token")),
        max_model_len=_context_length(config.get("model_max_length")),
        chat_template=_compile(template_source) if template_source else None,
        extra_eos_ids=_int_list(generation.get("eos_token_id")),
    )


class TextTokenizer:
    """Encode, decode, check ids and render chat templates for one model's tokenizer."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        max_model_len: int | None = None,
        chat_template: ChatTemplate | None = None,
        extra_eos_ids: Iterable[int] = (),
    ) -> None:
        self._tokenizer = tokenizer
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.max_model_len = max_model_len
        self.chat_template = chat_template
        # Added tokens may sit past the base vocabulary: the bound is the highest id + 1.
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values(), default=-1) + 1
        ids = [tokenizer.token_to_id(eos_token)] if eos_token else []
        self.eos_token_ids = sorted({i for i in [*ids, *extra_eos_ids] if i is not None})

    def with_chat_template(self, source: str) -> TextTokenizer:
        """The same tokenizer with another chat template (TokenizerLoadError if it is bad)."""
        derived = copy.copy(self)
        derived.chat_template = _compile(source)
        return derived

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        # The fast batch call skips the character offsets `encode` tracks (the same ids,
        # about a third less CPU per prompt).
        [encoding] = self._tokenizer.encode_batch_fast(
            [text], add_special_tokens=add_special_tokens
        )
        return list(encoding.ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def check_ids(self, ids: Sequence[object]) -> None:
        """Raise InvalidTokenIds (a ValueError) naming the first id not in the vocabulary."""
        for index, value in enumerate(ids):
            if isinstance(value, bool) or not isinstance(value, int):
                shown = repr(value)
                shown = shown if len(shown) <= 40 else shown[:40] + "..."  # bodies may be big
                raise InvalidTokenIds(f"token at index {index} is {shown}, not an integer")
            if not 0 <= value < self.vocab_size:
                raise InvalidTokenIds(
                    f"token id {value} at index {index} is out of range "
                    f"(the vocabulary has ids 0 to {self.vocab_size - 1})"
                )

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        documents: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        **extra: Any,
    ) -> str:
        if self.chat_template is None:
            raise ChatTemplateError("this tokenizer has no chat template; give one")
        return self.chat_template.render(
            messages,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            **extra,
        )

    def detokenizer(
        self, skip_special_tokens: bool = True, stop: Sequence[str] = ()
    ) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(
            partial(self.decode, skip_special_tokens=skip_special_tokens), stop=stop
        )


def _compile(source: str) -> ChatTemplate:
    from node.text.chat_template import ChatTemplate  # jinja2 loads only with a template

    try:
        return ChatTemplate(source)
    except ChatTemplateError as exc:
        raise TokenizerLoadError(str(exc)) from None


def _read_bounded(file: Path, limit: int) -> bytes:
    try:
        size = file.stat().st_size
        if size > limit:
            raise TokenizerLoadError(f"{file} is {size} bytes; the limit is {limit}")
        return file.read_bytes()
    except OSError as exc:
        raise TokenizerLoadError(f"cannot read {file}: {exc.strerror}") from None


def _read_json(file: Path) -> dict[str, Any]:
    """An optional JSON object beside the tokenizer: {} when absent."""
    if not file.is_file():
        return {}
    try:
        value = json.loads(_read_bounded(file, MAX_CONFIG_BYTES))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenizerLoadError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TokenizerLoadError(f"{file} must hold a JSON object")
    return value


def _token_text(value: object) -> str | None:
    """A special token as the config gives it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _context_length(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 < value < MAX_REAL_CONTEXT else None


def _int_list(value: object) -> list[int]:
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, int) and not isinstance(i, bool)]


def _config_template(config: Mapping[str, Any]) -> str | None:
    """The config's chat template: a string, or the "default" of a named list."""
    value = config.get("chat_template")
    if isinstance(value, list):
        named = {item.get("name"): item.get("template") for item in value if isinstance(item, dict)}
        value = named.get("default")
    if value is not None and not isinstance(value, str):
        raise TokenizerLoadError("chat_template in tokenizer_config.json must be a string")
    return value


def _add_config_tokens(tokenizer: Tokenizer, config: Mapping[str, Any]) -> None:
    """Add the config's added tokens that tokenizer.json lacks (older exports)."""
    decoder = config.get("added_tokens_decoder")
    if not isinstance(decoder, dict):
        return
    missing = [
        AddedToken(entry["content"], special=bool(entry.get("special", False)))
        for entry in decoder.values()
        if isinstance(entry, dict)
        and isinstance(entry.get("content"), str)
        and tokenizer.token_to_id(entry["content"]) is None
    ]
    special = [t for t in missing if t.special]
    if special:
        tokenizer.add_special_tokens(special)
    if len(special) < len(missing):
        tokenizer.add_tokens([t for t in missing if not t.special])
