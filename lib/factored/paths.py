"""Where the project lives and where its outputs go: one answer for every entry point (notebooks, `make`, the
command lines, sweeps), and what every command line sets up first. Pure Python, so that light processes (sweep
workers) import it at no cost."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # this checkout: lib/factored/paths.py -> the project folder
NOTEBOOKS_DIR = ROOT / "notebooks"
SWEEPS_DIR = ROOT / "params" / "sweeps"


def outputs_dir() -> Path:
    """Where runs and sweeps are written, as an absolute path: FACTORED_OUTPUTS if set (a relative path is taken
    from the working folder), else outputs/ at the root of this checkout. ValueError, in one line, if it is a file,
    a broken symbolic link (a loop, or one to nothing) or lies inside one (checked before anything is written)."""
    env = os.environ.get("FACTORED_OUTPUTS")
    path = Path(env).expanduser().absolute() if env else ROOT / "outputs"
    problem = next(((p, what) for p in (path, *path.parents) if (what := _not_a_folder(p))), None)
    if problem is not None:
        source = f"FACTORED_OUTPUTS={env}" if env else "the default outputs folder"
        source += f" ({path})" if str(path) != env else ""
        taken, what = problem
        inside = f"the file {taken}" if what == "a file" else f"{taken}, {what}"
        where = f"is {what}" if taken == path else f"lies inside {inside}"
        raise ValueError(f"{source} cannot be the outputs folder: {where}; set FACTORED_OUTPUTS to a folder")
    return path


def _not_a_folder(path: Path) -> str | None:
    """What `path` is if it exists and no folder can be written under it: a file, a symbolic link in a loop, or
    one to nothing (a dangling link, where creating the folder fails with a misleading "File exists"); None for
    a folder or a path that does not exist yet."""
    if path.is_symlink():
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                return "a symbolic link in a loop (it leads back to itself)"
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
    return "a file" if path.exists() and not path.is_dir() else None


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


def restore_ctrl_c() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt in this process however it was started: a script's background
    job (`python -m factored.train ... &`) inherits an ignored SIGINT, which Python keeps ignoring. Command lines
    call it in their `__main__` only, so that main() called from Python keeps its caller's handlers. (The sweep
    runner installs a handler of its own for SIGINT and SIGTERM: `sweep._stop_on_signals`.)"""
    signal.signal(signal.SIGINT, signal.default_int_handler)
