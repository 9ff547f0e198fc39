"""Reasoning parsers: split a think block from the answer, whole or streaming.

Formats follow SGLang's `srt/parser/reasoning_parser.py` detectors: DeepSeek-R1
(`<think>`...`</think>`, reasoning forced on, so the open tag may be missing),
Qwen3 and GLM-4.5 (`<think>`...`</think>`, explicit open), Kimi
(`◁think▷`...`◁/think▷`). Unlike SGLang, an open tag counts only at the start
of the output (after whitespace), so a tag quoted mid-answer stays content.
Reasoning is stripped; the answer loses only the whitespace right after the
close tag.

`stream_reasoning=False` (SGLang's request option) holds the reasoning back
and sends it in one delta when the block closes, or at the finish.
`separate_reasoning=False` is not a parser option: it means no reasoning
parser is applied at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.parsers.holdback import partial_suffix_len


@dataclass(frozen=True)
class ReasoningFormat:
    start: str
    end: str
    forced: bool  # the model starts inside the think block, open tag or not


@dataclass(frozen=True)
class Delta:
    reasoning: str = ""
    content: str = ""


class ReasoningStream:
    """Feed model output in chunks; get reasoning and content deltas back."""

    def __init__(self, fmt: ReasoningFormat, *, stream_reasoning: bool = True) -> None:
        self._fmt = fmt
        self._streams = stream_reasoning
        self._held: list[str] = []  # reasoning not yet sent (stream_reasoning=False)
        self._state = "start"  # start | reasoning | after | content
        self._buf = ""
        self._reasoning_started = False

    def feed(self, delta: str) -> Delta:
        self._buf += delta
        reasoning, content = [], []
        while True:
            before = (self._state, len(self._buf))
            if self._state == "start":
                self._decide()
            elif self._state == "reasoning":
                reasoning.append(self._reasoning_step())
            elif self._state == "after":
                self._drop_leading_space()
            else:
                content.append(self._buf)
                self._buf = ""
            if (self._state, len(self._buf)) == before:
                break
        return Delta(self._release("".join(reasoning)), "".join(content))

    def finish(self) -> Delta:
        buf, self._buf = self._buf, ""
        delta = self._last(buf)
        self._state = "content"  # whatever is held goes now
        return Delta(self._release(delta.reasoning), delta.content)

    def _last(self, buf: str) -> Delta:
        if self._state == "start" and not self._fmt.forced:
            return Delta(content=buf)
        if self._state in ("start", "reasoning"):
            text = buf if self._reasoning_started else buf.lstrip()
            return Delta(reasoning=text.rstrip())
        return Delta()

    def _release(self, reasoning: str) -> str:
        """Reasoning to send now: all of it, or (not streamed) all at once when it ends."""
        if self._streams:
            return reasoning
        self._held.append(reasoning)
        if self._state in ("start", "reasoning"):
            return ""
        held, self._held = "".join(self._held), []
        return held

    def _decide(self) -> None:
        stripped = self._buf.lstrip()
        start = self._fmt.start
        if not stripped or (start.startswith(stripped) and stripped != start):
            return  # could still become the open tag
        if stripped.startswith(start):
            self._buf = stripped[len(start) :]
            self._state = "reasoning"
        else:
            self._state = "reasoning" if self._fmt.forced else "content"

    def _reasoning_step(self) -> str:
        if not self._reasoning_started:
            self._buf = self._buf.lstrip()
            if not self._buf:
                return ""
        end = self._fmt.end
        at = self._buf.find(end)
        if at >= 0:
            out = self._buf[:at].rstrip()
            self._buf = self._buf[at + len(end) :]
            self._state = "after"
        else:
            # Trailing whitespace waits too: it is dropped if the block closes.
            keep = partial_suffix_len(self._buf, [end])
            body = self._buf[: len(self._buf) - keep]
            out = body.rstrip()
            self._buf = body[len(out) :] + self._buf[len(body) :]
        if out:
            self._reasoning_started = True
        return out

    def _drop_leading_space(self) -> None:
        stripped = self._buf.lstrip()
        if stripped:
            self._state = "content"
        self._buf = stripped


def parse(fmt: ReasoningFormat, text: str) -> tuple[str, str]:
    """Whole text -> (reasoning_text, normal_text); the stream run on one chunk."""
    stream = ReasoningStream(fmt)
    first, last = stream.feed(text), stream.finish()
    return first.reasoning + last.reasoning, first.content + last.content


THINK = ("<think>", "</think>")
FORMATS: dict[str, ReasoningFormat] = {
    "deepseek_r1": ReasoningFormat(*THINK, forced=True),
    "qwen3": ReasoningFormat(*THINK, forced=False),
    "glm45": ReasoningFormat(*THINK, forced=False),
    "kimi": ReasoningFormat("◁think▷", "◁/think▷", forced=False),
}
