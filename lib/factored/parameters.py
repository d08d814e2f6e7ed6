"""Notebook parameters: the checks of papermill's injected values and the one prologue every notebook calls.

papermill passes unknown names silently and values of any type, so every notebook's first cell after its
`parameters` cell is

    parameters.prologue(globals())

which stops the notebook, before anything is computed or written, at the first unknown parameter, wrongly typed
value or run field out of its range, or at an outputs folder that is a file (one ValueError naming it), then
converts each value to its declared type (`-p noise 0` arrives as an int; `noise: float` makes it 0.0),
replaces an empty `profile` by the default one, and returns the run and analysis configs the parameters describe
(`Setup`). `run_config` is the one constructor of a run from parameter values: notebooks and sweep points call it.
Sweeps check their grids with the same `PARAMETER_CHECKS` before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import yaml

from .config import (
    ARCHS,
    RECURRENT_DEFAULTS,
    TRANSFORMER_ONLY,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_field,
    field_owners,
    is_int,
    is_number,
    make_config,
    profile_defaulted,
    require,
)
from .paths import outputs_dir
from .profiles import resolve_profile

# Names IPython itself puts in a notebook's namespace; never parameters.
IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
PARAMETER_TYPES = (str, int, float, bool, list, dict, tuple, type(None))
# A declared type's name -> (is this value of it?, what it must be). An int is a valid float.
PARAMETER_CHECKS = {
    "float": (is_number, "a number"),
    "int": (is_int, "an integer"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "True or False"),
}


def declared(namespace: dict[str, Any]) -> dict[str, str]:
    """{parameter: declared type name} of a notebook: the annotated names of its `parameters` cell, which Python
    records in `__annotations__` (papermill injects plain assignments, without annotations)."""
    annotations = namespace.get("__annotations__", {})
    return {name: getattr(kind, "__name__", kind) for name, kind in annotations.items()}  # a type, or its name


def check(namespace: dict[str, Any]) -> None:
    """One ValueError for the first bad parameter of a notebook (call with `globals()`): an unknown name (any other
    public name holding plain data), a value not of its declared type, or a run field outside its own range (a
    size or budget of 0 means "the profile's" and is left to `from_parameters`, as are the rules between
    fields, checked on the whole config right after)."""
    kinds = declared(namespace)
    unknown = sorted(
        k
        for k, v in namespace.items()
        if not k.startswith("_") and k not in IPYTHON_NAMES and k not in kinds and isinstance(v, PARAMETER_TYPES)
    )
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; this notebook's parameters are {sorted(kinds)}")
    for name, kind in kinds.items():
        value = namespace.get(name)
        if kind in PARAMETER_CHECKS:
            if name in field_owners() and not profile_defaulted(name, value):
                check_field(name, value)  # its own message names its range
            ok, expected = PARAMETER_CHECKS[kind]
            require(ok(value), name, expected, value)


@dataclass(frozen=True)
class Setup:
    """What a notebook's parameters describe: `run`, the run it trains or reads (`run_config`; None for a notebook
    without run parameters); `analysis`, its analysis settings (`probing.analysis_config`, with the notebook's
    `site` and `n_random_models` if it has them); `values`, the parameters themselves, converted."""

    run: RunConfig | None
    analysis: Any  # probing.AnalysisConfig (probing imports torch; this module does not)
    values: dict[str, Any]

    def __iter__(self):
        """`cfg, acfg = parameters.prologue(globals())`."""
        return iter((self.run, self.analysis))


def prologue(namespace: dict[str, Any], **fixed: Any) -> Setup:
    """`check` the notebook's parameters and the outputs folder (`paths.outputs_dir`: not a file), convert each
    parameter to its declared type in place (an int given for a float), resolve `profile` ("" ->
    $FACTORED_PROFILE or laptop) in place, and return the `Setup` they describe, with the run fields `fixed`
    (`structure="chain"`) on top. A bad value stops here, before anything is trained or written."""
    check(namespace)
    outputs_dir()
    for name, kind in declared(namespace).items():
        if kind == "float" and is_int(namespace[name]):
            namespace[name] = float(namespace[name])
    if "profile" in namespace:
        namespace["profile"] = resolve_profile(namespace["profile"])
    values = {name: namespace[name] for name in declared(namespace)}
    run = run_config(values, **fixed) if set(values) & RUN_PARAMETERS else None
    return Setup(run, analysis_settings(values, run), values)


def analysis_settings(values: Mapping[str, Any], run: RunConfig | None = None):
    """The analysis config notebook parameter values describe: the profile's, with `site` ("": the model's default)
    and `n_random_models` where given, the site checked against `run`'s model."""
    from .probing import analysis_config  # torch: only where a notebook asks for its analysis settings

    overrides = {k: values[k] for k in ("n_random_models",) if k in values}
    if values.get("site"):
        overrides["site"] = values["site"]
    return analysis_config(values.get("profile") or None, run=run, **overrides)


def from_parameters(profile: str = "", name: str | None = None, **parameters: Any) -> RunConfig:
    """The run a notebook's parameters describe: make_config where a size or budget of 0 means "the profile's".

    Notebooks declare e.g. `steps: int = 0` and `d_model: int = 0`, so that `papermill -p d_model 32` changes
    one field and everything else follows the profile (`target: str = ""` likewise). `n_ctx` (context length,
    BOS included) sets seq_len.
    """
    overrides = {k: v for k, v in parameters.items() if not profile_defaulted(k, v)}
    if "n_ctx" in overrides:
        n_ctx = overrides.pop("n_ctx")
        require(is_int(n_ctx) and 2 <= n_ctx <= 513, "n_ctx", "an integer in [2, 513]", n_ctx)
        overrides["seq_len"] = n_ctx - 1
    return make_config(profile, name=name, **overrides)


# Notebook parameters that set run fields (through `from_parameters`, which also knows n_ctx).
RUN_PARAMETERS = frozenset({f.name for part in (DataConfig, ModelConfig, TrainConfig) for f in fields(part)})
RUN_PARAMETERS |= {"n_ctx"}
SIZES = ("arch", "d_model", "n_layers", "n_heads", "d_mlp")


def run_config(values: Mapping[str, Any], strict: bool = False, **changes: Any) -> RunConfig:
    """The run notebook parameter values describe (the one constructor notebooks, sweep points and the training
    command line share): the run fields among `values` (others, like `survey`, are ignored; with `strict`, as on
    the command line, any other name is one ValueError) with `changes` on top, through `from_parameters` with the
    architecture study's size rules (`architecture_sizes`), at `values["profile"]` ("": the default)."""
    merged = {**values, **changes}
    # strict: other names go on to make_config, whose own check refuses them
    params = {k: v for k, v in merged.items() if k in RUN_PARAMETERS or (strict and k != "profile")}
    sizes = {k: params.pop(k) for k in SIZES if k in params}
    arch = sizes.pop("arch", "transformer")
    return from_parameters(merged.get("profile", ""), arch=arch, **params, **architecture_sizes(arch, **sizes))


def architecture_sizes(arch: str, d_model: int = 0, n_layers: int = 0, n_heads: int = 0, d_mlp: int = 0) -> dict:
    """A notebook's size parameters (0: unset) for `from_parameters`, with the rules of the architecture study:
    a recurrent net's unset width and depth are the authors' (RECURRENT_DEFAULTS) and it takes no transformer-only
    sizes; a transformer whose width is set but not its MLP gets d_mlp = 4 d_model (the GPT-2 ratio)."""
    sizes = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "d_mlp": d_mlp}
    if arch in ARCHS and arch != "transformer":
        return {k: sizes[k] or v for k, v in RECURRENT_DEFAULTS.items()} | {
            k: v for k, v in sizes.items() if k in TRANSFORMER_ONLY and v
        }
    if d_model and not d_mlp:
        sizes["d_mlp"] = 4 * d_model
    return sizes


def parse_value(name: str, text: str) -> Any:
    """A parameter's value given on a command line (`factored.train --lr 1e-3`, `factored.render -p lr 1e-3`):
    read as YAML (0.2, true, lstm, [1, 2]), except that a number is read as Python and papermill read it (YAML 1.1
    reads `1e-3` as a string). What YAML cannot read, a `!!python` tag among it, is one ValueError naming `name`."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{name}: cannot read {text!r} ({yaml_problem(e)})") from None
    if isinstance(value, str):  # a plain number YAML 1.1 does not know (a quoted one keeps its quotes in `text`)
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                pass
    return value


def yaml_problem(e: Exception) -> str:
    """What is wrong and where, in one line (PyYAML's own message takes several)."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(e).split())
