"""Where the project lives and where its outputs go: one answer for every entry point (notebooks, `make`, the
command lines, sweeps). Pure Python, so that light processes (sweep workers) import it at no cost."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # this checkout: lib/factored/paths.py -> the project folder
NOTEBOOKS_DIR = ROOT / "notebooks"
SWEEPS_DIR = ROOT / "params" / "sweeps"


def outputs_dir() -> Path:
    """FACTORED_OUTPUTS if set, else outputs/ at the root of this checkout."""
    env = os.environ.get("FACTORED_OUTPUTS")
    return Path(env) if env else ROOT / "outputs"


def relative(path: Path) -> str:
    """`path` relative to the project root when it lies inside it (what notebooks print), else as it is."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
