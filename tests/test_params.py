"""Every papermill parameter file names parameters its notebooks declare, with values that validate.

params/<profile>.yaml files apply to every notebook; params/<notebook>/<name>.yaml (e.g. params/04_noise/eps_0.2.yaml)
apply to that notebook alone.
"""

import dataclasses
from pathlib import Path

import papermill
import pytest
import yaml

from factored.config import DataConfig, ModelConfig, TrainConfig, make_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FILES = sorted((ROOT / "params").glob("*.yaml")) + sorted((ROOT / "params").glob("[0-9][0-9]_*/*.yaml"))


def notebooks_for(path: Path) -> list[Path]:
    if path.parent.name == "params":
        return NOTEBOOKS
    notebook = ROOT / "notebooks" / f"{path.parent.name}.ipynb"
    assert notebook.exists(), f"{path}: no notebook {notebook.name} for this folder"
    return [notebook]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT / "params")))
def test_parameter_file_matches_its_notebooks(path):
    values = yaml.safe_load(path.read_text())
    for nb_path in notebooks_for(path):
        declared = set(papermill.inspect_notebook(str(nb_path)))  # papermill's own reading of the parameters cell
        assert set(values) <= declared, f"{path.name}: {set(values) - declared} not parameters of {nb_path.name}"
    # the values that are run-config fields must validate (profile defaults to smoke when a file leaves it out)
    fields = {f.name for part in (DataConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(part)}
    make_config(values.get("profile", "smoke"), **{k: v for k, v in values.items() if k in fields})
