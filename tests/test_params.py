"""Every papermill parameter file names parameters the notebooks declare, with values that validate."""

from pathlib import Path

import papermill
import pytest
import yaml

from factored.config import make_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", sorted((ROOT / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_parameter_file_matches_every_notebook(path):
    values = yaml.safe_load(path.read_text())
    for nb_path in NOTEBOOKS:
        declared = set(papermill.inspect_notebook(str(nb_path)))  # papermill's own reading of the parameters cell
        assert set(values) <= declared, f"{path.name}: {set(values) - declared} not parameters of {nb_path.name}"
    make_config(values["profile"], seed=values["seed"])  # raises on a bad profile or seed
