"""The `meshgate` command lines of a shell example, as the arguments after `meshgate`.

An example that is only checked for syntax (a node started on another machine, a
rolling restart) still names flags and subcommands; the docs test parses these
with the real `meshgate` parser (`refusal`), so that a renamed flag breaks it too. A word `...`
stands for "more flags" in the documents and is left out.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Mapping
from pathlib import PurePath

from node import config
from node.cli import parser_for

# Where one command ends and the next begins.
SEPARATORS = frozenset({"|", "||", "&", "&&", ";", ";;", "(", ")"})
WORDCHARS = ":@%+,$={}[]!^"  # inside a word in a URL, an address or a variable
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MENTION = re.compile(r"(^|[\s/;|&(])meshgate(\s|$)")


def meshgate_commands(text: str) -> list[list[str]]:
    """Each `meshgate ...` command in `text`, one per line after joining continuations;
    ValueError naming the line when one that runs meshgate cannot be split."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        if not MENTION.search(line):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.wordchars += WORDCHARS
        try:
            words = list(lexer)
        except ValueError as exc:
            raise ValueError(f"{line.strip()}: {exc}") from exc
        for command in _split(words):
            while command and ASSIGNMENT.match(command[0]):
                command = command[1:]
            if command and PurePath(command[0]).name == "meshgate":
                found.append([word for word in command[1:] if word != "..."])
    return found


def _split(words: list[str]) -> list[list[str]]:
    commands: list[list[str]] = [[]]
    for word in words:
        if word in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(word)
    return commands


def refusal(argv: list[str], environ: Mapping[str, str]) -> str | None:
    """What `meshgate ARGV` says when it refuses its arguments, None when it takes them; a
    `serve` line's settings are also checked as the node checks them, reading `environ`
    for what the documents put in the environment (its secrets)."""
    parser, _ = parser_for(argv)
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            return said.getvalue()
    try:
        if args.command == "serve":
            config.load(args, environ)
    except config.ConfigError as exc:
        return str(exc)
    return None
