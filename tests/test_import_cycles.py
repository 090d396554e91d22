"""No import cycles inside csms/ or simulators/.

Two checks over the static import graph (grimp, the engine of import-linter; imports inside
functions and under ``TYPE_CHECKING`` count like any other):

* the import-linter contracts of ``pyproject.toml``: ``acyclic_siblings`` (at every level of the
  package tree, the sibling modules and subpackages import one another acyclically) and a
  ``forbidden`` one (csms.blocks and csms.services do not import csms.central, csms.server, ...);
* module by module, without exceptions: no strongly connected component of two or more modules.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("csms", "simulators")


def module_cycles(imports: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of two or more modules (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def graph_cycles(*packages: str) -> list[list[str]]:
    graph = grimp.build_graph(*packages, cache_dir=None)
    return module_cycles({m: graph.find_modules_directly_imported_by(m) for m in graph.modules})


def test_no_module_is_part_of_an_import_cycle() -> None:
    cycles = graph_cycles(*PACKAGES)
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "kept, 0 broken" in run.stdout, run.stdout[-3000:]


def test_the_check_finds_a_cycle_hidden_behind_type_checking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from cyclepkg.c import C\n")
    (pkg / "c.py").write_text("def f():\n    from cyclepkg import a\n")
    (pkg / "d.py").write_text("from cyclepkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert graph_cycles("cyclepkg") == [["cyclepkg.a", "cyclepkg.b", "cyclepkg.c"]]
    (pkg / "c.py").write_text("def f():\n    pass\n")
    assert graph_cycles("cyclepkg") == []
