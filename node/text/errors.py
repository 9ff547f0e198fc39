"""Errors of the text code, importable without loading jinja2 or tokenizers."""

from __future__ import annotations


class ChatTemplateError(ValueError):
    """The template could not be compiled or rendered; the message says why."""
