"""Fail when a notebooks/NN_name.py and its paired .ipynb disagree (cell types, sources or tags), or one is missing.

Usage: python tests/check_notebook_pairs.py notebooks
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def pair_problems(folder: Path) -> list[str]:
    """One line per unpaired or out-of-sync notebook in `folder`; empty when all pairs agree."""
    problems = []
    stems = {p.stem for p in folder.glob("[0-9][0-9]_*.py")} | {p.stem for p in folder.glob("[0-9][0-9]_*.ipynb")}
    for stem in sorted(stems):
        py, ipynb = folder / f"{stem}.py", folder / f"{stem}.ipynb"
        missing = [p.name for p in (py, ipynb) if not p.exists()]
        if missing:
            problems.append(f"{stem}: missing {', '.join(missing)}")
            continue
        a, b = _cells(jupytext.read(py)), _cells(jupytext.read(ipynb))
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            problems.append(f"{stem}: .py and .ipynb differ from cell {first} on; run `make sync`")
    return problems


if __name__ == "__main__":
    problems = pair_problems(Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks"))
    print("\n".join(problems) or "all notebook pairs in sync")
    sys.exit(1 if problems else 0)
