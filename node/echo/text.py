"""Deterministic fake model output for the echo worker.

The echo worker has no model, yet tests and benchmarks need answers that are
stable (same prompt, same answer, on every worker and every run), distinct
(different prompts give different answers) and cheap to make. Everything here is
derived from hashes of the input: text picks words from a fixed 256-word
vocabulary with one hash byte per word, embeddings are unit vectors built from
hash bytes, and rerank/classify scores come from word overlap and hashes.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Sequence
from functools import lru_cache

_WORDS = """
the of and to in is that it for on with as was at by be this from or have an they which one
you had not but what all were when we there can more if out so said up its about into than
them time only could new some these two may first then do any like my now over such our man
me even most made after also did many before must through back years where much your way well
down should because each just those people how too little state good very make world still
own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three river
stone cloud light water green quiet signal bridge garden silver amber forest window harbor
lantern meadow orbit pixel quartz rocket saddle tunnel velvet willow yellow zephyr anchor
beacon candle delta ember falcon glacier hollow island jasmine kettle ladder marble nectar
oyster pepper quiver raven sparrow timber umbrella valley walnut canyon echo mesh gate packet
token vector kernel socket router cache shard replica leader follower quorum ballot ledger
cluster node worker stream chunk frame header buffer queue batch latency budget retry backoff
circuit breaker health probe metric gauge counter sample trace span context deadline cancel
drain shutdown spark ripple summit thunder breeze coral dune ferry grove hazel iris juniper kelp
lotus maple nova opal prism reef sage tide vivid wren xenon yarrow zinc bright calm swift brave
"""

VOCAB: tuple[str, ...] = tuple(dict.fromkeys(_WORDS.split()))[:256]
"""The fixed vocabulary; one hash byte selects one word."""

if len(VOCAB) != 256:  # pragma: no cover - guards edits to the word list
    raise RuntimeError(f"echo vocabulary must hold 256 distinct words, has {len(VOCAB)}")

SPACED_VOCAB: tuple[str, ...] = tuple(" " + word for word in VOCAB)
"""Each word with a leading space: the streamed form of every word but the first."""

CLASS_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
"""Labels returned by the fake classifier."""

_PUNCTUATION = ".,;:!?\"'()[]{}<>"


def prompt_token_count(prompt: str) -> int:
    """Whitespace-separated words in `prompt`, at least 1 (an empty prompt still costs)."""
    return max(1, len(prompt.split()))


def prompt_seed(prompt: str) -> bytes:
    """A 16-byte seed that identifies `prompt`."""
    return hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def generate_words(prompt: str, count: int, variant: int = 0) -> list[str]:
    """`count` words determined by `prompt`; `variant` > 0 gives alternative answers (`n`).

    Longer outputs for the same prompt extend shorter ones, so a stream cut short
    or a smaller `max_tokens` yields a prefix of the full answer.
    """
    if count <= 0:
        return []
    seed = prompt_seed(prompt)
    if variant:
        seed += variant.to_bytes(4, "little")
    vocab = VOCAB
    return [vocab[b] for b in hashlib.shake_256(seed).digest(count)]


def generate_text(prompt: str, count: int, variant: int = 0) -> str:
    """The words of `generate_words` joined by single spaces."""
    return " ".join(generate_words(prompt, count, variant))


def stream_pieces(words: Sequence[str]) -> list[str]:
    """The streamed deltas for `words`: their concatenation equals `" ".join(words)`."""
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def text_key(text: str) -> bytes:
    """Hash key of a text input for `embedding`."""
    return b"t" + text.encode("utf-8", "surrogatepass")


def tokens_key(token_ids: Sequence[int]) -> bytes:
    """Hash key of a token-id input for `embedding`; distinct from any text key."""
    return b"i" + ",".join(map(str, token_ids)).encode()


@lru_cache(maxsize=4096)
def embedding(key: bytes, dim: int) -> tuple[float, ...]:
    """A deterministic unit-norm vector of `dim` floats for the input hashed as `key`."""
    raw = hashlib.shake_256(key).digest(4 * dim)
    values = [v / 2147483648.0 - 1.0 for v in struct.unpack(f"<{dim}I", raw)]
    norm = math.hypot(*values)
    if norm == 0.0:  # pragma: no cover - needs every hash word to be exactly 2**31
        return (1.0,) + (0.0,) * (dim - 1)
    return tuple(v / norm for v in values)


@lru_cache(maxsize=4096)
def embedding_base64(key: bytes, dim: int) -> str:
    """`embedding(key, dim)` as base64 of little-endian float32, the OpenAI wire format."""
    vector = embedding(key, dim)
    return base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode("ascii")


def word_set(text: str) -> frozenset[str]:
    """Lower-cased words of `text` with surrounding punctuation removed."""
    words = (w.strip(_PUNCTUATION).lower() for w in text.split())
    return frozenset(w for w in words if w)


def _unit_hash(*parts: str) -> float:
    """A deterministic number in [0, 1) from `parts`."""
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little") / 2**32


def rerank_score(query: str, query_words: frozenset[str], document: str) -> float:
    """Relevance of `document` to `query` in [0, 1].

    The score is the share of query words found in the document; a hash adds
    less than one overlap step, so it only orders documents with equal overlap.
    """
    if not query_words:
        return 0.05 * _unit_hash(query, document)
    overlap = len(query_words & word_set(document)) / len(query_words)
    return 0.95 * overlap + 0.05 * _unit_hash(query, document) / len(query_words)


def class_probs(text: str) -> list[float]:
    """A deterministic probability distribution over `CLASS_LABELS` for `text`."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    logits = [digest[i] / 64.0 for i in range(len(CLASS_LABELS))]
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    total = sum(weights)
    return [w / total for w in weights]


def best_label(probs: Sequence[float]) -> str:
    """The label with the highest probability (the first on ties)."""
    return CLASS_LABELS[max(range(len(probs)), key=probs.__getitem__)]
