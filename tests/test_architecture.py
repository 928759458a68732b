"""The layering that docs/architecture.md describes, checked on the source.

Every import (at module level or inside a function) of one invkit module by another is an edge;
the graph must have no cycle, and nothing below ``invkit/api.py`` may import the package's face
(``invkit/__init__.py``) or the API. The reference plugins import only invkit's public API, as
a third party would.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "invkit"
PUBLIC = {"invkit", "invkit.errors", "invkit.distributed", "invkit.progress", "invkit.evaluation"}
"""What a plugin may import: the documented public API (docs/reference/api.md)."""
TOP = {"invkit", "invkit.__main__", "invkit.api"}
"""The package's face and the layers that may use it."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The invkit modules a file imports (``from invkit import x`` counts as importing the
    package's face unless x is a submodule). Imports under ``if TYPE_CHECKING:`` are for
    annotations only and never run, so they are no edge."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "invkit"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "invkit":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(path, set(mods)) - {name} for name, path in mods.items()}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_nothing_below_the_api_imports_the_package_face_or_the_api():
    offenders = {name: sorted(deps & {"invkit", "invkit.api"})
                 for name, deps in _graph().items()
                 if name not in TOP and not name.startswith("invkit.cli")
                 and deps & {"invkit", "invkit.api"}}
    assert not offenders, offenders


def test_models_know_nothing_of_training():
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith("invkit.models"):
            assert not {d for d in deps if d.startswith("invkit.training")}, name


def test_reference_plugins_use_only_the_public_api():
    known = set(_modules())
    offenders = {}
    for path in (ROOT / "plugins").glob("invkit_*/*.py"):
        used = _imports(path, known | PUBLIC)
        bad = sorted(m for m in used if m not in PUBLIC)
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, offenders


@pytest.mark.parametrize("folder", ["invkit", "plugins"])
def test_source_files_stay_small(folder):
    """One job per file: about 450 lines at most."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 460}
    assert not long, long
