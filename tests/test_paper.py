"""The paper's reported values are looked up by the run they describe, and only for what the paper reports."""

from factored import paper
from factored.parameters import from_parameters


def test_architecture_values_are_found_by_the_runs_model_and_context():
    assert paper.architecture_final_dims95(from_parameters("laptop")).value == "10-11"
    assert paper.architecture_final_dims95(from_parameters("laptop", arch="lstm", d_model=32, n_layers=2)).value == (
        "about 14-17"
    )
    assert paper.architecture_final_dims95(from_parameters("laptop", n_ctx=101)).value == "about 10-12"
    assert paper.architecture_final_dims95(from_parameters("laptop", n_ctx=33)) is paper.NOT_REPORTED
    for other in (dict(structure="chain"), dict(n_mess3=3), dict(noise=0.2)):  # another process: not this figure
        assert paper.architecture_final_dims95(from_parameters("laptop", **other)) is paper.NOT_REPORTED


def test_noise_values_are_found_by_eps_however_it_is_written():
    assert paper.noise_final_dims95(0).value == "10-11" and paper.noise_final_dims95(0.5).value == "about 38"
    assert paper.noise_final_dims95(0.4) is paper.NOT_REPORTED
