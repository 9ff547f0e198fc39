"""Token ids in, text out, for streams: whole characters, whole glyphs, stop strings.

A byte-level BPE splits a character's UTF-8 bytes across tokens, and a decoder
may treat a token differently at the start of a text. So, like vLLM, SGLang and
TGI, this decodes a short window of ids twice: from `prefix_offset` to
`read_offset` (text already emitted) and to the end. The new text is the
difference, held back while it ends in U+FFFD (an incomplete character), for at
most HOLD_LIMIT ids: then the part no later id can change comes out (a text may
itself end in U+FFFD; stray bytes come out as U+FFFD). Where every id boundary
cuts a character (tokens that straddle them), the ids wait up to HARD_HOLD. The
window moves on after each emission, so a long stream costs O(n) overall,
whatever the ids.

Two more hold-backs sit on top of the decoded text:
- the last glyph, when it is not ASCII: a ZWJ, a skin tone, a variation
  selector or a combining mark may still follow and join it;
- a tail that could be the start of a stop string, until it is or is not one.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence

from node.parsers.holdback import partial_suffix_len

REPLACEMENT = "\ufffd"
ZWJ = "\u200d"
LOOK_BACK = 3  # ids: a character's last bytes sit in at most 3 tokens after its first
HOLD_LIMIT = 8  # ids held before looking for the part of the text that is final
HARD_HOLD = 128  # ids held at most, when no id boundary falls between two characters


class IncrementalDetokenizer:
    """Feed ids with `feed`, get the new text; `finish` flushes what is held back.

    After a stop string completes, `stopped` is True, `stop` names it, the text
    ends just before it, and later ids are ignored."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Iterable[str] = ()) -> None:
        self._decode = decode
        self._stops = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._pending = ""  # decoded, not yet emitted
        self.stopped = False
        self.stop: str | None = None

    def feed(self, ids: Iterable[int]) -> str:
        if self.stopped:
            return ""
        self._ids.extend(ids)
        self._pending += self._decoded_delta(final=False)
        return self._emit(final=False)

    def finish(self) -> str:
        """Everything still held back (an incomplete character decodes as U+FFFD)."""
        if self.stopped:
            return ""
        self._pending += self._decoded_delta(final=True)
        return self._emit(final=True)

    def _decoded_delta(self, final: bool) -> str:
        if self._read_offset == len(self._ids):
            return ""
        seen = self._decode(self._ids[self._prefix_offset : self._read_offset])
        end = len(self._ids)
        window = self._decode(self._ids[self._prefix_offset : end])
        # Fed several ids at once, the last may be half a character while those before
        # it end whole ones: step back a few ids rather than hold them all.
        while (
            window.endswith(REPLACEMENT)
            and not final
            and end > self._read_offset + 1
            and len(self._ids) - end < LOOK_BACK
        ):
            end -= 1
            window = self._decode(self._ids[self._prefix_offset : end])
        # Ids that never make a whole character (or any text) would keep the window
        # open and make each id cost the whole window: past HOLD_LIMIT, give them up.
        give_up = len(self._ids) - self._read_offset > HOLD_LIMIT
        if window.endswith(REPLACEMENT) and not final:
            if not give_up:
                return ""
            cut = self._final_part()
            if cut is None:  # every id boundary in reach cuts a character (tokens straddle)
                if len(self._ids) - self._read_offset <= HARD_HOLD:
                    return ""
                cut = len(self._ids), self._decode(self._ids[self._prefix_offset :])
            end, window = cut
        if len(window) <= len(seen) and not give_up:
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = end
        return window[len(seen) :]

    def _final_part(self) -> tuple[int, str] | None:
        """The longest window, ending at least LOOK_BACK ids before the last, whose text
        no later id can change (the text may itself end in a real U+FFFD), or None.

        A character starting LOOK_BACK + 1 ids before the end has all its bytes, so the
        whole window's text is final up to there; a shorter window whose text is a prefix
        of it therefore never has to be taken back. Where tokens straddle characters, no
        id boundary in reach may fall between two: then there is None."""
        whole = self._decode(self._ids[self._prefix_offset :])
        last = len(self._ids) - LOOK_BACK
        for end in range(last, max(self._read_offset, last - HOLD_LIMIT), -1):
            window = self._decode(self._ids[self._prefix_offset : end])
            if whole.startswith(window):
                return end, window
        return None

    def _emit(self, final: bool) -> str:
        text = self._pending
        if self._stops:
            found = [(i, s) for s in self._stops if (i := text.find(s)) >= 0]
            if found:
                index, self.stop = min(found, key=lambda hit: hit[0])
                self.stopped = True
                self._pending = ""
                return text[:index]
        if final:
            self._pending = ""
            return text
        hold = max(partial_suffix_len(text, self._stops), open_glyph_len(text))
        cut = len(text) - hold
        self._pending = text[cut:]
        return text[:cut]


def open_glyph_len(text: str) -> int:
    """Length of the last glyph when a later character could still join it (0 for ASCII)."""
    if not text or text[-1].isascii():
        return 0
    start = len(text) - 1
    while start > 0 and (
        _extends(text[start])
        or text[start - 1] == ZWJ
        or (_regional(text[start]) and _regional(text[start - 1]))  # a flag's two letters
    ):
        start -= 1
    return len(text) - start


def _extends(char: str) -> bool:
    """A character that attaches to the one before it in a glyph."""
    code = ord(char)
    return (
        char == ZWJ
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF
