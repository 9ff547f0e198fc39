"""The documents' examples are read as the docs test expects: marks, indents, lines,
and the `meshgate` command lines in them."""

from __future__ import annotations

from pathlib import Path

from tests.doc_blocks import blocks, documents
from tests.doc_commands import meshgate_commands, refusal, repository_paths
from tests.support import MESH_SECRET, strong

DOC = """\
# A page

<!-- example: run -->
```sh
curl "$GW/health"
```

1. In a list:
   <!-- example: syntax (kubectl) -->
   ```bash
   kubectl get pods
     --all
   ```

```
a diagram
```

```json
{"a": 1}
```
"""


def read(tmp_path: Path, text: str) -> tuple[list[tuple[int, str, str | None, str]], list[str]]:
    page = tmp_path / "page.md"
    page.write_text(text)
    found, problems = blocks(page, tmp_path)
    return [(b.line, b.lang, b.kind, b.text) for b in found], problems


def test_each_block_with_its_fence_line_mark_and_dedented_text(tmp_path: Path) -> None:
    found, problems = read(tmp_path, DOC)
    assert problems == []
    assert found == [
        (4, "sh", "run", 'curl "$GW/health"\n'),
        (10, "bash", "syntax", "kubectl get pods\n  --all\n"),
        (15, "", None, "a diagram\n"),
        (19, "json", None, '{"a": 1}\n'),
    ]


def test_an_unmarked_shell_block_is_a_problem_naming_its_line(tmp_path: Path) -> None:
    _, problems = read(tmp_path, "text\n\n```sh\nls\n```\n")
    assert problems == ["page.md:3: a shell example with no <!-- example: KIND --> line above"]


def test_a_mark_of_another_kind_or_without_a_shell_block_is_a_problem(tmp_path: Path) -> None:
    text = "<!-- example: runn -->\n```sh\nls\n```\n<!-- example: run -->\n\n```json\n{}\n```\n"
    _, problems = read(tmp_path, text)
    assert problems == [
        "page.md:2: unknown example kind 'runn' (one of run, syntax, demo)",
        "page.md:5: an example mark with no fence right after it",
    ]
    _, problems = read(tmp_path, "<!-- example: syntax -->\n```toml\na = 1\n```\n")
    assert problems == ["page.md:2: an example mark on a toml block"]


def test_the_documents_read_are_the_readme_docs_and_deploy_readmes() -> None:
    names = {str(path.relative_to(documents()[0].parent)) for path in documents()}
    assert {"README.md", "docs/architecture.md", "deploy/kubernetes/README.md"} <= names


def test_meshgate_command_lines_are_found_after_continuations_and_separators() -> None:
    text = (
        'export MESHGATE_ADMIN_TOKEN="$ADMIN_KEY"   # meshgate reads it\n'
        ".venv/bin/meshgate serve --port 30000 \\\n  --mesh-peers gw2.internal:30100 ...\n"
        'X=1 meshgate cluster status --url "$GW" | tee out; (meshgate demo)  # meshgate x\n'
        "kubectl -n meshgate get pods\n"
    )
    assert meshgate_commands(text) == [
        ["serve", "--port", "30000", "--mesh-peers", "gw2.internal:30100"],
        ["cluster", "status", "--url", "$GW"],
        ["demo"],
    ]


def test_a_command_line_is_refused_as_meshgate_refuses_it() -> None:
    secrets = {"MESHGATE_API_KEY": strong("doc-lines"), "MESHGATE_MESH_SECRET": MESH_SECRET}
    assert refusal(["cluster", "status", "--url", "$GW"], secrets) is None
    assert refusal(["serve", "--host", "0.0.0.0", "--policy", "cache_aware"], secrets) is None
    assert "unrecognized arguments: --nope" in str(refusal(["cluster", "status", "--nope"], {}))
    assert "--policy" in str(refusal(["serve", "--policy", "nope"], secrets))
    assert "--host" in str(refusal(["serve", "--host", "0.0.0.0"], {}))  # no credentials


def test_paths_into_the_checkout_are_found_but_not_urls_or_absolute_paths() -> None:
    text = (
        "kubectl apply -f deploy/kubernetes/pdb.yaml  # see docs/operations.md\n"
        "(cd deploy/kubernetes && .venv/bin/python bench/x.py)\n"
        "curl http://gw1/docs/a --data-dir /var/lib/meshgate/docs/b $HOME/tests/c\n"
    )
    assert repository_paths(text) == [
        "deploy/kubernetes/pdb.yaml",
        "docs/operations.md",
        "deploy/kubernetes",
        "bench/x.py",  # not .venv/: scripts/bootstrap.sh makes it
    ]
