"""The import graph of `fmnist`: every import runs down the layers (docs/architecture.md) or
stays inside its own, and no module imports itself back through others. Imports inside
functions count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fmnist"

# Bottom to top; a module may import its own layer and the layers below. The longest prefix names a module's layer.
LAYERS = [
    ("base", ["fmnist.errors", "fmnist.files", "fmnist.batches", "fmnist.config", "fmnist.conf"]),
    ("images", ["fmnist.images"]),
    ("training", ["fmnist.training", "fmnist.reports"]),
    ("serving", ["fmnist.serving"]),
    ("search", ["fmnist.search"]),
    ("applications", ["fmnist.kinds", "fmnist.photos"]),
    ("commands", ["fmnist.cli", "fmnist.train", "fmnist.sweep", "fmnist.predict", "fmnist.finetune", "fmnist.report",
                  "fmnist.data", "fmnist"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The fmnist modules `name` imports (`from fmnist.x import y` is fmnist.x.y when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fmnist"):
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fmnist")}
    return found - {name}


def layer(name: str) -> int:
    matches = [(len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} is in no layer: add it to LAYERS and docs/architecture.md"
    return max(matches)[1]


GRAPH = {name: imports(name) for name in MODULES}


def test_every_import_runs_down_the_layers_or_stays_in_its_own():
    up = [f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})"
          for m, deps in sorted(GRAPH.items()) for d in sorted(deps) if layer(d) > layer(m)]
    assert not up, "imports that run up a layer:\n" + "\n".join(up)


def test_no_module_imports_itself_back():
    cycles = []

    def visit(m: str, path: list[str], done: set[str]) -> None:
        if m in path:
            cycles.append(" -> ".join(path[path.index(m):] + [m]))
            return
        if m in done:
            return
        for d in sorted(GRAPH.get(m, ())):
            visit(d, [*path, m], done)
        done.add(m)

    finished: set[str] = set()
    for m in sorted(GRAPH):
        visit(m, [], finished)
    assert not cycles, "import circles:\n" + "\n".join(cycles)

