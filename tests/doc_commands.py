"""What a shell example names: its `meshgate` command lines, and paths in this checkout.

An example that is only checked for syntax (a node started on another machine, a
rolling restart, `kubectl apply -f deploy/...`) still names flags, subcommands and
files; the docs test parses its command lines with the real `meshgate` parser
(`refusal`) and looks for its files, so that a renamed flag or file breaks it too.
A word `...` stands for "more flags" in the documents and is left out.
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
# A relative path into the checkout: not part of a URL, an absolute path or a variable.
TOP = r"(?:scripts|bench|deploy|docs|node|mesh|tests)"
REPO_PATH = re.compile(rf"(?<![\w./$:-])({TOP}/[\w./@-]*)")
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


def repository_paths(text: str) -> list[str]:
    """The paths into the checkout that `text` names (`deploy/kubernetes/pdb.yaml`)."""
    return REPO_PATH.findall(text)
