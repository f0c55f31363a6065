"""The package's import graph: no cycles, and no import against the flow of data.

The layers below are docs/architecture.md's picture; a module may import modules of its own layer
or of a lower one. Every import counts, those inside functions included, so a cycle cannot hide
behind a late import.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).parent.parent
FOLDERS = {"dfdsl": "dfdsl", "dialects": "dfdsl.dialects", "lowering": "dfdsl.lowering", "sim": "dfdsl.sim",
           "examples": "dfdsl.examples"}
"""Source folder to package name (pyproject's package-dir)."""

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("dfdsl", "dfdsl.ast", "dfdsl.files", "dfdsl.diagnostics", "dfdsl.errors", "dfdsl.hardware")),
    ("IR leaves", ("dfdsl.dialects", "dfdsl.dialects.shapes")),
    ("df dialect", ("dfdsl.dialects.df",)),
    ("work", ("dfdsl.dialects.cost",)),
    ("target dialects", ("dfdsl.dialects.*",)),
    ("front end: text, AST, df", ("dfdsl.parser", "dfdsl.loader", "dfdsl.model", "dfdsl.elaborate", "dfdsl.irgen",
                                  "dfdsl.hf_import", "dfdsl.hf_configs", "dfdsl.stdlib", "dfdsl.examples")),
    ("lowering", ("dfdsl.lowering", "dfdsl.lowering.*")),
    ("simulators", ("dfdsl.sim", "dfdsl.sim.*")),
    ("reports", ("dfdsl.footprint", "dfdsl.report", "dfdsl.graph_view", "dfdsl.graph_render")),
    ("driver", ("dfdsl.targets", "dfdsl.driver", "dfdsl.universe")),
    ("studies", ("dfdsl.compare", "dfdsl.compare_view", "dfdsl.validate", "dfdsl.sweep", "dfdsl.sweep_view",
                 "dfdsl.sensitivity")),
    ("command line", ("dfdsl.cli", "dfdsl.cli.*", "dfdsl.__main__")),
)


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def layer_of(module: str) -> int:
    """The first layer with a pattern that matches (exact names are listed before wildcards)."""
    for index, (_, patterns) in enumerate(LAYERS):
        if module in patterns:
            return index
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns if "*" in p):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports (a `from package import name` counts the
    submodule `name` where there is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return {name for name in found if name in known}


def import_graph() -> nx.DiGraph:
    found = modules()
    graph = nx.DiGraph()
    for name, path in found.items():
        graph.add_node(name)
        graph.add_edges_from((name, imported) for imported in imports(path, set(found)) if imported != name)
    return graph


def test_every_module_is_in_a_layer():
    for name in modules():
        layer_of(name)


def test_the_package_has_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == []


def test_no_module_imports_against_the_flow():
    against = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
               for a, b in import_graph().edges if layer_of(b) > layer_of(a)]
    assert against == []


def test_the_check_finds_what_it_looks_for(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dfdsl.cli import main\n    from dfdsl import driver\n")
    assert imports(module, {"dfdsl.cli", "dfdsl.driver", "dfdsl"}) == {"dfdsl.cli", "dfdsl.driver"}
    assert layer_of("dfdsl.cli.run") > layer_of("dfdsl.driver") > layer_of("dfdsl.sim.timing")
    assert layer_of("dfdsl.dialects.rdu") > layer_of("dfdsl.dialects.df") > layer_of("dfdsl.dialects.shapes")
