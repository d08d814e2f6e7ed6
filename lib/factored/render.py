"""Execute one notebook with papermill without ever leaving a half-written result at its target.

    python -m factored.render notebooks/04_noise.ipynb outputs/notebooks/04_noise.ipynb -p noise 0.2

papermill writes the executed notebook as it goes, so a failing or interrupted run would overwrite a good
executed notebook in place. Here it writes `<target dir>/.<name>.partial.ipynb` and renames it over the target
only when every cell has run: a failed run leaves the target as it was and keeps the partial copy (the notebook
up to its error) beside it as `<name>.failed.ipynb`. `make run`, `make seeds`, `make render` and every point of a
sweep (`factored.sweep`, which runs this command in a process of its own) use it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat

from .parameters import parse_value
from .paths import pin_outputs_dir, restore_ctrl_c

WIDGET = "application/vnd.jupyter.widget-view+json"
# The kernel logs only what stops it: its own log (a warning about TCP on every start, and a traceback when its
# sockets close under a Ctrl-C'd execution) says nothing about the notebook, whose errors come back as cell outputs
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
KERNEL_START_TIMEOUT = 300  # seconds; papermill's 60 is too short for kernels importing torch at once on 2 cores


def partial_path(target: Path, pid: int | None = None) -> Path:
    """`.<name>.partial.ipynb` beside the target (`.<name>.<pid>.partial.ipynb`: a second render's own)."""
    return target.with_name(f".{target.stem}{f'.{pid}' if pid else ''}.partial.ipynb")


def failed_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}.failed.ipynb")


@contextmanager
def claimed_partial(target: Path) -> Iterator[Path]:
    """The partial file this render writes, held under an OS lock (released when the process exits, even by a
    kill): `partial_path(target)`, or while another render of the same target holds that one, a file of this
    process's own, so that two renders to one target never write into one file."""
    import fcntl

    for path in (partial_path(target), partial_path(target, os.getpid())):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no truncation: another render may be writing it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield path
        finally:
            os.close(fd)
        return
    raise RuntimeError(f"cannot claim a partial file for {target}")  # only if this very process holds both


def execute(
    notebook: Path, target: Path, parameters: dict | None = None, cwd: Path | None = None, log_output: bool = True
) -> Path:
    """Execute `notebook` into `target` atomically (see the module docstring); raises what papermill raised.
    log_output: echo the cells' output to this process's stdout (training progress in a terminal)."""
    import papermill  # here, not at the top: `--help` and the tests of this module stay fast

    notebook, target = Path(notebook), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with claimed_partial(target) as partial:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(partial),
                parameters=parameters or {},
                cwd=str(cwd or notebook.parent),
                start_timeout=KERNEL_START_TIMEOUT,
                log_output=log_output,
                progress_bar=log_output,
                extra_arguments=KERNEL_ARGUMENTS,
            )
        except BaseException:
            if partial.stat().st_size:  # the notebook as far as it ran
                os.replace(partial, failed_path(target))
            else:  # nothing ran (a notebook that cannot be read): nothing to keep
                partial.unlink()
            raise
        finished(partial, keep_pairing=target.resolve() == notebook.resolve())
        os.replace(partial, target)
    failed_path(target).unlink(missing_ok=True)
    return target


DEAD_KERNEL = "the kernel died, likely out of memory"


def cause(error: BaseException) -> str:
    """Why a render failed, in one line: papermill's own last line names the failing cell and error; a kernel
    that died (killed by the system, most often for memory) is said so."""
    name, text = type(error).__name__, str(error).strip()
    line = f"{name}: {text.splitlines()[-1]}" if text else name
    return f"{DEAD_KERNEL} ({line})" if name == "DeadKernelError" else line


def footer(target: Path) -> str:
    """What a failed render left: the target as it was, and the notebook up to its error where one was written."""
    failed = failed_path(target)
    kept = f"; the notebook up to its error is in {failed}" if failed.exists() else ""
    return f"{target} left as it was{kept}"


def finished(path: Path, keep_pairing: bool) -> None:
    """Make an executed notebook look finished and say only what it is: no progress-bar widget state (frozen
    bars), no machine paths in papermill's metadata, and no jupytext pairing unless it is a project notebook
    rendered in place (a copy in outputs/ must not grow a .py twin)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for key in ("input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    if not keep_pairing:
        nb.metadata.get("jupytext", {}).pop("formats", None)
    for cell in nb.cells:  # a widget view with no state renders as a stray "Loading..." line
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter, its value read as YAML (numbers as papermill reads them: 1e-3)")  # fmt: skip
    parser.add_argument("-y", "--parameters-yaml", default="{}", help="parameters as one YAML mapping")
    parser.add_argument("--quiet", action="store_true", help="do not echo the cells' output")
    args = parser.parse_args(argv)
    try:
        pin_outputs_dir()  # the kernel works in the notebook's folder: it gets the outputs folder as an absolute path
        parameters = parse_value("--parameters-yaml", args.parameters_yaml)
        if not isinstance(parameters, dict):
            raise ValueError(f"--parameters-yaml must be a mapping (name: value, ...), got {args.parameters_yaml!r}")
        parameters |= {name: parse_value(name, value) for name, value in args.p}
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        execute(args.notebook, args.target, parameters, log_output=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted: {args.target} left as it was", file=sys.stderr)
        return 130
    except Exception as e:  # papermill's own message names the failing cell and error
        print(f"{args.notebook} failed: {cause(e)}\n{footer(args.target)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    restore_ctrl_c()  # the command line's own process only: main() called from Python keeps its handlers
    sys.exit(main())
