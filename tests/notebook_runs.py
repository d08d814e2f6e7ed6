"""Run a notebook as a user runs it: `papermill <name>.ipynb out.ipynb -p ...` from the notebooks folder."""

from pathlib import Path

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
