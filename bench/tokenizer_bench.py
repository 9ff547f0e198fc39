"""Tokens per second for tokenize, detokenize and streaming detokenize (node/text).

The tokenizer is a byte-level BPE this script trains with the `tokenizers`
trainer (the tests' fixture, with a bigger vocabulary and a bigger generated
corpus of English-like words, accents, CJK and emoji), so the run needs no
network and no model download. The prompt is generated the same way with
another seed, about `--prompt-bytes` of UTF-8.

Three measurements, each repeated for `--seconds`:
- tokenize: `TextTokenizer.encode` of the whole prompt;
- detokenize: `TextTokenizer.decode` of its ids;
- streaming: an `IncrementalDetokenizer` fed the ids one at a time, as a stream
  from a worker would feed it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' tokenizer fixture

from node.text.tokenizer import TextTokenizer, load_tokenizer  # noqa: E402
from tests.tokenizer_files import CORPUS, train_tokenizer  # noqa: E402

SYLLABLES = ["ka", "to", "ri", "mu", "sen", "pla", "dor", "ve", "qui", "str", "ang", "el"]
EXTRAS = [
    "café",
    "naïve",
    "東京",
    "北京是",
    "서울",
    "🙂",
    "🚀",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "42",
    ",",
]


def generated_text(seed: int, size: int) -> str:
    """About `size` bytes of UTF-8: made-up words, with some accents, CJK and emoji."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.1:
            word = rng.choice(EXTRAS)
        else:
            word = "".join(rng.choices(SYLLABLES, k=rng.randint(1, 4)))
        words.append(word)
        length += len(word.encode()) + 1
    return " ".join(words)


def rate(work: Callable[[], int], seconds: float) -> float:
    """Tokens per second of `work` (which returns the tokens it handled), run repeatedly."""
    work()  # warm up
    tokens = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        tokens += work()
    return tokens / elapsed


def streamed(tokenizer: TextTokenizer, ids: list[int]) -> Callable[[], int]:
    def work() -> int:
        detok = tokenizer.detokenizer()
        for token in ids:
            detok.feed((token,))
        detok.finish()
        return len(ids)

    return work


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tokenizer_bench.py",
        description="Tokens per second for tokenize, detokenize and streaming detokenize "
        "on a generated prompt, with a byte-level BPE trained by this script.",
    )
    parser.add_argument("--vocab-size", type=int, default=4000, help="(%(default)s)")
    parser.add_argument("--corpus-bytes", type=int, default=400_000, help="(%(default)s)")
    parser.add_argument("--prompt-bytes", type=int, default=4096, help="(%(default)s)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (%(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = [*CORPUS, generated_text(1, args.corpus_bytes)]
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "tokenizer.json"
        train_tokenizer("qwen25", args.vocab_size, corpus).save(str(file))
        tokenizer = load_tokenizer(file)
    prompt = generated_text(2, args.prompt_bytes)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    results = {
        "vocab_size": tokenizer.vocab_size,
        "prompt_bytes": len(prompt.encode()),
        "prompt_tokens": len(ids),
        "tokenize_tokens_per_s": rate(lambda: len(tokenizer.encode(prompt)), args.seconds),
        "detokenize_tokens_per_s": rate(lambda: len(tokenizer.decode(ids) and ids), args.seconds),
        "stream_detokenize_tokens_per_s": rate(streamed(tokenizer, ids), args.seconds),
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"vocabulary {results['vocab_size']}, prompt {results['prompt_bytes']} bytes = "
        f"{results['prompt_tokens']} tokens"
    )
    for name in ("tokenize", "detokenize", "stream_detokenize"):
        print(f"{name:>20}: {results[name + '_tokens_per_s']:>14,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
