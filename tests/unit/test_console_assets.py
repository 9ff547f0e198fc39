"""The console's files: the vendored libraries are the pinned releases, unmodified; the
index serves only what is under static/ (no traversal, no symlink out); the page has
nothing inline and never inserts markup from strings."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from node.console import assets
from node.console.assets import STATIC, index, lookup

ROOT = Path(__file__).resolve().parents[2]
VENDOR = STATIC / "vendor"
OWN_SCRIPTS = [p for p in STATIC.rglob("*.js") if VENDOR not in p.parents]


def test_every_vendored_file_is_the_pinned_release() -> None:
    versions = json.loads((VENDOR / "VERSIONS.json").read_text())
    shipped = {p.name for p in VENDOR.iterdir()} - {"VERSIONS.json"}
    assert shipped == set(versions), "every vendored file, and only those, is listed"
    for name, entry in versions.items():
        assert set(entry) == {"package", "version", "path_in_package", "sha256"}, name
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} differs from {entry['package']}'s release"
    assert versions["htm-preact-standalone.module.js"]["version"] == "3.1.1"
    assert versions["uPlot.esm.js"]["version"].startswith("1.6.")


def test_the_index_holds_only_files_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "lib" / "a.js").write_text("export {};")
    (root / "notes.md").write_text("not a served type")
    (root / ".hidden.js").write_text("a dotfile")
    secret = tmp_path / "secret.js"
    secret.write_text("outside the root")
    (root / "out.js").symlink_to(secret)  # a symlink that leads out
    (root / "dir-out").symlink_to(tmp_path)
    (root / "in.js").symlink_to(root / "lib" / "a.js")  # one that stays inside
    files = index(root)
    assert sorted(files) == ["in.js", "index.html", "lib/a.js"]
    assert files["lib/a.js"].content_type == "text/javascript; charset=utf-8"
    assert lookup(files, "") is files["index.html"]
    for path in (
        "../secret.js",
        "lib/../../secret.js",
        "%2e%2e/secret.js",
        "/etc/passwd",
        str(secret),
        "out.js",
        "dir-out/secret.js",
        "lib",
        "lib/",
        "lib\\a.js",
        "a" * (assets.MAX_PATH_CHARS + 1),
    ):
        assert lookup(files, path) is None, path


def test_the_shipped_files_have_their_types_and_are_in_the_package_data() -> None:
    files = assets.shipped()
    for name in ("index.html", "app.js", "app.css", "lib/api.js", "views/index.js"):
        assert name in files, name
    assert all(
        a.content_type.startswith("text/javascript") for n, a in files.items() if n.endswith(".js")
    )
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["node.console"]
    covered = {str(Path("static", name).parent / "*") for name in files}
    assert covered <= set(patterns), "pyproject's package-data must ship every console file"


def test_the_page_has_nothing_inline_and_inserts_no_markup() -> None:
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script type="module" src="app.js">']
    assert "<style" not in page and "style=" not in page and " on" not in page.lower()
    for script in OWN_SCRIPTS:
        text = script.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert banned not in text, f"{script.name} uses {banned}"
        assert "dangerouslySetInnerHTML" not in text, script.name
        assert "style=" not in text, f"{script.name}: an inline style (CSP refuses it)"
        assert "?token=" not in text and "localStorage" not in text, script.name
