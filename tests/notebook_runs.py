"""Run a notebook as a user runs it: `papermill <name>.ipynb out.ipynb -p ...` from the notebooks folder."""

from pathlib import Path

import nbformat
import papermill

from factored.paths import NOTEBOOKS_DIR as NOTEBOOKS
from factored.render import KERNEL_START_TIMEOUT


def execute(name: str, out: Path, **parameters):
    """Execute notebooks/<name>.ipynb into `out` with these parameters; the executed notebook."""
    return papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        parameters=parameters,
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
        start_timeout=KERNEL_START_TIMEOUT,
    )


def printed(nb) -> str:
    """Everything the notebook's code cells printed, in order."""
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def run_folders(outputs: Path) -> list[str]:
    """The run folders a notebook left in this outputs folder."""
    return sorted(p.name for p in (outputs / "runs").iterdir()) if (outputs / "runs").exists() else []


def checking_cells(name: str) -> tuple[str, str]:
    """The source of a notebook's `parameters` cell and of the code cell right after it (the checking cell)."""
    cells = [c for c in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).cells if c.cell_type == "code"]
    i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    return cells[i].source, cells[i + 1].source


def run_checks(name: str, **injected) -> dict:
    """The notebook's parameters cell, then papermill's assignments (`injected`), then its checking cell, in one
    namespace, in this process (what a kernel would run first, without starting one); the namespace."""
    parameters_cell, checking_cell = checking_cells(name)
    namespace: dict = {}
    exec(compile(parameters_cell, f"{name}: parameters", "exec"), namespace)
    namespace.update(injected)
    exec(compile(checking_cell, f"{name}: checking cell", "exec"), namespace)
    return namespace
