"""What one Generate produces: the reply's token ids, where it stops and why.

Pure functions of the request, the tokenizer and the worker's settings, so that
a test can predict the answer. A prompt may carry markers that inject a fault
into that request alone: `[[fail:INTERNAL]]`, `[[hang]]`, `[[cut:3]]` (abort the
RPC after 3 tokens) and `[[reply:TEXT]]` (answer TEXT instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

import grpc

from node.grpc_echo.config import Faults, check_status_name

_MARKER = re.compile(r"\[\[(fail|hang|cut|reply)(?::(.*?))?\]\]", re.S)


@dataclass(frozen=True)
class RequestFaults:
    fail_status: grpc.StatusCode | None
    hang: bool
    cut_after: int | None
    reply_text: str | None


def request_faults(prompt: str, base: Faults, reply_text: str | None) -> RequestFaults:
    """The worker's faults, overridden by the markers in the prompt's text."""
    fail, hang, cut, reply = base.fail_status, base.hang, base.cut_after, reply_text
    for name, value in _MARKER.findall(prompt):
        if name == "fail":
            try:
                fail = check_status_name(value or "INTERNAL")
            except ValueError:
                fail = grpc.StatusCode.INTERNAL
        elif name == "hang":
            hang = True
        elif name == "cut" and value.strip().isdigit():
            cut = int(value)
        elif name == "reply":
            reply = value
    return RequestFaults(fail, hang, cut, reply)


@dataclass(frozen=True)
class Reply:
    token_ids: list[int]
    finish_reason: str  # "stop" or "length", as GenerateComplete says it
    matched_token_id: int | None  # the stop or eos token that ended it, if one did
    matched_stop_str: str | None = None  # the stop string its text reached, if it did


def plan_reply(
    candidates: Sequence[int],
    *,
    max_new_tokens: int,
    stop_token_ids: Container[int],
    eos_token_ids: Sequence[int],
    ignore_eos: bool = False,
    no_stop_trim: bool = False,
    stop: Sequence[str] = (),
    decode: Callable[[list[int]], str] | None = None,
) -> Reply:
    """Emit `candidates` until a stop token, an eos token (unless `ignore_eos`), a stop
    string in the text so far (the token that completes it is kept: the gateway trims
    the text) or `max_new_tokens`; a reply that runs out ends as if the model emitted eos."""
    out: list[int] = []
    for token in candidates:
        if len(out) >= max_new_tokens:
            return Reply(out, "length", None)
        if token in stop_token_ids or (not ignore_eos and token in eos_token_ids):
            if no_stop_trim:
                out.append(token)
            return Reply(out, "stop", token)
        out.append(token)
        if stop and decode is not None:
            text = decode(out)
            matched = next((s for s in stop if s and s in text), None)
            if matched is not None:
                return Reply(out, "stop", None, matched)
    if len(out) >= max_new_tokens:
        return Reply(out, "length", None)
    return Reply(out, "stop", eos_token_ids[0] if eos_token_ids else None)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids `a` and `b` share (the simulated prefix cache's hit)."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
