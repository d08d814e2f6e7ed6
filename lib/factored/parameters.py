"""Notebook parameters: the checks of papermill's injected values and the one prologue every notebook calls.

papermill passes unknown names silently and values of any type, so every notebook's first cell after its
`parameters` cell is

    parameters.prologue(globals())

which stops the notebook, before anything is computed or written, at the first unknown parameter, wrongly typed
value or run field out of its range, or at an outputs folder that is a file (one ValueError naming it), then
converts each value to its declared type (`-p noise 0` arrives as an int; `noise: float` makes it 0.0) and
replaces an empty `profile` by the default one.
Sweeps check their grids with the same `PARAMETER_CHECKS` before anything runs.
"""

from __future__ import annotations

from typing import Any

import yaml

from .config import check_field, field_owners, is_int, is_number, profile_defaulted, require
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
    size or budget of 0 means "the profile's" and is left to `config.from_parameters`, as are the rules between
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


def prologue(namespace: dict[str, Any]) -> None:
    """`check` the notebook's parameters and the outputs folder (`paths.outputs_dir`: not a file), convert each
    parameter to its declared type in place (an int given for a float), and resolve `profile` ("" ->
    $FACTORED_PROFILE or laptop) in place. Returns nothing, so the notebook cell that calls it prints nothing."""
    check(namespace)
    outputs_dir()
    for name, kind in declared(namespace).items():
        if kind == "float" and is_int(namespace[name]):
            namespace[name] = float(namespace[name])
    if "profile" in namespace:
        namespace["profile"] = resolve_profile(namespace["profile"])


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
