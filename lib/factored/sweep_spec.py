"""What a sweep is: one notebook and a grid of its parameters, read from YAML, checked, expanded into points.

A sweep is a YAML file (params/sweeps/<name>.yaml):

    notebook: 04_noise                       # notebooks/04_noise.ipynb (or a path to any notebook)
    grid:                                    # every combination of these values ...
      noise: [0.0, 0.2, 0.5]
      seed: [0, 1, 2]
    fixed: {profile: laptop, steps: 2000}    # ... each with these

`grid` may also be a list of such mappings: the sweep is the union of their combinations (for values that only
make sense together, such as a recurrent net's width). Every key must be a parameter of the notebook, with a
value of its declared type; `validate` reports the first problem in one error, before anything runs.

Each point executes the notebook into outputs/sweeps/<sweep>/<point>.ipynb (e.g. `noise=0.2_seed=1.ipynb`);
`point_files` names every file of a point. Running points is `factored.sweep`'s job; reading what finished
points trained is `factored.results`'.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import config, parameters
from .paths import NOTEBOOKS_DIR, outputs_dir, relative
from .render import failed_path, partial_path

SWEEP_KEYS = ("notebook", "grid", "fixed")
CONFIG_PARAMETERS = parameters.RUN_PARAMETERS  # run-config fields a notebook parameter may set


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


def notebook_path(ref: str) -> Path:
    """`04_noise` (or `04_noise.ipynb`) -> <project>/notebooks/04_noise.ipynb; anything with a '/' is a path."""
    if "/" in ref:
        return Path(ref).expanduser().resolve()
    return NOTEBOOKS_DIR / (ref if ref.endswith(".ipynb") else f"{ref}.ipynb")


def fail(sweep: str, message: str) -> None:
    raise ValueError(f"sweep {sweep!r}: {message}")


def from_dict(spec: Any, name: str) -> Sweep:
    """A Sweep from the parsed YAML; ValueError on a malformed file (the notebook is checked by `validate`)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        fail(name, "a sweep name may hold only letters, digits, '.', '-' and '_'")
    if not isinstance(spec, dict):
        fail(name, f"expected a mapping with keys {list(SWEEP_KEYS)}, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        fail(name, f"unknown key {unknown[0]!r}; a sweep has the keys {list(SWEEP_KEYS)}")
    for key in ("notebook", "grid"):
        if key not in spec:
            fail(name, f"missing key {key!r}")
    if not isinstance(spec["notebook"], str) or not spec["notebook"]:
        fail(name, f"notebook must be a notebook name such as 04_noise, got {spec['notebook']!r}")
    grids = spec["grid"] if isinstance(spec["grid"], list) else [spec["grid"]]
    if not grids:
        fail(name, "grid is empty; give a mapping parameter -> list of values, or a list of such mappings")
    for grid in grids:
        if not isinstance(grid, dict) or not grid:
            fail(name, f"each grid must be a non-empty mapping parameter -> list of values, got {grid!r}")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                fail(name, f"grid axis {key!r} must be a non-empty list of values, got {values!r}")
            for v in values:
                _check_scalar(name, key, v)
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        fail(name, f"fixed must be a mapping parameter -> value, got {fixed!r}")
    for key, v in fixed.items():
        _check_scalar(name, key, v)
    both = sorted(set(fixed) & set().union(*grids))
    if both:
        fail(name, f"{both[0]!r} is both a grid axis and fixed; keep it in one of them")
    return Sweep(name, notebook_path(spec["notebook"]), tuple(grids), dict(fixed))


def _check_scalar(sweep: str, key: str, value: Any) -> None:
    if not isinstance(value, str | int | float | bool):
        fail(sweep, f"{key} values must be numbers, strings or booleans, got {value!r}")


def load(path: str | Path) -> Sweep:
    """The sweep in a YAML file, named after the file (params/sweeps/noise.yaml -> `noise`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no sweep file {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid YAML: {parameters.yaml_problem(e)}") from None
    return from_dict(spec, path.stem)


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
    `parameters.check`), run-config values are in range, and no two points share a name."""
    import papermill

    nb = sweep.notebook
    if not nb.is_file():
        known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
        fail(sweep.name, f"unknown notebook {relative(nb)}; the project's notebooks are {known}")
    declared = papermill.inspect_notebook(str(nb))
    if not declared:
        fail(sweep.name, f"{nb.name} has no cell tagged 'parameters', so it cannot be swept")
    values = [(k, v) for k, v in sweep.fixed.items()] + [(k, v) for g in sweep.grid for k, vs in g.items() for v in vs]
    for key, value in values:
        if key not in declared:
            fail(sweep.name, f"{key!r} is not a parameter of {nb.name}; its parameters are {sorted(declared)}")
        kind = declared[key]["inferred_type_name"]
        if kind in parameters.PARAMETER_CHECKS:
            ok, expected = parameters.PARAMETER_CHECKS[kind]
            if not ok(value):
                fail(sweep.name, f"{key} must be {expected} (`{key}: {kind}` in {nb.name}), got {value!r}")
    pts = points(sweep)
    seen = Counter(p.name for p in pts)
    twice = [name for name, n in seen.items() if n > 1]
    if twice:
        fail(sweep.name, f"the point {twice[0]} comes up {seen[twice[0]]} times; each grid point must be unique")
    for p in pts:
        if set(p.parameters) & (CONFIG_PARAMETERS | {"profile"}):  # what the notebook would reject, rejected now
            try:
                point_config(p)
            except ValueError as e:
                fail(sweep.name, f"point {p.name}: {e}")
    return pts


def point_config(point: Point, profile: str | None = None) -> config.RunConfig:
    """The run a point's notebook trains: `parameters.run_config` of its parameters, the constructor the notebook's
    prologue calls. `profile` (default: the point's own) replaces the point's; steps the point fixes then hold
    only at the point's own profile (another profile keeps its own budget)."""
    params = dict(point.parameters)
    own = params.get("profile", "")
    if profile is not None and profile != own:
        params.pop("steps", None)
        params["profile"] = profile
    return parameters.run_config(params)


def sweep_dir(sweep: Sweep, root: Path | None = None) -> Path:
    """outputs/sweeps/<name>/ (under FACTORED_OUTPUTS when set)."""
    return (root or outputs_dir()) / "sweeps" / sweep.name


def point_files(out_dir: Path, name: str) -> dict[str, Path]:
    """The files of one point: done (the executed notebook), partial and failed (the notebook while it runs and
    after an error, named by `factored.render`, which executes it), error (text), lock."""
    done = out_dir / f"{name}.ipynb"
    return {
        "done": done,
        "partial": partial_path(done),
        "failed": failed_path(done),
        "error": out_dir / f"{name}.failed.txt",
        "lock": out_dir / f"{name}.lock",
    }
