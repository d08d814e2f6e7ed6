"""Notebooks 05 and 02 run as a user runs them (papermill): an LSTM at the smoke profile beside the canonical
transformer, notebook 02 on N Mess3 factors, and bad parameters refused with one clear error before anything is
written."""

import json
import re

import papermill
import pytest
from notebook_runs import execute, printed


def test_lstm_runs_beside_the_canonical_transformer(tmp_path, outputs):
    text = printed(execute("05_architectures", tmp_path / "out.ipynb", arch="lstm", d_model=8))
    # the comparison table: one column per run, the rows of the three analyses
    header = next(line for line in text.splitlines() if "LSTM 8x2" in line and "(canonical)" in line)
    assert header.split() == ["LSTM", "8x2", "transformer", "24x1", "(canonical)"]
    for row in ("final dims@95", "held-out R², Mess3 F0", "held-out R², Bloch F4", "mean overlap k=1, 2"):
        assert re.search(rf"^{re.escape(row)} ", text, re.MULTILINE), row
    assert sorted(p.name.split("-")[0] for p in (outputs / "runs").iterdir()) == ["canonical", "lstm8x2"]
    summary = json.loads(next((outputs / "runs").glob("lstm8x2-*/summaries/05_architectures-*.json")).read_text())
    assert summary["settings"]["site"] is None  # the analysis settings are recorded with the results
    summary = summary["results"]
    assert summary["label"] == "LSTM 8x2" and summary["site"] == "rnn.1.hidden"  # the top layer of 2 (default)
    assert len(summary["r2"]) == 5 and summary["final_step"] == 30


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"arch": "mamba"}, r"arch must be one of \('transformer', 'rnn', 'lstm', 'gru'\), got 'mamba'"),
        ({"d_model": -3}, r"d_model must be an integer in \[1, 65536\], got -3"),
        ({"arch": "gru", "n_layers": -1}, r"n_layers must be an integer in \[1, 65536\], got -1"),
        ({"n_ctx": 1}, r"n_ctx must be an integer in \[2, 513\], got 1"),
        ({"d_model": "wide"}, r"d_model must be an integer in \[1, 65536\], got 'wide'"),
        ({"d_modle": 8}, r"unknown parameter 'd_modle'; this notebook's parameters are \['arch', 'd_mlp', 'd_model'"),
    ],
    ids=["arch", "negative-d_model", "negative-n_layers", "n_ctx", "type", "unknown-name"],
)
def test_bad_parameters_stop_before_anything_is_written(tmp_path, outputs, parameters, message):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute("05_architectures", tmp_path / "out.ipynb", **parameters)
    assert error.value.ename == "ValueError" and re.search(message, error.value.evalue), error.value.evalue
    assert error.value.exec_count <= 3  # stopped in the cell right after the parameters
    assert list(outputs.iterdir()) == []


def test_notebooks_02_and_03_share_a_run_on_n_mess3_factors_and_refuse_too_many(tmp_path, outputs):
    """Notebook 02 with `-p n_mess3 2` (a point of params/sweeps/factors.yaml): 9 joint tokens, its own run,
    which notebook 03 with the same parameter analyses rather than training another."""
    text = printed(execute("02_training", tmp_path / "out.ipynb", n_mess3=2, compare_target=False))
    assert "plateau ln(9) = 2.19722 nats" in text
    assert [p.name.split("-")[0] for p in (outputs / "runs").iterdir()] == ["mess3x2"]
    text = printed(execute("03_factored_geometry", tmp_path / "out3.ipynb", n_mess3=2))
    assert [p.name.split("-")[0] for p in (outputs / "runs").iterdir()] == ["mess3x2"]
    assert "Mess3 F1" in text and "Mess3 F2" not in text and "Bloch F" not in text  # two factors, both Mess3
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute("02_training", tmp_path / "bad.ipynb", n_mess3=9)
    assert "n_mess3 must be an integer in [0, 8] (0: the paper's five factors)" in str(error.value)
    assert len(list((outputs / "runs").iterdir())) == 1  # nothing written for the refused run
