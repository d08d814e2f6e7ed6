"""The library's layers: imports point one way (processes -> data -> model -> training -> run store -> analyses)."""

import ast
from pathlib import Path

import factored

PACKAGE = Path(factored.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """The factored modules a file imports anywhere in it (top level or inside a function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .runs import Run
                names.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import runs, probing
                names.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "factored":
                parts = node.module.split(".")
                names.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("factored."))
    return names & {p.stem for p in PACKAGE.glob("*.py")}


def import_graph() -> dict[str, set[str]]:
    return {p.stem: imported_modules(p) - {p.stem} for p in PACKAGE.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph is acyclic (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_library_import_graph_has_no_cycle():
    graph = import_graph()
    assert {"runs", "models"} <= set(graph["train"]) and "train" not in graph["probing"]  # the graph is real
    assert find_cycle(graph) == []


def test_training_and_the_run_store_sit_below_the_analyses():
    graph = import_graph()
    for low in ("models", "runs", "train", "sampling", "products"):
        assert not graph[low] & {"probing", "run_analysis", "tables", "across_runs", "plots", "discovery"}, low


def test_the_numpy_analyses_import_no_torch():
    import subprocess
    import sys

    code = "import sys, factored.analysis, factored.discovery, factored.discovery_eval, factored.readout; "
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    for module in ("analysis", "discovery", "discovery_eval", "readout"):
        assert not import_graph()[module] & {"products", "sampling", "models", "probing", "runs", "train"}, module
