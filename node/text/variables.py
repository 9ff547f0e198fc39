"""The variables a request's own fields give a chat template (no Jinja import, so
routes that only check a body stay light)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
