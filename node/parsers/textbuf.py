"""A text that grows by appends, read mostly near its end.

`str +=` on an attribute copies the whole string each time, so a stream fed
one character at a time would be quadratic; this keeps the chunks and joins
only the span asked for.
"""

from __future__ import annotations

from bisect import bisect_right


class TextBuffer:
    def __init__(self, text: str = "") -> None:
        self._chunks: list[str] = []
        self._starts: list[int] = []
        self._len = 0
        self.append(text)

    def __len__(self) -> int:
        return self._len

    def append(self, text: str) -> None:
        if text:
            self._starts.append(self._len)
            self._chunks.append(text)
            self._len += len(text)

    def slice(self, start: int, end: int | None = None) -> str:
        """`text[start:end]`, in time proportional to its length and chunks."""
        end = self._len if end is None else min(end, self._len)
        if start >= end:
            return ""
        first = bisect_right(self._starts, start) - 1
        last = bisect_right(self._starts, end - 1)
        text = "".join(self._chunks[first:last])
        offset = start - self._starts[first]
        return text[offset : offset + end - start]
