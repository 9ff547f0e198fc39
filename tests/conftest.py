"""Settings for every test run."""

from __future__ import annotations

import compileall
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the packages once, before any test starts a node process.

    Each `meshgate serve` a test starts imports ~150 first-party modules. Where a
    module has no up-to-date bytecode (a fresh checkout, a file just edited) and
    PYTHONDONTWRITEBYTECODE is set, as it is in many CI images, every process compiles
    it from source again: ~0.6 s of CPU a node start when none has any. Bytecode goes
    where Python keeps it (`__pycache__`, ignored by git); up-to-date files are skipped."""
    for package in ("node", "mesh"):
        compileall.compile_dir(ROOT / package, quiet=1)
