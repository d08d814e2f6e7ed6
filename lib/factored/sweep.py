"""Sweeps: one notebook executed with papermill at every point of a parameter grid, and their results collected.

A sweep is a YAML file (params/sweeps/<name>.yaml):

    notebook: 04_noise                       # notebooks/04_noise.ipynb (or a path to any notebook)
    grid:                                    # every combination of these values ...
      noise: [0.0, 0.2, 0.5]
      seed: [0, 1, 2]
    fixed: {profile: laptop, steps: 2000}    # ... each with these

`grid` may also be a list of such mappings: the sweep is the union of their combinations (for values that only
make sense together, such as a recurrent net's width). Every key must be a parameter of the notebook, with a
value of its declared type; `validate` reports the first problem in one error, before anything runs.

Each point executes the notebook into outputs/sweeps/<sweep>/<point>.ipynb (e.g. `noise=0.2_seed=1.ipynb`).
papermill writes `<point>.partial.ipynb`, renamed when the notebook has run to its end, so "finished" means
the output exists and a rerun after a crash runs only what is left. A failed point leaves
`<point>.failed.ipynb` (the notebook up to its error) and `<point>.failed.txt` (the error), and does not stop
the others.

Executors: a local pool of processes (default), or the workers of a Dask cluster (`scheduler=
"tcp://host:8786"`): the same sweep then spreads over many machines or GPUs, provided they share this
checkout and its outputs/ folder. Every point runs papermill in a process of its own, its kernel with
OMP_NUM_THREADS set so that points running at once x torch threads each never exceed the cores of their machine
(oversubscribed torch threads run 10-50x slower, README "Benchmarks").

Points meet in the run store: two points, or a point and a notebook run by hand, that need the same run train it
once, since `runs.get_or_train` holds a lock on the run folder while it trains.

The second half of this module collects results from the run folders (outputs/runs/*/config.json and the
cached analyses), not from executed notebooks, so runs made by hand count as much as those of a sweep.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from filelock import FileLock
from tqdm.auto import tqdm

from . import config
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig

if TYPE_CHECKING:
    import pandas as pd

    from . import probing, runs

# torch (through runs and probing), pandas, scipy and papermill are imported inside the functions that use them:
# pool workers, which only launch papermill processes, then start in a fraction of a second, not several.

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
SWEEPS_DIR = ROOT / "params" / "sweeps"
SWEEP_KEYS = ("notebook", "grid", "fixed")
STATUSES = ("done", "skipped", "failed")
KERNEL_START_TIMEOUT = 300  # seconds; papermill's default 60 is too short for kernels starting at once on few cores
# run-config fields a notebook parameter may set (through config.from_parameters, which also knows n_ctx)
CONFIG_PARAMETERS = frozenset(
    {f.name for part in (DataConfig, ModelConfig, TrainConfig) for f in fields(part)} | {"n_ctx"}
)


# --- What a sweep is -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """A notebook and the parameter values to run it with. `grid`: one or more mappings parameter -> values."""

    name: str
    notebook: Path
    grid: tuple[dict[str, list], ...]
    fixed: dict[str, Any]


@dataclass(frozen=True)
class Point:
    """One execution of the notebook: its file name (from the grid values) and all its parameters."""

    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class PointResult:
    name: str
    status: str  # done | skipped (its output was already there) | failed
    seconds: float = 0.0
    error: str = ""  # one line; the full error is in <point>.failed.txt


def notebook_path(ref: str) -> Path:
    """`04_noise` (or `04_noise.ipynb`) -> <project>/notebooks/04_noise.ipynb; anything with a '/' is a path."""
    if "/" in ref:
        return Path(ref).expanduser().resolve()
    return NOTEBOOKS_DIR / (ref if ref.endswith(".ipynb") else f"{ref}.ipynb")


def _fail(sweep: str, message: str) -> None:
    raise ValueError(f"sweep {sweep!r}: {message}")


def from_dict(spec: Any, name: str) -> Sweep:
    """A Sweep from the parsed YAML; ValueError on a malformed file (the notebook is checked by `validate`)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        _fail(name, "a sweep name may hold only letters, digits, '.', '-' and '_'")
    if not isinstance(spec, dict):
        _fail(name, f"expected a mapping with keys {list(SWEEP_KEYS)}, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        _fail(name, f"unknown key {unknown[0]!r}; a sweep has the keys {list(SWEEP_KEYS)}")
    for key in ("notebook", "grid"):
        if key not in spec:
            _fail(name, f"missing key {key!r}")
    if not isinstance(spec["notebook"], str) or not spec["notebook"]:
        _fail(name, f"notebook must be a notebook name such as 04_noise, got {spec['notebook']!r}")
    grids = spec["grid"] if isinstance(spec["grid"], list) else [spec["grid"]]
    if not grids:
        _fail(name, "grid is empty; give a mapping parameter -> list of values, or a list of such mappings")
    for grid in grids:
        if not isinstance(grid, dict) or not grid:
            _fail(name, f"each grid must be a non-empty mapping parameter -> list of values, got {grid!r}")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                _fail(name, f"grid axis {key!r} must be a non-empty list of values, got {values!r}")
            for v in values:
                _check_scalar(name, key, v)
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        _fail(name, f"fixed must be a mapping parameter -> value, got {fixed!r}")
    for key, v in fixed.items():
        _check_scalar(name, key, v)
    both = sorted(set(fixed) & set().union(*grids))
    if both:
        _fail(name, f"{both[0]!r} is both a grid axis and fixed; keep it in one of them")
    return Sweep(name, notebook_path(spec["notebook"]), tuple(grids), dict(fixed))


def _check_scalar(sweep: str, key: str, value: Any) -> None:
    if not isinstance(value, str | int | float | bool):
        _fail(sweep, f"{key} values must be numbers, strings or booleans, got {value!r}")


def load(path: str | Path) -> Sweep:
    """The sweep in a YAML file, named after the file (params/sweeps/noise.yaml -> `noise`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no sweep file {path}")
    return from_dict(yaml.safe_load(path.read_text()), path.stem)


def _format(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "-", str(value))


def points(sweep: Sweep) -> list[Point]:
    """Every point of the grid, in order (the first axis varies slowest); names from the grid values only."""
    out = []
    for grid in sweep.grid:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            chosen = dict(zip(keys, values, strict=True))
            name = "_".join(f"{k}={_format(v)}" for k, v in chosen.items())
            out.append(Point(name, {**sweep.fixed, **chosen}))
    return out


def validate(sweep: Sweep) -> list[Point]:
    """The sweep's points, after checking everything that can be checked before running: the notebook exists,
    every key is one of its parameters with a value of the declared type (the same test as the notebook's
    `config.check_parameters`), run-config values are in range, and no two points share a name."""
    import papermill

    from . import runs

    nb = sweep.notebook
    if not nb.is_file():
        known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
        _fail(sweep.name, f"unknown notebook {runs.relative(nb)}; the project's notebooks are {known}")
    declared = papermill.inspect_notebook(str(nb))
    if not declared:
        _fail(sweep.name, f"{nb.name} has no cell tagged 'parameters', so it cannot be swept")
    values = [(k, v) for k, v in sweep.fixed.items()] + [(k, v) for g in sweep.grid for k, vs in g.items() for v in vs]
    for key, value in values:
        if key not in declared:
            _fail(sweep.name, f"{key!r} is not a parameter of {nb.name}; its parameters are {sorted(declared)}")
        kind = declared[key]["inferred_type_name"]
        if kind in config._PARAMETER_CHECKS:
            ok, expected = config._PARAMETER_CHECKS[kind]
            if not ok(value):
                _fail(sweep.name, f"{key} must be {expected} (`{key}: {kind}` in {nb.name}), got {value!r}")
    pts = points(sweep)
    seen = Counter(p.name for p in pts)
    twice = [name for name, n in seen.items() if n > 1]
    if twice:
        _fail(sweep.name, f"the point {twice[0]} comes up {seen[twice[0]]} times; each grid point must be unique")
    for p in pts:
        run_values = {k: v for k, v in p.parameters.items() if k in CONFIG_PARAMETERS}
        if run_values or "profile" in p.parameters:  # what the notebook's first cells would reject, rejected now
            try:
                config.from_parameters(p.parameters.get("profile", ""), **run_values)
            except ValueError as e:
                _fail(sweep.name, f"point {p.name}: {e}")
    return pts


# --- Running a sweep -------------------------------------------------------------------------------------------


def sweep_dir(sweep: Sweep, root: Path | None = None) -> Path:
    """outputs/sweeps/<name>/ (under FACTORED_OUTPUTS when set)."""
    from . import runs

    return (root or runs.outputs_dir()) / "sweeps" / sweep.name


def point_files(out_dir: Path, name: str) -> dict[str, Path]:
    """The files of one point: done (the executed notebook), partial, failed (notebook), error (text), lock."""
    suffixes = {
        "done": ".ipynb",
        "partial": ".partial.ipynb",
        "failed": ".failed.ipynb",
        "error": ".failed.txt",
        "lock": ".lock",
    }
    return {kind: out_dir / f"{name}{suffix}" for kind, suffix in suffixes.items()}


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


def _error_of(partial: Path, stderr: str) -> tuple[str, str]:
    """(one line, full text) of why a point failed: the error a cell raised, from the partly executed notebook,
    else the last line papermill wrote (a kernel that died, a notebook that could not be read)."""
    if partial.exists():
        import nbformat

        for cell in nbformat.read(partial, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    line = f"{out['ename']}: {out['evalue']}".splitlines()[0]
                    where = f" (cell In [{cell.get('execution_count')}])"
                    return line + where, _strip_ansi("\n".join(out.get("traceback", [])))
    lines = [line for line in stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else "papermill exited with no message"), stderr


def run_point(notebook: str, out_dir: str, point: Point, threads: int | dict[str, int]) -> PointResult:
    """Execute one point in a papermill process of its own (so a kernel of its own), its kernel's torch limited
    to `threads` threads; never raises for a failing notebook (the result says failed, with the error).

    A lock on the point keeps two sweeps of the same name from executing it at once: the second waits, then finds
    the output and skips it."""
    files = point_files(Path(out_dir), point.name)
    start = time.perf_counter()
    with FileLock(files["lock"]):
        if files["done"].exists():
            return PointResult(point.name, "skipped")
        n = str(_threads_here(threads))
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
        cmd = [sys.executable, "-m", "papermill", notebook, str(files["partial"]), "--no-progress-bar"]
        cmd += ["--start-timeout", str(KERNEL_START_TIMEOUT)]  # several kernels starting at once start slowly
        cmd += ["--cwd", str(Path(notebook).parent), "-y", yaml.safe_dump(point.parameters)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode == 0:
            os.replace(files["partial"], files["done"])
            files["failed"].unlink(missing_ok=True)
            files["error"].unlink(missing_ok=True)
            return PointResult(point.name, "done", seconds)
        line, detail = _error_of(files["partial"], proc.stderr)
        if files["partial"].exists():
            os.replace(files["partial"], files["failed"])
        header = f"{point.name} failed after {seconds:.1f} s: {line}\nparameters: {json.dumps(point.parameters)}"
        files["error"].write_text(f"{header}\n\n{detail}\n")
        return PointResult(point.name, "failed", seconds, line)


def _claim(out_dir: Path, sweep: Sweep) -> None:
    """Create the sweep's folder, or check that it holds points of this very sweep (same notebook and fixed
    values: the point names carry only the grid values, so other fixed values would be mistaken for done)."""
    from . import runs

    spec = {"notebook": sweep.notebook.stem, "fixed": sweep.fixed}
    path = out_dir / "sweep.json"
    if path.exists():
        stored = json.loads(path.read_text())
        if stored != spec:
            _fail(
                sweep.name,
                f"{runs.relative(out_dir)} holds points run with {stored}, not {spec}; "
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
            yield client.get_executor(pure=False), per_point, {"scheduler": scheduler, "threads": per_point}
    else:
        workers, threads = split_cores(n_points, workers, threads)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            yield pool, threads, {"workers": workers, "threads": threads, "cores": available_cores()}


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
    threads it used, and how many points were done, skipped and failed."""
    pts = validate(sweep)
    out_dir = sweep_dir(sweep, root)
    _claim(out_dir, sweep)
    todo = [p for p in pts if not point_files(out_dir, p.name)["done"].exists()]
    results = {p.name: PointResult(p.name, "skipped") for p in pts}
    started, chosen = time.time(), {}
    quiet = {} if progress else {"disable": True}  # else tqdm's default, which TQDM_DISABLE=1 turns off
    bar = tqdm(total=len(pts), initial=len(pts) - len(todo), desc=f"sweep {sweep.name}", unit="point", **quiet)
    if todo:
        with _executor(len(todo), workers, threads, scheduler) as (executor, per_point, chosen):
            futures = {executor.submit(run_point, str(sweep.notebook), str(out_dir), p, per_point): p for p in todo}
            for future in as_completed(futures):
                point = futures[future]
                try:
                    result = future.result()
                except Exception as e:  # the worker itself died (killed, out of memory, lost machine)
                    result = PointResult(point.name, "failed", 0.0, f"{type(e).__name__}: {e}")
                results[point.name] = result
                if result.status == "failed":
                    bar.write(f"{point.name} failed: {result.error}")
                bar.update()
                counts = Counter(r.status for r in results.values())
                bar.set_postfix(done=counts["done"], failed=counts["failed"])
    bar.close()
    counts = Counter(r.status for r in results.values())
    entry = {"started": started, "seconds": time.time() - started, **chosen, **{k: counts[k] for k in STATUSES}}
    with open(out_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    return [results[p.name] for p in pts]


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
    from . import runs

    try:
        sweep = load(args.sweep)
        if args.dry_run:
            out_dir = sweep_dir(sweep)
            for p in validate(sweep):
                files = point_files(out_dir, p.name)
                state = "done" if files["done"].exists() else "failed before" if files["error"].exists() else "to run"
                print(f"{state:<13}  {p.name}")
            print(f"outputs in {runs.relative(out_dir)}")
            return 0
        results = run(sweep, args.workers, args.threads, args.scheduler)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary_table(results))
    out = runs.relative(sweep_dir(sweep))
    print(
        f"outputs in {out}"
        + (f"; errors in {out}/<point>.failed.txt" if any(r.status == "failed" for r in results) else "")
    )
    return 1 if any(r.status == "failed" for r in results) else 0


# --- Collecting results ----------------------------------------------------------------------------------------


def sweep_budget(profile: str = "", steps: int = 0, sweeps_dir: Path = SWEEPS_DIR) -> RunConfig:
    """The reference config results are compared at: the profile's canonical run with `steps` training steps;
    steps 0 means the `steps` that the sweep files in `sweeps_dir` fix for this profile (else the profile's)."""
    from . import runs

    profile = config.resolve_profile(profile)
    if not steps:
        found = set()
        for path in sorted(Path(sweeps_dir).glob("*.yaml")):
            fixed = load(path).fixed
            if fixed.get("profile") == profile and fixed.get("steps"):
                found.add(fixed["steps"])
        if len(found) > 1:
            raise ValueError(
                f"the sweeps in {runs.relative(sweeps_dir)} train for {sorted(found)} steps at "
                f"profile {profile}; choose one with the parameter `steps`"
            )
        steps = found.pop() if found else 0
    return config.from_parameters(profile, steps=steps)


def same_budget(cfg: RunConfig, ref: RunConfig) -> bool:
    """Trained like `ref`: every training field equal except the seed (and those that change speed only)."""
    skip = {"seed", *config.NOT_HASHED}
    a, b = asdict(cfg.train), asdict(ref.train)
    return all(a[k] == b[k] for k in a if k not in skip)


def finished_runs(root: Path | None = None) -> list[runs.Run]:
    """Every finished run in outputs/runs/ (under `root`), whoever made it; of runs with the same config under two
    names (notebooks name runs differently) only the first, so no run counts twice as two seeds."""
    from . import runs

    out, seen = [], set()
    for path in sorted((root or runs.outputs_dir()).glob("runs/*/config.json")):
        try:
            cfg = RunConfig.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as e:  # written by an incompatible version of the config
            warnings.warn(f"skipping {runs.relative(path.parent)}: unreadable config ({e})", stacklevel=2)
            continue
        run = runs.Run(path.parent, cfg)
        if run.finished and cfg.hash() not in seen:
            seen.add(cfg.hash())
            out.append(run)
    return out


def model_label(cfg: RunConfig, ref: RunConfig) -> str:
    """A short name for a run's model, in notebook 05's words: `LSTM 32x2`, `transformer 120x4, n_ctx 33`; other
    model fields that differ from `ref` are appended."""
    m, r = cfg.model, ref.model
    label = f"{'transformer' if m.arch == 'transformer' else m.arch.upper()} {m.d_model}x{m.n_layers}"
    if cfg.data.seq_len != ref.data.seq_len:
        label += f", n_ctx {cfg.data.seq_len + 1}"
    shown = {"arch", "d_model", "n_layers"}
    if m.arch != "transformer":
        shown |= {"n_heads", "d_mlp", "act", "init"}  # unused by recurrent nets
    elif m.d_model != r.d_model:
        shown |= {"d_mlp"}  # follows the width (4 x d_model) in notebook 05
    extra = [
        f"{f.name} {getattr(m, f.name)}"
        for f in fields(m)
        if f.name not in shown and getattr(m, f.name) != getattr(r, f.name)
    ]
    return ", ".join([label, *extra])


FINAL_COLUMNS = ["init_dims95", "final_dims95", "min_dims95", "min_step", "final_step", "gap", "r2"]


def collect(
    run_list: list[runs.Run], ref: RunConfig, acfg: probing.AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """dims@95 at every checkpoint (one row per run and step) and each run's final numbers (one row per run).

    The analyses come from `probing.analyze_run` with `acfg`, cached in each run folder (so shared with the
    notebooks that made the runs when they used the same settings). Columns: run, model, arch, noise,
    structure, n_mess3 (0: the paper's five factors), seed, plus step, dims95 (first frame) or init_dims95,
    final_dims95, min_dims95, min_step, final_step, gap, r2 (second)."""
    import pandas as pd

    from . import probing

    per_step, per_run = [], []
    for run in run_list:
        c = run.config
        trajectory = probing.analyze_run(run, acfg, progress=False)
        st = probing.stages(trajectory)
        base = {
            "run": run.dir.name,
            "model": model_label(c, ref),
            "arch": c.model.arch,
            "noise": float(c.data.noise),
            "structure": c.data.structure if not c.data.n_mess3 else f"{c.data.n_mess3} x Mess3",
            "n_mess3": c.data.n_mess3,
            "seed": c.train.seed,
        }
        per_step += [{**base, "step": s, "dims95": r["dims"]["0.95"]} for s, r in sorted(trajectory.items())]
        final = trajectory[st["final"]]
        per_run.append(
            {
                **base,
                "init_dims95": trajectory[st["init"]]["dims"]["0.95"],
                "final_dims95": final["dims"]["0.95"],
                "min_dims95": trajectory[st["early"]]["dims"]["0.95"],
                "min_step": st["early"],
                "final_step": st["final"],
                "gap": run.metrics()[-1]["gap"],
                "r2": final["r2_overall"],
            }
        )
    columns = ["run", "model", "arch", "noise", "structure", "n_mess3", "seed"]
    return (
        pd.DataFrame(per_step, columns=[*columns, "step", "dims95"]),
        pd.DataFrame(per_run, columns=[*columns, *FINAL_COLUMNS]),
    )


def seed_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds and its Student-t confidence interval; NaN bounds for one seed."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return mean, float(mean - half), float(mean + half)


def interval_table(finals: pd.DataFrame, by: str, value: str = "final_dims95", level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by`: seeds, mean of `value` with its t-interval (low, high), and the seeds' range."""
    import pandas as pd

    rows = []
    for key, group in finals.groupby(by, sort=True):
        mean, low, high = seed_interval(group[value], level)
        rows.append(
            {
                by: key,
                "seeds": len(group),
                "mean": mean,
                "low": low,
                "high": high,
                "min": group[value].min(),
                "max": group[value].max(),
            }
        )
    return pd.DataFrame(rows, columns=[by, "seeds", "mean", "low", "high", "min", "max"])


def difference_table(finals: pd.DataFrame, by: str, reference, value: str = "final_dims95") -> pd.DataFrame:
    """Each condition against a reference condition: one row per value of `by` other than `reference`, with the
    seeds on each side, the two means of `value`, their difference, and the two-sided p-value of Welch's t-test
    (NaN with fewer than 2 seeds on a side, or no spread at all). Seeds are independent runs, so the test is
    the unpaired one."""
    import pandas as pd
    from scipy import stats

    base = finals.loc[finals[by] == reference, value].to_numpy(float)
    rows = []
    for key, group in finals[finals[by] != reference].groupby(by, sort=True):
        x = group[value].to_numpy(float)
        testable = len(x) > 1 and len(base) > 1 and (x.std() > 0 or base.std() > 0)
        with warnings.catch_warnings():  # one side without spread (all seeds equal) is fine for Welch's test,
            warnings.simplefilter("ignore", RuntimeWarning)  # but scipy warns of "catastrophic cancellation"
            p = float(stats.ttest_ind(x, base, equal_var=False).pvalue) if testable else float("nan")
        mean = float(x.mean())
        ref_mean = float(base.mean()) if len(base) else float("nan")
        rows.append({by: key, "seeds": len(x), "mean": mean, "reference_seeds": len(base),
                     "reference_mean": ref_mean, "difference": mean - ref_mean, "p_welch": p})  # fmt: skip
    columns = [by, "seeds", "mean", "reference_seeds", "reference_mean", "difference", "p_welch"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def condition_table(finals: pd.DataFrame, by: str, level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by`: seeds, final dims@95 as "mean (low to high)" with its t-interval, the seeds'
    range, and averaged over seeds dims@95 at init, the collapse (smallest dims@95 after step 0), the step of the
    collapse (median), how many seeds are still falling (their smallest dims@95 is at the last checkpoint, so the
    final value is a point on the way down, not a settled dimension), the held-out gap to the optimal loss and
    the R² of the belief read-out. `finals`: `collect`'s second frame."""
    dims = interval_table(finals, by, level=level).set_index(by)
    others = finals.assign(falling=finals["min_step"] == finals["final_step"]).groupby(by).agg(
        init=("init_dims95", "mean"), collapse=("min_dims95", "mean"), at_step=("min_step", "median"),
        still_falling=("falling", "sum"), gap=("gap", "mean"), r2=("r2", "mean"),
    )  # fmt: skip
    table = dims.join(others)
    table[f"final dims@95 ({level:.0%} interval)"] = [
        f"{m:.1f} ({lo:.1f} to {hi:.1f})" for m, lo, hi in zip(table["mean"], table["low"], table["high"], strict=True)
    ]
    table["seeds' range"] = [f"{lo:g}-{hi:g}" for lo, hi in zip(table["min"], table["max"], strict=True)]
    shown = ["seeds", f"final dims@95 ({level:.0%} interval)", "seeds' range", "init", "collapse", "at_step"]
    return table[[*shown, "still_falling", "gap", "r2"]]


def factor_scaling(finals: pd.DataFrame, acfg: probing.AnalysisConfig, seq_len: int) -> pd.DataFrame:
    """Dimension against the number of factors: one row per N among the runs on N independent Mess3 factors.

    finals: `collect`'s second frame (rows with n_mess3 = 0 are ignored). Columns: N, seeds, the measured
    dims@95 at init, at the end and at its smallest (means over seeds), the dimension counts of a factored (2N)
    and a joint (3^N - 1) representation, the dims@95 of the true beliefs on the probe data, concatenated
    (beliefs_factored) and as their outer product (beliefs_joint), the mean gap and R², and where `finals` has them
    (merged from `joint_belief_gains`) the mean beliefs_r2 and joint_gain, else NaN."""
    import pandas as pd

    from . import probing, products

    rows = []
    for n, group in finals[finals["n_mess3"] > 0].groupby("n_mess3", sort=True):
        process = products.mess3_factors(int(n))
        joint, factored_dims = products.dimension_counts(process.state_dims)
        refs = probing.reference_curves(process, acfg, seq_len)
        rows.append(
            {
                "N": int(n),
                "seeds": len(group),
                "init_dims95": group["init_dims95"].mean(),
                "final_dims95": group["final_dims95"].mean(),
                "min_dims95": group["min_dims95"].mean(),
                "factored": factored_dims,
                "joint": joint,
                "beliefs_factored": refs["factored_dims95"],
                "beliefs_joint": refs["joint_dims95"],
                "gap": group["gap"].mean(),
                "r2": group["r2"].mean(),
                **{k: group[k].mean() if k in group else float("nan") for k in JOINT_GAIN_COLUMNS},
            }
        )
    columns = ["N", "seeds", "init_dims95", "final_dims95", "min_dims95", "factored", "joint"]
    columns += ["beliefs_factored", "beliefs_joint"]
    return pd.DataFrame(rows, columns=[*columns, "gap", "r2", *JOINT_GAIN_COLUMNS])


JOINT_GAIN_COLUMNS = ("beliefs_r2", "joint_gain")


def joint_belief_gains(run_list: list[runs.Run], acfg: probing.AnalysisConfig) -> pd.DataFrame:
    """`probing.joint_belief_gain` of each run at its final checkpoint: columns run (its folder name), beliefs_r2,
    before_joint_r2, joint_gain; merge it into `collect`'s second frame on `run` before `factor_scaling`."""
    import pandas as pd

    from . import probing

    rows = [{"run": r.dir.name, **probing.joint_belief_gain(r, acfg)} for r in run_list]
    return pd.DataFrame(rows, columns=["run", "beliefs_r2", "before_joint_r2", "joint_gain"])


def sweep_folders(root: Path | None = None) -> pd.DataFrame:
    """Every sweep folder under outputs/sweeps/: its notebook, points done and failed, the minutes the done
    points' notebooks ran (papermill's record, summed) and the wall-clock minutes of all invocations (log.jsonl)."""
    import pandas as pd

    from . import runs

    rows = []
    for folder in sorted((root or runs.outputs_dir()).glob("sweeps/*/")):
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
                "folder": runs.relative(folder),
            }
        )
    columns = ["sweep", "notebook", "done", "failed", "point_minutes", "wall_minutes", "folder"]
    return pd.DataFrame(rows, columns=columns)


if __name__ == "__main__":  # through the module object, so pool workers unpickle the same classes
    from factored import sweep as _sweep

    sys.exit(_sweep.main())
