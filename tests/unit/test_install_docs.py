"""What the documents tell an operator to install and run exists: no registry package that
is not published, the image the Dockerfile builds, the order in which a voter is added."""

from __future__ import annotations

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
