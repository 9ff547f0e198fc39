"""Deterministic log probabilities for the simulator's tokens (return_logprob).

The sampled token is always the most likely; the other top tokens are its
neighbours in the vocabulary, each less likely than the last, so a test can
predict every value."""

from __future__ import annotations

from collections.abc import Sequence

from smg_grpc_proto.generated import sglang_scheduler_pb2 as pb


def token_logprob(token: int, position: int) -> float:
    return -round(0.01 + ((token * 7 + position) % 50) / 100, 4)


def output_logprobs(
    tokens: Sequence[int], start: int, top_n: int, vocab_size: int
) -> pb.OutputLogProbs:
    """The logprobs of `tokens`, the first at output position `start`."""
    out = pb.OutputLogProbs()
    for offset, token in enumerate(tokens):
        value = token_logprob(token, start + offset)
        out.token_logprobs.append(value)
        out.token_ids.append(token)
        if top_n > 0:
            ids = [token, *((token + k) % vocab_size for k in range(1, top_n))]
            values = [value - k for k in range(len(ids))]
            out.top_logprobs.append(pb.TopLogProbs(values=values, token_ids=ids))
    return out
