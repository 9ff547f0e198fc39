"""Chat templates rendered the way `transformers` renders them, in Jinja's sandbox.

The environment matches `transformers`' own (trim_blocks, lstrip_blocks, loop
controls, a `tojson` that keeps non-ASCII and HTML as they are, `raise_exception`,
`strftime_now`), so a model's template gives the same prompt here as there. The
immutable sandbox refuses unsafe attributes (`__class__`, `__mro__`, ...) and
changes to the arguments. The output size is bounded while it renders, and so
are the values `*` and `**` build and the steps of `range` loops, since a template
may come from a model repository.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.ext import loopcontrols
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from node.text.errors import ChatTemplateError

MAX_TEMPLATE_CHARS = 256 * 1024
MAX_RENDERED_CHARS = 4 * 1024 * 1024
MAX_RANGE_STEPS = 1_000_000  # over every range() of one render
MAX_POWER = 64


# What the request's own fields set; chat_template_kwargs may not replace them.
RESERVED_VARIABLES = frozenset(
    {"messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token"}
)


def reserved_variables_problem(kwargs: Mapping[str, Any] | None) -> str | None:
    """Why chat_template_kwargs cannot be used (it sets a reserved variable), or None."""
    taken = sorted(RESERVED_VARIABLES & (kwargs or {}).keys())
    if taken:
        return f"chat_template_kwargs may not set {', '.join(taken)}; use the request's own fields"
    return None


class TemplateRaised(jinja2.TemplateError):
    """The template called `raise_exception(message)`."""


def _raise_exception(message: str) -> None:
    raise TemplateRaised(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson escapes <, >, & and ' for HTML; a prompt wants them as written.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _Budget:
    """Loop steps left to one render: nested `range` loops cannot spin a thread for hours."""

    def __init__(self) -> None:
        self.left = MAX_RANGE_STEPS

    def take(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise SecurityError(f"the template loops more than {MAX_RANGE_STEPS} times")


_BUDGET: ContextVar[_Budget] = ContextVar("chat_template_budget")


def _range(*args: int) -> range:
    steps = safe_range(*args)
    _BUDGET.get().take(len(steps))
    return steps


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with `*` and `**` kept from building huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_POWER:
            raise SecurityError(f"the template raises to a power above {MAX_POWER}")
        if operator == "*":
            sized, count = (left, right) if isinstance(right, int) else (right, left)
            big = isinstance(sized, str | list | tuple) and isinstance(count, int)
            if big and len(sized) * count > MAX_RENDERED_CHARS:
                raise SecurityError("the template builds a value that is too big")
        return super().call_binop(context, operator, left, right)


def _environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols], autoescape=False
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["range"] = _range
    return env


_ENV = _environment()


class ChatTemplate:
    """One compiled template; `render` gives the prompt for a conversation."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_TEMPLATE_CHARS:
            raise ChatTemplateError(
                f"chat template is {len(source)} characters; the limit is {MAX_TEMPLATE_CHARS}"
            )
        try:
            self._template = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ChatTemplateError(
                f"chat template does not compile: {exc.message} (line {exc.lineno})"
            ) from None
        self.source = source

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Any] | None = None,
        documents: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        bos_token: str | None = None,
        eos_token: str | None = None,
        **extra: Any,
    ) -> str:
        context = {
            **extra,
            "messages": messages,
            "tools": tools,
            "documents": documents,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": bos_token or "",
            "eos_token": eos_token or "",
        }
        parts: list[str] = []
        size = 0
        budget = _BUDGET.set(_Budget())
        try:
            for piece in self._template.generate(**context):
                size += len(piece)
                if size > MAX_RENDERED_CHARS:
                    raise ChatTemplateError(
                        f"chat template output passed {MAX_RENDERED_CHARS} characters"
                    )
                parts.append(piece)
        except ChatTemplateError:
            raise
        except TemplateRaised as exc:
            raise ChatTemplateError(f"chat template refused the messages: {exc.message}") from None
        except jinja2.TemplateError as exc:  # SecurityError, UndefinedError, ...
            raise ChatTemplateError(f"chat template failed: {exc}") from None
        except (
            TypeError,
            ValueError,
            LookupError,
            AttributeError,
            ArithmeticError,
            RecursionError,
        ) as exc:
            raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from None
        finally:
            _BUDGET.reset(budget)
        return "".join(parts)
