"""Every notebook checks its parameters in the cell after the parameters, before anything is trained or written:
one ValueError naming the parameter and its allowed range.

The checks run in-process: the notebook's own parameters cell and checking cell, executed in one namespace with
the values papermill would inject between them (papermill assigns them in a cell of its own). One papermill run
checks that wiring end to end in a kernel."""

import papermill
import pytest
from notebook_runs import checking_cells, execute, run_checks, run_folders


@pytest.mark.parametrize(
    ("name", "parameters", "message"),
    [
        ("01_theory", {"bogus": 3}, "unknown parameter 'bogus'; this notebook's parameters are ['profile', 'seed']"),
        ("01_theory", {"seed": -1}, "seed must be an integer in [0, 2**63), got -1"),
        ("01_theory", {"seed": "abc"}, "seed must be an integer in [0, 2**63), got 'abc'"),
        ("03_factored_geometry", {"site": "foo"}, "site must be one of this model's sites ["),
        ("03_factored_geometry", {"n_random_models": 0}, "n_random_models must be an integer >= 1, got 0"),
        ("08_factor_discovery", {"site": "blocks.9.hook_resid_post"}, "site must be one of this model's sites ["),
        ("05_architectures", {"n_heads": 7}, "n_heads must be left unset for arch='lstm' (transformer only), got 7"),
        ("04_noise", {"noise": -0.1}, "noise must be a number in [0, 1], got -0.1"),
        ("04_noise", {"noise": 1.5}, "noise must be a number in [0, 1], got 1.5"),
        ("04_noise", {"noise": "abc"}, "noise must be a number in [0, 1], got 'abc'"),
        ("04_noise", {"nosie": 0.2}, "unknown parameter 'nosie'; this notebook's parameters are"),
        ("06_dependencies", {"noise": 0.2}, "unknown parameter 'noise'; this notebook's parameters are"),
    ],
    ids=[
        "01-unknown",
        "01-seed-range",
        "01-seed-type",
        "03-site",
        "03-n_random_models",
        "08-site",
        "05-lstm-heads",
        "04-noise-low",
        "04-noise-high",
        "04-noise-type",
        "04-unknown",
        "06-unknown",
    ],  # fmt: skip
)
def test_a_bad_parameter_stops_in_the_checking_cell_and_writes_nothing(name, parameters, message, outputs):
    assert "parameters.prologue(globals()" in checking_cells(name)[1]  # the cell right after the parameters
    with pytest.raises(ValueError) as info:
        run_checks(name, **parameters)
    assert message in str(info.value)
    assert run_folders(outputs) == []


@pytest.mark.parametrize("name", ["01_theory", "02_training", "04_noise", "08_factor_discovery"])
def test_good_parameters_pass_the_checks(name, outputs):
    run_checks(name, seed=1)  # every notebook has a seed; nothing is trained by the checks
    assert run_folders(outputs) == []


def test_an_outputs_folder_that_is_a_file_stops_a_notebook_in_the_checking_cell(outputs):
    outputs.rmdir()
    outputs.write_text("a file")
    with pytest.raises(ValueError, match=f"FACTORED_OUTPUTS={outputs} cannot be"):
        run_checks("02_training")
    assert outputs.read_text() == "a file"


def test_papermill_stops_a_notebook_with_a_bad_parameter_in_its_checking_cell(outputs, tmp_path):
    """The wiring, in a kernel: papermill's injected cell lands between the parameters and the checks."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        execute("01_theory", tmp_path / "out.ipynb", bogus=3)
    assert info.value.ename == "ValueError" and "unknown parameter 'bogus'" in info.value.evalue
    assert "parameters.prologue(globals()" in info.value.source
    assert run_folders(outputs) == []
