"""Is a secret strong enough to guard a gateway? Refuse short, repetitive and placeholder ones.

Every key and secret a node is given (the mesh secret, the client API key,
control-plane keys, the JWT signing secret) goes through `weakness` at start.
A node started from an example file with `REPLACE-ME-example-*` values, or
with `changeme`, must stop and say how to make a real secret, not serve.

"Entropy" here is an estimate from the secret's own characters (Shannon
entropy of their distribution times the length): it cannot prove a secret
random, but it reliably catches `aaaa…`, `abcabc…` and short words, and every
output of `meshgate generate-secret` passes it with a wide margin.
"""

from __future__ import annotations

import argparse
import itertools
import math
import secrets
from collections import Counter

MIN_LENGTH = 32
MIN_ESTIMATED_BITS = 80
# Lowercased fragments of the placeholders people paste from examples and docs.
PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replaceme",
    "replace_me",
    "placeholder",
    "example",
    "your-secret",
    "your_secret",
    "yoursecret",
    "insert-",
    "todo",
    "xxxxxxxx",
    # words people build "secrets" from; a random secret contains none of them
    "password",
    "passw0rd",
    "secret",
    "qwerty",
    "letmein",
    "admin",
    "default",
    "sample",
    "dummy",
    "apikey",
    "api-key",
    "api_key",
)
SEQUENCE_RUN = 8  # abcdefgh, 12345678, hgfedcba: typed, not drawn
HOW_TO_GENERATE = (
    "generate one with `meshgate generate-secret` "
    "(or: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
)


def estimated_bits(secret: str) -> float:
    """Shannon entropy of the secret's characters times its length (an upper-bound estimate)."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    length = len(secret)
    per_char = -sum(n / length * math.log2(n / length) for n in counts.values())
    return per_char * length


def weakness(secret: str) -> str | None:
    """Why `secret` is too weak to use, or None when it is acceptable."""
    if len(secret) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    lowered = secret.lower()
    for fragment in PLACEHOLDERS:
        if fragment in lowered:
            return f"looks like a placeholder or a made-up phrase (contains {fragment!r})"
    if _longest_sequence(lowered) >= SEQUENCE_RUN:
        return f"contains a run of {SEQUENCE_RUN} or more consecutive characters (like abcdefgh)"
    if estimated_bits(secret) < MIN_ESTIMATED_BITS:
        return "has too little entropy (too few distinct or too many repeated characters)"
    return None


def _longest_sequence(text: str) -> int:
    """The longest run of characters that each step by +1, or each by -1."""
    longest = run = 1
    step = 0
    for before, after in itertools.pairwise(text):
        delta = ord(after) - ord(before)
        if delta in (1, -1) and delta == step:
            run += 1
        elif delta in (1, -1):
            step, run = delta, 2
        else:
            step, run = 0, 1
        longest = max(longest, run)
    return longest if text else 0


def generate() -> str:
    """A fresh secret: 48 random bytes, URL-safe base64 (64 characters, 384 bits).

    Never one that starts with "-": one in 64 would, and `--mesh-secret -x…` is
    read as an unknown option."""
    while True:
        secret = secrets.token_urlsafe(48)
        if not secret.startswith("-") and weakness(secret) is None:  # (a word by chance)
            return secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`meshgate generate-secret` takes no arguments."""


def run(_: argparse.Namespace) -> int:
    print(generate())
    return 0
