"""Settings for every test run."""

from __future__ import annotations

import compileall
import functools
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from node.localmesh import process

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
    _children_without_ca_bundle()


def _children_without_ca_bundle() -> None:
    """Give every `meshgate` child process a test starts an empty CA bundle.

    aiohttp builds two TLS client contexts when it is imported, each loading the
    system's CA certificates: ~0.1 s of CPU in every node and worker start (measured),
    and a run starts about a thousand. No test process speaks TLS (workers, peers and
    tokenizer sources are plain HTTP on loopback, never the network), so an empty
    bundle changes nothing else. Only the children get it: the test process's own
    tools (pip building a wheel, say) keep the real one."""
    empty = Path(tempfile.gettempdir()) / "meshgate-tests-empty-ca.pem"
    empty.touch()
    real = process.child_environment

    @functools.wraps(real)
    def without_ca(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        return real({"SSL_CERT_FILE": str(empty), **(overrides or {})})

    process.child_environment = without_ca
