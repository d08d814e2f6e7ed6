"""Where the project lives and where its outputs go: one answer for every entry point (notebooks, `make`, the
command lines, sweeps). Pure Python, so that light processes (sweep workers) import it at no cost."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # this checkout: lib/factored/paths.py -> the project folder
NOTEBOOKS_DIR = ROOT / "notebooks"
SWEEPS_DIR = ROOT / "params" / "sweeps"


def outputs_dir() -> Path:
    """Where runs and sweeps are written, as an absolute path: FACTORED_OUTPUTS if set (a relative path is taken
    from the working folder), else outputs/ at the root of this checkout. ValueError, in one line, if it is a file
    or lies inside one (checked before anything is written)."""
    env = os.environ.get("FACTORED_OUTPUTS")
    path = Path(env).expanduser().absolute() if env else ROOT / "outputs"
    taken = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if taken is not None:
        source = f"FACTORED_OUTPUTS={env}" if env else "the default outputs folder"
        source += f" ({path})" if str(path) != env else ""
        where = "is a file" if taken == path else f"lies inside the file {taken}"
        raise ValueError(f"{source} cannot be the outputs folder: {where}; set FACTORED_OUTPUTS to a folder")
    return path


def pin_outputs_dir() -> Path:
    """Resolve the outputs folder once, in the process the user started, and put its absolute path back into
    FACTORED_OUTPUTS: every process started from here (a notebook's kernel works in notebooks/, a sweep's points
    run in processes of their own) then writes to the same folder. Entry points call it first. Returns it."""
    path = outputs_dir()
    if os.environ.get("FACTORED_OUTPUTS"):
        os.environ["FACTORED_OUTPUTS"] = str(path)
    return path


def relative(path: Path) -> str:
    """`path` relative to the project root when it lies inside it (what notebooks print), else as it is."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
