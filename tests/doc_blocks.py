"""The fenced code blocks of the documents, and how each shell example is to be checked.

Every shell block (```sh, ```bash, ```shell) in README.md, docs/*.md, deploy/README.md
and deploy/*/README.md carries a mark on the line just before its fence, which
tests/integration/test_docs_examples.py obeys:

    <!-- example: run -->        run with `bash -euo pipefail` against a real local mesh
    <!-- example: syntax -->     checked with `bash -n` only: it needs what a test cannot
                                 have (docker, kubectl, systemd, another machine) or it
                                 starts a server, stops the mesh, runs the test suite
    <!-- example: demo -->       a call `meshgate demo` prints, word for word (the demo's
                                 calls are run by tests/integration/test_demo_calls.py)

Anything after the kind is a reason for the reader: `<!-- example: syntax (kubectl) -->`.
Whatever the kind, the block's `meshgate` lines must parse and the files of the
checkout it names must exist (tests/doc_commands.py).
A shell block without a mark, a mark of another kind, or a mark with no shell block
right after it fails the test, so that every new example is classified.

JSON, TOML and Python blocks are parsed; other blocks (diagrams, YAML) are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL = frozenset({"sh", "bash", "shell"})
KINDS = ("run", "syntax", "demo")
MARK = re.compile(r"^\s*<!--\s*example:\s*([\w-]+)(?:\s.*)?-->\s*$")
FENCE = re.compile(r"^(\s*)```\s*(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int  # the opening fence's, from 1
    lang: str  # the fence's info string ("" when none)
    kind: str | None  # the mark's kind, None when unmarked
    text: str  # the body, dedented by the fence's indent

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def documents(root: Path = ROOT) -> list[Path]:
    """The documents whose examples are checked, in a stable order."""
    deploy = [root / "deploy/README.md", *sorted((root / "deploy").glob("*/README.md"))]
    found = [root / "README.md", *sorted((root / "docs").glob("*.md")), *deploy]
    return [path for path in found if path.is_file()]


def blocks(path: Path, root: Path = ROOT) -> tuple[list[Block], list[str]]:
    """Every fenced block of `path`, and the problems of its marks (file:line: what)."""
    name = str(path.relative_to(root))
    lines = path.read_text().splitlines()
    found: list[Block] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, lang = fence.group(1), fence.group(2).lower()
        end = _closing(lines, i + 1, indent)
        body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
        mark = MARK.match(lines[i - 1]) if i > 0 else None
        kind = mark.group(1) if mark else None
        where = f"{name}:{i + 1}"
        if lang in SHELL and kind is None:
            problems.append(f"{where}: a shell example with no <!-- example: KIND --> line above")
        elif kind is not None and kind not in KINDS:
            problems.append(f"{where}: unknown example kind {kind!r} (one of {', '.join(KINDS)})")
        elif kind is not None and lang not in SHELL:
            problems.append(f"{where}: an example mark on a {lang or 'plain'} block")
        found.append(Block(name, i + 1, lang, kind, "\n".join(body) + "\n"))
        i = end + 1
    fenced = {b.line - 1 for b in found}
    for number, line in enumerate(lines, 1):
        if MARK.match(line) and number not in fenced:
            problems.append(f"{name}:{number}: an example mark with no fence right after it")
    return found, problems


def _closing(lines: list[str], start: int, indent: str) -> int:
    """The index of the fence that closes a block opened with `indent` (or the end)."""
    for j in range(start, len(lines)):
        if lines[j].strip() == "```" and lines[j].startswith(indent):
            return j
    return len(lines)
