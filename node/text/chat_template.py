"""Chat templates rendered the way `transformers` renders them, in Jinja's sandbox.

The environment matches `transformers`' own (trim_blocks, lstrip_blocks, loop
controls, a `tojson` that keeps non-ASCII and HTML as they are, `raise_exception`,
`strftime_now`), so a model's template gives the same prompt here as there. The
immutable sandbox refuses unsafe attributes (`__class__`, `__mro__`, ...) and
changes to the arguments. Since a template may come from a model repository, the
output size is bounded while it renders, and `node.text.template_guard` bounds
every value the template builds and every loop step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.ext import loopcontrols
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from node.text.errors import ChatTemplateError
from node.text.template_guard import (
    BUDGET,
    FILTERS,
    Budget,
    binop_problem,
    call_problem,
    format_problem,
    guard,
)

MAX_TEMPLATE_CHARS = 256 * 1024
MAX_RENDERED_CHARS = 4 * 1024 * 1024


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


def _range(*args: int) -> range:
    steps = safe_range(*args)
    BUDGET.get().take(len(steps))
    return steps


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every loop budgeted and nothing built too big
    (`node.text.template_guard`)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return guard(super()._parse(source, name, filename))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _refuse(binop_problem(operator, left, right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _refuse(call_problem(__obj, args))
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            named = args[0] if is_map and args and isinstance(args[0], Mapping) else kwargs
            _refuse(format_problem(fmt, () if is_map else args, named))
            return wrapped(*args, **kwargs)

        return checked


def _refuse(problem: str | None) -> None:
    if problem:
        raise SecurityError(f"the template builds {problem}")


def _environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols], autoescape=False
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["range"] = _range
    env.globals.pop("lipsum", None)  # seconds of CPU for one call, and no template needs it
    env.filters.update(FILTERS)
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
        budget = BUDGET.set(Budget())
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
            MemoryError,
        ) as exc:
            raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from None
        finally:
            BUDGET.reset(budget)
        return "".join(parts)
