"""The engine's responses -> the client's answer, in the shapes HTTP workers give.

One `ChoiceText` per choice index turns token ids into text (the incremental
detokenizer, which also ends the text at a stop string). `Assembly` turns
`GenerateResponse` messages into OpenAI chunks (`chat.completion.chunk`,
`text_completion`) or SGLang's native `/generate` chunks, and, for a plain
request, the whole body. The raw text goes out as a worker would send it: the
output parsers (node/outparse) run over these bytes exactly as over an HTTP
worker's, so the shapes cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from node.grpcproxy.build import CHAT, COMPLETION, GENERATE, Asked
from node.text.detokenize import IncrementalDetokenizer
from node.text.tokenizer import TextTokenizer

DONE = b"data: [DONE]\n\n"
ENGINE_REASONS = {"stop": "stop", "length": "length", "abort": "abort"}


@dataclass
class ChoiceText:
    """One choice: its detokenizer, the text so far, and how it ended."""

    detokenizer: IncrementalDetokenizer
    text: str = ""
    tokens: int = 0
    streamed: bool = False  # ids came in chunks (a complete's output_ids repeat them)
    finish: str | None = None
    matched: int | str | None = None
    logprobs: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, ids: list[int]) -> str:
        self.tokens += len(ids)
        piece = self.detokenizer.feed(ids)
        if self.detokenizer.stopped:
            self.finish, self.matched = "stop", self.detokenizer.stop
        self.text += piece
        return piece

    def close(self, reason: str, matched: int | str | None) -> str:
        piece = self.detokenizer.finish()
        self.text += piece
        if self.finish is None:
            self.finish, self.matched = ENGINE_REASONS.get(reason, "stop"), matched
        return piece


@dataclass
class Counts:
    prompt: int = 0
    cached: int = 0
    completion: dict[int, int] = field(default_factory=dict)  # by choice index

    def take(self, part: Any, index: int) -> None:
        self.prompt = max(self.prompt, part.prompt_tokens)
        self.cached = max(self.cached, part.cached_tokens)
        self.completion[index] = max(self.completion.get(index, 0), part.completion_tokens)

    def usage(self) -> dict[str, Any]:
        completion = sum(self.completion.values())
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt,
            "completion_tokens": completion,
            "total_tokens": self.prompt + completion,
        }
        if self.cached:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached}
        return usage


def frame(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Assembly:
    """Feed the engine's responses in order; take the chunks (or the whole body) out."""

    def __init__(self, asked: Asked, tokenizer: TextTokenizer, response_id: str) -> None:
        self.asked = asked
        self._tok = tokenizer
        self.counts = Counts()
        self.choices = {
            i: ChoiceText(tokenizer.detokenizer(asked.skip_special_tokens, asked.stops))
            for i in range(asked.n)
        }
        prefix = {CHAT: "chatcmpl-", COMPLETION: "cmpl-"}.get(asked.route, "")
        self.id = prefix + response_id
        self.created = int(time.time())
        kind = {CHAT: "chat.completion.chunk", COMPLETION: "text_completion"}.get(asked.route)
        self.head = {"id": self.id, "object": kind, "created": self.created, "model": asked.model}

    @property
    def done(self) -> bool:
        return all(c.finish is not None for c in self.choices.values())

    def opening(self) -> list[bytes]:
        """What a chat stream starts with: each choice's role."""
        if self.asked.route != CHAT:
            return []
        return [
            frame(self._chunk(i, {"role": "assistant", "content": ""}, None)) for i in self.choices
        ]

    def feed(self, response: Any) -> Iterator[bytes]:
        """The SSE frames one `GenerateResponse` gives (none for a plain request)."""
        kind = response.WhichOneof("response")
        part = getattr(response, kind) if kind else None
        if part is None:
            return
        index = part.index
        choice = self.choices.get(index)
        if choice is None:
            return
        self.counts.take(part, index)
        if choice.finish is not None:
            return  # ended here at a stop string; the engine's counts still count
        if kind == "chunk":
            choice.streamed = True
            piece = choice.feed(list(part.token_ids))
            logprobs = self._logprobs(part.output_logprobs) if self.asked.logprobs else []
            choice.logprobs += logprobs
        else:
            piece = "" if choice.streamed else choice.feed(list(part.output_ids))
            logprobs = []
            if self.asked.logprobs and not choice.streamed:
                logprobs = self._logprobs(part.output_logprobs)
                choice.logprobs += logprobs
            matched = part.WhichOneof("matched_stop")
            piece += choice.close(part.finish_reason, getattr(part, matched) if matched else None)
        if not self.asked.stream:
            return
        if self.asked.route == GENERATE:  # each native chunk carries the text so far
            if piece or choice.finish is not None:
                yield frame(self._native(choice, self.counts.usage()))
            return
        if piece or logprobs:
            shown = self._shown_logprobs(logprobs) if logprobs else None
            yield frame(self._chunk(index, {"content": piece}, None, shown))
        if choice.finish is not None:
            yield frame(self._chunk(index, {}, choice.finish))

    def closing(self) -> list[bytes]:
        """The end of a stream: the usage chunk when asked for, and [DONE]."""
        out = []
        if self.asked.include_usage and self.asked.route in (CHAT, COMPLETION):
            out.append(frame({**self.head, "choices": [], "usage": self.counts.usage()}))
        return [*out, DONE]

    def whole(self) -> dict[str, Any]:
        """The body of a plain (not streamed) request."""
        usage = self.counts.usage()
        if self.asked.route == GENERATE:
            return self._native(self.choices[0], usage)
        choices = []
        for i, c in self.choices.items():
            logprobs = self._shown_logprobs(c.logprobs) if self.asked.logprobs else None
            if self.asked.route == CHAT:
                message = {"role": "assistant", "content": c.text}
                choices.append(
                    {
                        "index": i,
                        "message": message,
                        "logprobs": logprobs,
                        "finish_reason": c.finish,
                    }
                )
            else:
                choices.append(
                    {"index": i, "text": c.text, "logprobs": logprobs, "finish_reason": c.finish}
                )
        body = {
            **self.head,
            "object": "chat.completion" if self.asked.route == CHAT else "text_completion",
        }
        return {**body, "choices": choices, "usage": usage}

    # -- shapes ------------------------------------------------------------------------

    def _chunk(
        self, index: int, delta: dict[str, Any], reason: str | None, logprobs: Any = None
    ) -> dict[str, Any]:
        if self.asked.route == CHAT:
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
        else:
            choice = {
                "index": index,
                "text": delta.get("content", ""),
                "logprobs": logprobs,
                "finish_reason": reason,
            }
        return {**self.head, "choices": [choice]}

    def _native(self, choice: ChoiceText, usage: dict[str, Any]) -> dict[str, Any]:
        reason: dict[str, Any] | None = None
        if choice.finish == "length":
            reason = {"type": "length", "length": choice.tokens}
        elif choice.finish is not None:
            reason = {"type": choice.finish, "matched": choice.matched}
        meta = {
            "id": self.id,
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "cached_tokens": self.counts.cached,
            "finish_reason": reason,
        }
        return {"text": choice.text, "meta_info": meta}

    # -- logprobs ----------------------------------------------------------------------

    def _logprobs(self, out: Any) -> list[dict[str, Any]]:
        """Each token's logprob and its top alternatives (engine ids -> token text)."""
        entries = []
        tops = list(out.top_logprobs)
        for pos, (token, value) in enumerate(zip(out.token_ids, out.token_logprobs, strict=False)):
            top = tops[pos] if pos < len(tops) else None
            alternatives = (
                [self._token(t, v) for t, v in zip(top.token_ids, top.values, strict=False)]
                if top is not None
                else []
            )
            entries.append(
                {
                    **self._token(token, value),
                    "top_logprobs": alternatives[: self.asked.top_logprobs],
                }
            )
        return entries

    def _token(self, token: int, value: float) -> dict[str, Any]:
        text = self._tok.decode([token], skip_special_tokens=False)
        return {"token": text, "logprob": value, "bytes": list(text.encode("utf-8"))}

    def _shown_logprobs(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """OpenAI's chat shape; the completions API has its older one."""
        if self.asked.route == CHAT:
            return {"content": entries}
        return {
            "tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [
                {t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries
            ],
        }
