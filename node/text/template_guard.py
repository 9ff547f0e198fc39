"""Bounds on what a chat template may build, on top of Jinja's immutable sandbox.

Templates come from model repositories, URLs and workers, so they are untrusted
code. The sandbox stops attribute tricks, not blowups: a loop doubling a string
with `~`, a pad to fifty million characters, big-integer towers. This module
gives every value a template builds a size check before it is built, and every
loop step a cost against one render's budget:

- `guard(tree)` rewrites a parsed template so each `for` iterates through
  `budgeted` and each `~` joins through `concat` (imported names, which a
  template cannot shadow);
- `binop_problem`, `call_problem` and `format_problem` say why an operator, a
  str method or a format would build too much;
- `FILTERS` replace Jinja's padding and formatting filters with checked ones.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_format, do_indent, do_replace
from jinja2.utils import pass_eval_context
from jinja2.visitor import NodeTransformer

MAX_VALUE_CHARS: Final = 4 * 1024 * 1024  # no string a template builds is longer
MAX_WIDTH: Final = 64 * 1024  # a pad or field width
MAX_STEPS: Final = 1_000_000  # loop steps (and range items) over one render
MAX_INT_BITS: Final = 64 * 1024
_PAD_METHODS: Final = frozenset({"ljust", "rjust", "center", "zfill"})


class Budget:
    """Loop steps left to one render: nested loops cannot spin a thread for hours."""

    def __init__(self) -> None:
        self.left = MAX_STEPS

    def take(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise SecurityError(f"the template loops more than {MAX_STEPS} times")


BUDGET: ContextVar[Budget] = ContextVar("chat_template_budget")


def budgeted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every `for` loop's items, one budget step each."""
    budget = BUDGET.get()
    for item in iterable:
        budget.take(1)
        yield item


def concat(*parts: Any) -> str:
    """The `~` operator, refusing a result longer than MAX_VALUE_CHARS."""
    texts = [str(part) for part in parts]
    if sum(map(len, texts)) > MAX_VALUE_CHARS:
        raise SecurityError("the template builds a value that is too big")
    return "".join(texts)


class _Guard(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call("budgeted", [node.iter])
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("concat", list(node.nodes))


def _call(name: str, args: list[nodes.Expr]) -> nodes.Call:
    return nodes.Call(nodes.ImportedName(f"{__name__}.{name}"), args, [], None, None)


def guard(tree: nodes.Template) -> nodes.Template:
    """The parsed template with every loop budgeted and every `~` bounded."""
    guarded = _Guard().visit(tree)
    assert isinstance(guarded, nodes.Template)
    return guarded


def _too_big(size: int) -> bool:
    return size > MAX_VALUE_CHARS


def binop_problem(operator: str, left: Any, right: Any) -> str | None:
    """Why `left operator right` would build too much, or None."""
    if operator == "*":
        sized, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sized, str | list | tuple) and isinstance(count, int):
            return "a value that is too big" if _too_big(len(sized) * count) else None
        if isinstance(left, int) and isinstance(right, int):
            bits = abs(left).bit_length() + abs(right).bit_length()
            return "an integer that is too big" if bits > MAX_INT_BITS else None
    if operator == "**" and isinstance(left, int) and isinstance(right, int):
        too_big = abs(right) > 64 or abs(left).bit_length() * abs(right) > MAX_INT_BITS
        return "an integer that is too big" if too_big else None
    if operator == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else (right,)
        return percent_problem(left, values)
    return None


_PERCENT = re.compile(r"%[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?")


def _wide(width: str | None, values: Iterable[Any]) -> bool:
    if width == "*":
        return any(isinstance(v, int) and abs(v) > MAX_WIDTH for v in values)
    return width is not None and (len(width) > 6 or int(width) > MAX_WIDTH)


def percent_problem(fmt: str, values: Iterable[Any]) -> str | None:
    """Why `fmt % values` would pad past MAX_WIDTH, or None."""
    values = list(values)
    for match in _PERCENT.finditer(fmt):
        if _wide(match[1], values) or _wide(match[2], values):
            return f"a width or precision above {MAX_WIDTH}"
    return None


def format_problem(fmt: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> str | None:
    """Why `fmt.format(...)` would pad past MAX_WIDTH, or None."""
    values = [*args, *kwargs.values()]
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return None  # str.format raises the same error itself
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec and any(isinstance(v, int) and abs(v) > MAX_WIDTH for v in values):
            return f"a width or precision above {MAX_WIDTH}"
        if any(len(d) > 6 or int(d) > MAX_WIDTH for d in re.findall(r"\d+", spec)):
            return f"a width or precision above {MAX_WIDTH}"
    return None


def call_problem(obj: Any, args: tuple[Any, ...]) -> str | None:
    """Why calling a str method `obj` with `args` would build too much, or None."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return None
    if name in _PAD_METHODS and args and isinstance(args[0], int) and args[0] > MAX_WIDTH:
        return f"a width above {MAX_WIDTH}"
    if name == "expandtabs" and args and isinstance(args[0], int) and args[0] > 64:
        return "a tab size above 64"
    if name == "replace" and len(args) >= 2:
        return replace_problem(owner, args[0], args[1])
    return None


def replace_problem(text: Any, old: Any, new: Any) -> str | None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if _too_big(len(text) + hits * len(new)):
            return "a value that is too big"
    return None


def _checked(problem: str | None) -> None:
    if problem:
        raise SecurityError(f"the template builds {problem}")


def _center(value: Any, width: int = 80) -> str:
    _checked(f"a width above {MAX_WIDTH}" if isinstance(width, int) and width > MAX_WIDTH else None)
    return do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    too_wide = isinstance(width, int) and width > MAX_WIDTH
    too_long = isinstance(width, str) and _too_big(len(width) * (str(s).count("\n") + 1))
    _checked("a value that is too big" if too_wide or too_long else None)
    return do_indent(s, width, first, blank)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _checked(percent_problem(str(value), [*args, *kwargs.values()]))
    return do_format(value, *args, **kwargs)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    _checked(replace_problem(str(s), str(old), str(new)))
    return do_replace(eval_ctx, s, old, new, count)


FILTERS: Final[dict[str, Callable[..., str]]] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "replace": _replace,
}
