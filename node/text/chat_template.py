"""Chat templates rendered the way `transformers` renders them, in Jinja's sandbox.

The environment matches `transformers`' own (trim_blocks, lstrip_blocks, loop
controls, a `tojson` that keeps non-ASCII and HTML as they are, `raise_exception`,
`strftime_now`), so a model's template gives the same prompt here as there. The
immutable sandbox refuses unsafe attributes (`__class__`, `__mro__`, ...) and
changes to the arguments; the output size is bounded while it renders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_CHARS = 256 * 1024
MAX_RENDERED_CHARS = 4 * 1024 * 1024


class ChatTemplateError(ValueError):
    """The template could not be compiled or rendered; the message says why."""


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


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols], autoescape=False
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
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
        return "".join(parts)
