"""Running sweeps: every point of a `sweep_spec.Sweep` executed by `factored.render` in a process of its own, on a
local pool or a Dask cluster; signals, progress, the log and the command line.

    python -m factored.sweep params/sweeps/noise.yaml [--workers N] [--threads N] [--scheduler tcp://host:8786]

Each point executes the notebook into outputs/sweeps/<sweep>/<point>.ipynb. `factored.render` writes
`.<point>.partial.ipynb` and renames it when the notebook has run to its end, so "finished" means the output
exists and a rerun after a crash runs only what is left. A failed point leaves `<point>.failed.ipynb` (the
notebook up to its error) and `<point>.failed.txt` (the error), and does not stop the others.

Executors: a local pool of processes (default), or the workers of a Dask cluster (`scheduler=
"tcp://host:8786"`): the same sweep then spreads over many machines or GPUs, provided they share this
checkout and its outputs/ folder. Every point runs in a process of its own, its kernel with OMP_NUM_THREADS set
so that points running at once x torch threads each never exceed the cores of their machine (oversubscribed
torch threads run 10-50x slower, README "Benchmarks").

Points meet in the run store: two points, or a point and a notebook run by hand, that need the same run train it
once, since `train.get_or_train` holds a lock on the run folder while it trains.

Stopping: Ctrl-C (SIGINT) or SIGTERM, however the runner was started (a script's background job inherits an
ignored SIGINT: the command line restores it), stops the pool (the running points' processes and kernels with
it), cancels the points not yet started, leaves each stopped point's notebook as `.<point>.partial.ipynb` and
exits with 130 (SIGTERM: 143) and a one-line summary; further signals while it cleans up are ignored. A runner
killed outright takes its pool workers and their processes down with it (Linux: a parent-death signal; elsewhere
the workers watch their parent). On a Dask cluster, points already running run on.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from filelock import FileLock
from tqdm.auto import tqdm

from .paths import outputs_dir, pin_outputs_dir, relative
from .render import DEAD_KERNEL
from .sweep_spec import Point, Sweep, fail, load, point_files, sweep_dir, validate

# Pool workers import this module only to launch `factored.render`, so they start in a fraction of a second: what
# would slow that is imported in the functions that use it (nbformat; distributed, an optional dependency).

STATUSES = ("done", "skipped", "failed")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class PointResult:
    name: str
    status: str  # done | skipped (its output was already there) | failed
    seconds: float = 0.0
    error: str = ""  # one line; the full error is in <point>.failed.txt


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped `run` (its pool already stopped); the message says in one line what was done and
    what is left; `signum` is the signal that stopped it."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (raised by the runner's handler, `_stop_on_signals`); `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# --- Running a sweep -------------------------------------------------------------------------------------------


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def split_cores(
    n_points: int, workers: int | None = None, threads: int | None = None, cores: int | None = None
) -> tuple[int, int]:
    """(points at once, torch threads per point) with workers x threads <= cores.

    Default: one point per core (at most one per point), each single-threaded; a single point gets every core.
    On the 2-core development machine 2 points x 1 thread beat 1 x 2 (see README "Sweeps")."""
    cores = cores or available_cores()
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if workers is None:
        workers = max(1, min(max(n_points, 1), cores // (threads or 1)))
    if threads is None:
        threads = max(1, cores // workers)
    if workers * threads > cores:
        raise ValueError(
            f"{workers} workers x {threads} torch threads = {workers * threads} exceeds the {cores} cores here; "
            "oversubscribed torch threads run 10-50x slower (README, Benchmarks): lower --workers or --threads"
        )
    return workers, threads


def _threads_here(threads: int | dict[str, int]) -> int:
    """The thread count for a point: an int, or (on a Dask cluster) this worker's entry of a per-worker map."""
    if isinstance(threads, int):
        return threads
    from distributed import get_worker

    return threads.get(get_worker().address, 1)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _error_of(failed: Path, stderr: str) -> tuple[str, str]:
    """(one line, full text) of why a point failed: the error a cell raised, from the notebook as far as it ran,
    else the kernel's death (`render.DEAD_KERNEL`: likely out of memory), else the last line the process wrote (a
    notebook that could not be read)."""
    if failed.exists():
        import nbformat

        for cell in nbformat.read(failed, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    line = f"{out['ename']}: {out['evalue']}".splitlines()[0]
                    where = f" (cell In [{cell.get('execution_count')}])"
                    return line + where, _strip_ansi("\n".join(out.get("traceback", [])))
    lines = [line for line in stderr.splitlines() if line.strip()]
    dead = next((line for line in lines if DEAD_KERNEL in line), None)  # `render` says so; no cell raised
    if dead is not None:
        return dead[dead.index(DEAD_KERNEL) :], stderr
    return (lines[-1] if lines else "the notebook's process exited with no message"), stderr


# --- Signals: the runner stops on SIGINT and SIGTERM however it was started -------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_on_signals() -> None:
    """Make SIGINT (Ctrl-C) and SIGTERM stop this runner, whatever it inherited: a shell script's background job
    (`python -m factored.sweep s.yaml &`) starts with SIGINT ignored, and Python keeps an ignored signal ignored.
    The command line calls it before `main`."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_stop_signal)


def _on_stop_signal(signum: int, _frame) -> None:
    """The first stop signal raises Stopped, which stops the pool and the sweep; the later ones are ignored, so that
    pressing Ctrl-C again while the runner cleans up cannot break the cleanup (or its exit) with a traceback."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


# --- Pool workers die with their runner -----------------------------------------------------------------------

_render: subprocess.Popen | None = None  # the process executing the point this pool worker runs, if any
_linked = False  # this is a local pool worker with a parent-death signal: its point processes get one too


def _die_with_parent(sig: int) -> bool:
    """Have Linux send `sig` to this process when its parent ends (prctl PR_SET_PDEATHSIG); False elsewhere."""
    return sys.platform == "linux" and ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig)) == 0


def _end_worker(*_) -> None:
    """End this pool worker and its point's process; the kernel follows (ipykernel exits when its parent does),
    and the point's notebook stays `.<point>.partial.ipynb`."""
    if _render is not None and _render.poll() is None:
        _render.kill()
    os._exit(1)


def _watch_parent(runner: int) -> None:
    """Where there is no parent-death signal: end the worker once the runner is gone (it is then adopted)."""
    while os.getppid() == runner:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def _start_worker(runner: int) -> None:
    """Initializer of a local pool worker. Ctrl-C is the runner's to handle (it stops the pool, so a point never
    mistakes it for a failure); the runner's stop (SIGTERM) or its death ends the worker and its point's process."""
    global _linked
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_worker)
    _linked = _die_with_parent(signal.SIGTERM)
    if not _linked:
        threading.Thread(target=_watch_parent, args=(runner,), daemon=True).start()
    if os.getppid() != runner:  # the runner died before the signal was asked for
        _end_worker()


def _dies_with_worker() -> None:
    """Run in a point's process before it starts (only from a single-threaded pool worker: forked children of
    threaded processes may deadlock here): a worker killed outright (SIGKILL) takes it along."""
    _die_with_parent(signal.SIGKILL)


def _render_run(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """(exit status, stderr) of a point's process, run where `_end_worker` can find it. A session of its own keeps
    the terminal's Ctrl-C from it: the runner decides what Ctrl-C stops."""
    global _render
    _render = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_dies_with_worker if _linked else None,
    )  # fmt: skip
    try:
        _, stderr = _render.communicate()
        return _render.returncode, stderr
    finally:
        _render = None


def run_point(notebook: str, out_dir: str, point: Point, threads: int | dict[str, int], outputs: str) -> PointResult:
    """Execute one point with `factored.render` in a process of its own (so a kernel of its own), its kernel's
    torch limited to `threads` threads and its runs written under `outputs` (the runner's outputs folder, wherever
    this worker runs); never raises for a failing notebook (the result says failed, with the error).

    A lock on the point keeps two sweeps of the same name from executing it at once: the second waits, then finds
    the output and skips it."""
    files = point_files(Path(out_dir), point.name)
    start = time.perf_counter()
    with FileLock(files["lock"]):
        if files["done"].exists():
            return PointResult(point.name, "skipped")
        n = str(_threads_here(threads))
        env = {**os.environ, "FACTORED_OUTPUTS": outputs, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        cmd = [sys.executable, "-m", "factored.render", notebook, str(files["done"]), "--quiet"]
        cmd += ["--parameters-yaml", yaml.safe_dump(point.parameters)]
        returncode, stderr = _render_run(cmd, env)
        seconds = time.perf_counter() - start
        if returncode == 0:
            files["error"].unlink(missing_ok=True)
            return PointResult(point.name, "done", seconds)
        line, detail = _error_of(files["failed"], stderr)
        header = f"{point.name} failed after {seconds:.1f} s: {line}\nparameters: {json.dumps(point.parameters)}"
        files["error"].write_text(f"{header}\n\n{detail}\n")
        return PointResult(point.name, "failed", seconds, line)


def _claim(out_dir: Path, sweep: Sweep) -> None:
    """Create the sweep's folder, or check that it holds points of this very sweep (same notebook and fixed
    values: the point names carry only the grid values, so other fixed values would be mistaken for done)."""
    spec = {"notebook": sweep.notebook.stem, "fixed": sweep.fixed}
    path = out_dir / "sweep.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored != spec:
            fail(
                sweep.name,
                f"{relative(out_dir)} holds points run with {stored}, not {spec}; "
                "move that folder away or give this sweep another file name",
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(spec, indent=1) + "\n")
    os.replace(tmp, path)


def _dask_threads(client) -> dict[str, int]:
    """Torch threads per point for every worker: its machine's cores over the task slots of all workers there."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(available_cores)
    slots = Counter()
    for w in info.values():
        slots[w["host"]] += w["nthreads"]
    return {addr: max(1, cores[addr] // slots[w["host"]]) for addr, w in info.items() if addr in cores}


@contextlib.contextmanager
def _executor(
    n_points: int, workers: int | None, threads: int | None, scheduler: str | None
) -> Iterator[tuple[Executor, int | dict[str, int], dict[str, Any]]]:
    """(executor, torch threads per point, what was chosen: for the sweep's log)."""
    if scheduler:
        if workers is not None:
            raise ValueError("--workers sizes the local pool; a Dask cluster's size is set where its workers start")
        from distributed import Client

        with Client(scheduler) as client:
            per_point = threads or _dask_threads(client)
            executor = client.get_executor(pure=False)
            try:
                yield executor, per_point, {"scheduler": scheduler, "threads": per_point}
            except BaseException:  # Ctrl-C: cancel the points not started (running ones run on: Dask cannot stop them)
                executor.shutdown(wait=False)
                raise
    else:
        workers, threads = split_cores(n_points, workers, threads)
        pool = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_start_worker, initargs=(os.getpid(),)
        )
        try:
            yield pool, threads, {"workers": workers, "threads": threads, "cores": available_cores()}
        except BaseException:  # Ctrl-C, or an error here: stop the running points rather than wait for them
            _stop(pool)
            raise
        finally:
            pool.shutdown(cancel_futures=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """End every worker of the pool (each takes its point's process along); its points not started are then
    cancelled by the broken pool."""
    workers = list((pool._processes or {}).values())  # ProcessPoolExecutor.terminate_workers from Python 3.14
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join()


def run(
    sweep: Sweep,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    root: Path | None = None,
    progress: bool = True,
) -> list[PointResult]:
    """Run every point not yet done; one result per point, in grid order. See the module docstring.

    Each call appends a line to <sweep folder>/log.jsonl: when it started, how long it took, the workers and
    threads it used, and how many points were done, skipped and failed. Points write their notebooks and their
    runs under one outputs folder: `root` if given, else FACTORED_OUTPUTS (or outputs/)."""
    pts = validate(sweep)
    outputs = Path(root).absolute() if root else outputs_dir()
    out_dir = sweep_dir(sweep, outputs)
    _claim(out_dir, sweep)
    todo = [p for p in pts if not point_files(out_dir, p.name)["done"].exists()]
    results = {p.name: PointResult(p.name, "skipped") for p in pts}
    started, chosen = time.time(), {}
    quiet = {} if progress else {"disable": True}  # else tqdm's default, which TQDM_DISABLE=1 turns off
    bar = tqdm(total=len(pts), initial=len(pts) - len(todo), desc=f"sweep {sweep.name}", unit="point", **quiet)
    finished: dict[str, PointResult] = {}
    try:
        if todo:
            with _executor(len(todo), workers, threads, scheduler) as (executor, per_point, chosen):
                futures = {
                    executor.submit(run_point, str(sweep.notebook), str(out_dir), p, per_point, str(outputs)): p
                    for p in todo
                }
                for future in as_completed(futures):
                    result = _result_of(future, futures[future])
                    finished[result.name] = results[result.name] = result
                    if result.status == "failed":
                        bar.write(f"{result.name} failed: {result.error}")
                    bar.update()
                    counts = Counter(r.status for r in results.values())
                    bar.set_postfix(done=counts["done"], failed=counts["failed"])
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        left = [p.name for p in todo if p.name not in finished]
        stopped = [n for n in left if _touched_since(point_files(out_dir, n)["partial"], started)]
        _log(out_dir, started, chosen, finished.values(), interrupted=True)
        counts = Counter(r.status for r in finished.values())
        raise Interrupted(
            f"sweep {sweep.name} interrupted ({signal.Signals(signum).name}) after {time.time() - started:.0f} s: "
            f"{counts['done']} done, {counts['failed']} failed, {len(stopped)} stopped (left as "
            f".<point>.partial.ipynb), {len(left) - len(stopped)} not started; run it again to do what is left",
            signum,
        ) from None
    finally:
        bar.close()
    _log(out_dir, started, chosen, results.values())
    return [results[p.name] for p in pts]


def _result_of(future: Future, point: Point) -> PointResult:
    try:
        return future.result()
    except Exception as e:  # the worker itself died (killed, out of memory, lost machine)
        return PointResult(point.name, "failed", 0.0, f"{type(e).__name__}: {e}")


def _touched_since(path: Path, since: float) -> bool:
    return path.exists() and path.stat().st_mtime >= since


def _log(out_dir: Path, started: float, chosen: dict, results, interrupted: bool = False) -> None:
    """Append this invocation to <sweep folder>/log.jsonl."""
    counts = Counter(r.status for r in results)
    entry = {"started": started, "seconds": time.time() - started, **chosen, **{k: counts[k] for k in STATUSES}}
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(entry | ({"interrupted": True} if interrupted else {})) + "\n")


def summary_table(results: list[PointResult]) -> str:
    """One line per point (status, seconds, error) and the counts."""
    width = max([len("point")] + [len(r.name) for r in results])
    lines = [f"{'point':<{width}}  {'status':<7}  {'seconds':>8}  error"]
    lines += [f"{r.name:<{width}}  {r.status:<7}  {r.seconds:8.1f}  {r.error}".rstrip() for r in results]
    counts = Counter(r.status for r in results)
    lines.append(f"{len(results)} points: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m factored.sweep",
        description="Execute a notebook at every point of a parameter grid (a YAML in params/sweeps/); "
        "points already done are skipped, so a rerun does only what is left.",
    )
    parser.add_argument("sweep", help="a sweep file, e.g. params/sweeps/noise.yaml")
    parser.add_argument("--workers", type=int, help="points at once in the local pool (default: one per core)")
    parser.add_argument("--threads", type=int, help="torch threads per point (default: cores // workers)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786): run on its workers")
    parser.add_argument("--dry-run", action="store_true", help="check the sweep and list its points; run nothing")
    args = parser.parse_args(argv)
    try:
        pin_outputs_dir()  # one outputs folder for the runner and every point's process, wherever they work
        sweep = load(args.sweep)
        if args.dry_run:
            out_dir = sweep_dir(sweep)
            for p in validate(sweep):
                files = point_files(out_dir, p.name)
                state = "done" if files["done"].exists() else "failed before" if files["error"].exists() else "to run"
                print(f"{state:<13}  {p.name}")
            print(f"outputs in {relative(out_dir)}")
            return 0
        results = run(sweep, args.workers, args.threads, args.scheduler)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an outputs folder that cannot be written, a sweep file that cannot be read
        print(f"error: {f'{e.filename}: {e.strerror}' if e.filename else e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # exit status 128 + the signal, as a shell reports a command it stopped
        signum = getattr(e, "signum", signal.SIGINT)
        print(str(e) if isinstance(e, Interrupted) else f"interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    print(summary_table(results))
    out = relative(sweep_dir(sweep))
    print(
        f"outputs in {out}"
        + (f"; errors in {out}/<point>.failed.txt" if any(r.status == "failed" for r in results) else "")
    )
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":  # through the module object, so pool workers unpickle the same classes
    from factored import sweep as _sweep

    _sweep._stop_on_signals()  # the command line's own process only: main() called from Python keeps its handlers
    sys.exit(_sweep.main())


def sweep_folders(root: Path | None = None) -> pd.DataFrame:
    """Every sweep folder under outputs/sweeps/: its notebook, points done and failed, the minutes the done
    points' notebooks ran (papermill's record, summed) and the wall-clock minutes of all invocations (log.jsonl)."""
    rows = []
    for folder in sorted((root or outputs_dir()).glob("sweeps/*/")):
        spec = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {}
        done = [p for p in folder.glob("*.ipynb") if not p.name.endswith((".partial.ipynb", ".failed.ipynb"))]
        durations = [json.loads(p.read_text())["metadata"].get("papermill", {}).get("duration") or 0 for p in done]
        log = folder / "log.jsonl"
        invocations = (
            [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        )
        rows.append(
            {
                "sweep": folder.name,
                "notebook": spec.get("notebook", "?"),
                "done": len(done),
                "failed": len(list(folder.glob("*.failed.txt"))),
                "point_minutes": sum(durations) / 60,
                "wall_minutes": sum(i["seconds"] for i in invocations) / 60,
                "folder": relative(folder),
            }
        )
    columns = ["sweep", "notebook", "done", "failed", "point_minutes", "wall_minutes", "folder"]
    return pd.DataFrame(rows, columns=columns)
