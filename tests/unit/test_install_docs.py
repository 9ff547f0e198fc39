"""What the documents tell an operator to install and run exists: no registry package that
is not published, the image the Dockerfile builds, the order in which a voter is added."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import node
from node.cli import main

ROOT = Path(__file__).resolve().parents[2]
# `pip install meshgate` (any options first, extras allowed) names the registry's package;
# a path (`/path/to/meshgate`, `./dist/meshgate-*.whl`) does not.
FROM_REGISTRY = re.compile(r"pip3? install(?:\s+-\S+)*\s+['\"]?meshgate(?![\w.*/-])")


def documents() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "docs").rglob("*.md"))]
    return found + sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())


def test_the_pattern_tells_the_registry_from_a_path() -> None:
    assert FROM_REGISTRY.search("pip install meshgate")
    assert FROM_REGISTRY.search("/opt/venv/bin/pip install -U 'meshgate[test]' && x")
    assert FROM_REGISTRY.search("build it (`pip install meshgate`, or ...)")
    assert not FROM_REGISTRY.search("pip install /path/to/meshgate")
    assert not FROM_REGISTRY.search("pip install ./dist/meshgate-*.whl")


def test_no_document_installs_meshgate_from_a_registry() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in documents()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if FROM_REGISTRY.search(line)
    ]
    assert not offenders, "meshgate is not published:\n" + "\n".join(offenders)


def test_the_kubernetes_manifests_run_the_image_of_this_version() -> None:
    manifests = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    images = [
        match.group(1)
        for path in manifests
        for match in re.finditer(r"^\s*image:\s*(\S+)", path.read_text(), re.MULTILINE)
    ]
    assert len(images) >= 2  # the StatefulSet and the rolling-restart Job
    assert set(images) == {f"meshgate:{node.__version__}"}


def test_add_member_help_says_to_start_the_node_first_with_the_voters_as_peers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["cluster", "add-member", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "Start the new node first" in shown
    assert "--mesh-peers set to the Raft addresses of the current voters" in shown
    assert shown.index("Start the new node first") < shown.index("Then run add-member")


# `tests/cluster/test_mesh.py::test_a_wiped_node_rejoins_from_a_snapshot`, or a file alone
NAMED_TEST = re.compile(r"\b(tests/[\w/]+\.py)(?:::(\w+))?")


def _named_tests(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in NAMED_TEST.finditer(text)]


def _defines(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in tree.body
    )


def test_the_pattern_finds_files_and_functions() -> None:
    text = "run by `tests/cluster/test_mesh.py::test_x` and tests/unit/test_y.py, not tests/z"
    assert _named_tests(text) == [
        ("tests/cluster/test_mesh.py", "test_x"),
        ("tests/unit/test_y.py", None),
    ]


def test_every_test_the_operations_guide_names_exists() -> None:
    named = _named_tests((ROOT / "docs/operations.md").read_text())
    assert len(named) >= 10  # the day-2 procedures name their tests
    missing = [
        f"{path}::{name}" if name else path
        for path, name in named
        if not (ROOT / path).is_file() or (name is not None and not _defines(ROOT / path, name))
    ]
    assert not missing, "docs/operations.md names tests that do not exist: " + ", ".join(missing)


def test_every_day_2_procedure_names_the_test_that_runs_it() -> None:
    text = (ROOT / "docs/operations.md").read_text()
    day2 = text.split("\n## Day-2 procedures\n", 1)[1]
    sections = re.split(r"\n### ", day2)[1:]
    assert len(sections) >= 6
    untested = [
        s.splitlines()[0]
        for s in sections
        if not any(name for _, name in _named_tests(s)) or "Tested:" not in s
    ]
    assert not untested, "day-2 procedures without a named test: " + ", ".join(untested)
