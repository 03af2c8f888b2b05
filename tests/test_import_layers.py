"""The package's imports run one way: each module imports only modules of its own layer or
the layers below (docs/architecture.md draws them), there is no import cycle, even through
imports inside functions, and every module imports on its own, whichever is imported first."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "unlearnbench"

# Lowest first. A module's layer is that of the longest prefix listed.
LAYERS = [
    ("foundations", ["version", "errors", "params", "plugins", "registry", "specs", "cache",
                     "train", "store", "stats"]),
    ("data, models, tasks, benchmarks", ["data", "models", "tasks", "benchmarks"]),
    ("methods, metrics", ["methods", "metrics"]),
    ("unlearning", ["unlearning"]),
    ("requests", ["requests"]),
    ("scenario building", ["scenarios", "spec_names"]),
    ("sweeps", ["sweep"]),
    ("studies", ["studies"]),
    ("deletion", ["deletion"]),
    ("report, testing, api", ["report", "testing", "api"]),
    ("command line", ["cli"]),
]
# Siblings in one layer that must not import each other, either way.
INDEPENDENT = [("methods", "metrics")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, anywhere in it (inside functions too); a name
    imported from a package counts as its submodule where one of that name exists."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("unlearnbench"):
                continue
            found.add(target)
            for alias in node.names:
                sub = PACKAGE.parent / Path(*f"{target}.{alias.name}".split("."))
                if sub.with_suffix(".py").is_file() or sub.is_dir():
                    found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("unlearnbench")}
    return found - {name}


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int | None:
    """The layer index of ``module`` (None for the package itself, the lazy facade)."""
    rest = module.split(".")[1:]
    for depth in range(len(rest), 0, -1):
        prefix = ".".join(rest[:depth])
        for index, (_, members) in enumerate(LAYERS):
            if prefix in members:
                return index
    return None


def test_every_module_has_a_layer():
    assert [m for m in GRAPH if m != "unlearnbench" and layer(m) is None] == []


def test_imports_go_down_the_layers_only():
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
              for m, targets in GRAPH.items() if layer(m) is not None
              for t in targets if layer(t) is not None and layer(t) > layer(m)]
    assert upward == []


def test_independent_siblings_do_not_import_each_other():
    def top(module):
        return module.split(".")[1] if "." in module else ""
    crossing = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
                for a, b in INDEPENDENT if {top(m), top(t)} == {a, b}]
    assert crossing == []


def test_only_the_package_and_the_command_line_import_the_api_facade():
    assert sorted(m for m, targets in GRAPH.items() if "unlearnbench.api" in targets
                  and m not in ("unlearnbench", "unlearnbench.cli")
                  and not m.startswith("unlearnbench.cli.")) == []


def test_no_import_cycles():
    # Tarjan's strongly connected components; a package importing its own submodules
    # (an ``__init__`` re-exporting them) is an edge like any other.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in GRAPH:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in GRAPH:
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_graph_sees_imports_inside_functions():
    # the check above is only as good as this: an import in a function body is an edge
    assert "unlearnbench.studies.tune" in GRAPH["unlearnbench.cli.run"]
    assert layer("unlearnbench.sweep.executors.pool") > layer("unlearnbench.scenarios")


@pytest.mark.slow
def test_every_module_imports_first_on_its_own():
    # One process (torch loads once): forget every unlearnbench module, import one; an order
    # that only works when another module was imported first fails here.
    script = (
        "import importlib, sys\n"
        f"names = {sorted(GRAPH)!r}\n"
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'unlearnbench']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ""
