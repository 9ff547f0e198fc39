"""The container image recipe (`Dockerfile`): linted here, built where a builder runs.

Without a container builder the Dockerfile is read instruction by instruction, and the
wheel it installs is built from this checkout, installed into a fresh virtualenv, and
run: its `meshgate --version` must be `node.__version__`, and `meshgate serve --help`
must import every module a node loads.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

import node
from node.config import OPTIONS
from node.config.sections import Serving

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
LABEL_TEMPLATE = '{{index .Config.Labels "org.opencontainers.image.version"}}'


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD."""
        return json.loads(self.args[self.args.index("[") :])  # type: ignore[no-any-return]


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    out = []
    for line in joined:
        keyword, _, args = line.strip().partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def stages(steps: list[Instruction]) -> list[list[Instruction]]:
    """The build stages, each from its FROM on (global ARGs before the first are dropped)."""
    found: list[list[Instruction]] = []
    for step in steps:
        if step.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(step)
    return found


def assignments(steps: list[Instruction], keyword: str) -> dict[str, str]:
    """The KEY=value pairs of every ENV (or LABEL) in the steps, quotes removed."""
    pairs: dict[str, str] = {}
    for step in steps:
        if step.keyword == keyword:
            pairs.update(word.split("=", 1) for word in shlex.split(step.args))  # type: ignore[misc]
    return pairs


def test_the_dockerfile_builds_wheels_then_installs_only_them() -> None:
    steps = instructions(DOCKERFILE.read_text())
    builder, final = stages(steps)
    assert builder[0].args.endswith(" AS builder")
    assert any(s.keyword == "RUN" and "pip wheel" in s.args for s in builder)
    # the base image: a slim Python, named once (the global ARG both stages start FROM)
    base = next(s.args for s in steps if s.keyword == "ARG" and s.args.startswith("PYTHON_IMAGE="))
    assert base.split("=", 1)[1].startswith("python:3.") and base.endswith("-slim")
    assert final[0].args == "${PYTHON_IMAGE}"
    assert {s.args.split()[0] for s in final if s.keyword == "COPY"} == {"--from=builder"}
    installs = [s.args for s in final if s.keyword == "RUN" and "pip install" in s.args]
    assert len(installs) == 1 and "--no-index" in installs[0]


def test_the_image_runs_meshgate_serve_as_a_user_with_its_data_on_a_volume() -> None:
    final = stages(instructions(DOCKERFILE.read_text()))[-1]
    users = [s.args for s in final if s.keyword == "USER"]
    assert len(users) == 1 and users[0].split(":")[0] not in ("root", "0")
    entrypoint = [s for s in final if s.keyword == "ENTRYPOINT"]
    assert [e.exec_form() for e in entrypoint] == [["meshgate", "serve"]]
    assert not [s for s in final if s.keyword == "CMD"]  # no flag but from MESHGATE_* env
    env = assignments(final, "ENV")
    settings = {opt.env for opt in OPTIONS}
    assert {name for name in env if name.startswith("MESHGATE_")} <= settings
    assert env["MESHGATE_DATA_DIR"] == "/data"
    assert [s.args for s in final if s.keyword == "VOLUME"] == ["/data"]
    port = str(Serving.port)  # the --port default
    assert env["MESHGATE_PORT"] == port
    exposed = next(s.args.split() for s in final if s.keyword == "EXPOSE")
    assert exposed[0] == port
    checks = [s for s in final if s.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    probe = checks[0].exec_form()
    assert probe[:2] == ["python", "-c"] and "/liveness" in probe[2] and f"'{port}'" in probe[2]
    compile(probe[2], "HEALTHCHECK", "exec")  # valid Python, not just a string


def test_the_version_label_comes_from_a_build_arg() -> None:
    builder, final = stages(instructions(DOCKERFILE.read_text()))
    for stage in (builder, final):
        assert any(s.keyword == "ARG" and s.args == "VERSION" for s in stage)
    labels = assignments(final, "LABEL")
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    # the builder refuses a VERSION other than node.__version__ (run in the wheel test)
    assert any("node.__version__" in s.args and "$VERSION" in s.args for s in builder)


def build_context() -> set[str]:
    """What the builder stage copies in: the wheel's sources."""
    builder = stages(instructions(DOCKERFILE.read_text()))[0]
    return {word for s in builder if s.keyword == "COPY" for word in s.args.split()[:-1]}


def test_dockerignore_keeps_everything_but_the_wheel_sources_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    kept = [line[1:] for line in lines if line.startswith("!")]
    assert lines.index("*") < lines.index("!" + kept[0])  # all out, then what is copied
    assert set(kept) == build_context()


def test_the_wheel_the_image_installs_runs(tmp_path: Path) -> None:
    # Built the way the builder stage builds it: from what it copies in, not the checkout.
    source = tmp_path / "src"
    for name in build_context():
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", wheels, source],
        check=True,
        timeout=120,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    assert wheel.name.startswith(f"meshgate-{node.__version__}-")
    # A fresh virtualenv: the wheel with no dependencies, which it borrows from the test
    # virtualenv's site-packages (a plain path, so its editable meshgate is not loaded).
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )

    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    site = Path(purelib.stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*pip, "--python", python, "install", "--no-deps", "--no-index", wheel],
        check=True,
        timeout=120,
        capture_output=True,
    )
    meshgate = fresh / "bin" / "meshgate"
    version = run(meshgate, "--version")
    assert version.stdout == f"meshgate {node.__version__}\n", version.stderr
    where = run(python, "-c", "import node; print(node.__file__)")
    assert where.stdout.startswith(str(site)), where  # the wheel's node, not the checkout's
    helped = run(meshgate, "serve", "--help")  # imports the node's every part
    assert helped.returncode == 0, helped.stderr
    assert "--data-dir" in helped.stdout
    # the builder's version check, run as its shell runs it: a label cannot lie
    builder = stages(instructions(DOCKERFILE.read_text()))[0]
    check = next(s.args for s in builder if s.keyword == "RUN" and "node.__version__" in s.args)
    for given, status in ((node.__version__, 0), ("9.9.9", 1), ("", 1)):
        shell = {"PATH": f"{fresh / 'bin'}:/usr/bin:/bin", "VERSION": given}
        ran = subprocess.run(["sh", "-c", check], cwd=source, env=shell, capture_output=True)
        assert ran.returncode == status, (given, ran.stderr)


def _builder() -> str | None:
    """A container builder that can build here (a docker CLI needs its daemon)."""
    if shutil.which("podman"):
        return "podman"
    if shutil.which("docker"):
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
        return "docker" if info.returncode == 0 else None
    return None


@pytest.mark.timeout(900)
@pytest.mark.skipif(_builder() is None, reason="no container builder (docker daemon, podman)")
def test_the_image_builds_and_reports_its_version() -> None:
    builder = _builder()
    assert builder is not None
    tag = f"meshgate:{node.__version__}-test"

    def output(*argv: str) -> str:
        done = subprocess.run([builder, *argv], check=True, capture_output=True, text=True)
        return done.stdout

    build = ["build", "-t", tag, "--build-arg", f"VERSION={node.__version__}", str(ROOT)]
    subprocess.run([builder, *build], check=True, timeout=900)
    assert output("image", "inspect", tag, "--format", LABEL_TEMPLATE).strip() == node.__version__
    in_image = ["run", "--rm", "--entrypoint"]
    assert output(*in_image, "meshgate", tag, "--version") == f"meshgate {node.__version__}\n"
    assert output(*in_image, "id", tag, "-u").strip() == "10001"
