"""The version is written once, in `node.__version__`; everything else reads it."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import node
from node.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_meshgate_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"meshgate {node.__version__}\n"


def test_version_imports_no_command_module() -> None:
    probe = (
        "import sys\nfrom node.cli import main\ntry:\n    main(['--version'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('node.serve', 'node.app', 'node.demo') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"


def test_the_package_metadata_takes_the_version_from_node() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]  # no second copy to forget
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "node.__version__"}
    assert importlib.metadata.version("meshgate") == node.__version__
