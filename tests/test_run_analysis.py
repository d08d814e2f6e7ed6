"""Run-level experiments (notebooks 03-08) on one tiny trained run: each result against what it is made of."""

import numpy as np
import pytest

from factored import config, experiments, probing, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = config.make_config("smoke", d_model=8, n_layers=1, n_heads=1, d_mlp=16, steps=20, batch_size=16,
                             eval_batch_size=32, plateau_window=5, device="cpu")  # fmt: skip
    return train.get_or_train(cfg, root=tmp_path_factory.mktemp("outputs"), progress=False)


NAMES = ["F0", "F1", "F2", "F3", "F4"]


def test_final_results_gather_the_cached_analyses_of_one_run(run):
    acfg = probing.analysis_config("smoke")
    out = experiments.final_results(run, acfg, NAMES, factored_dim=10)
    assert out["final"] == run.steps[-1] == out["phases"]["final_step"]
    assert out["summary"]["optimal_loss_gap"] == run.metrics()[-1]["gap"] and out["metrics"] == run.metrics()
    assert out["summary"] == probing.analyze_all(run, acfg, NAMES, progress=False)["summary"]  # notebook 03's
    assert out["phases"]["final_dims95"] == out["summary"]["final_dims95"] and list(out["summary"]["r2"]) == NAMES


def test_the_comparison_table_has_a_column_per_condition(run):
    acfg = probing.analysis_config("smoke")
    out = experiments.final_results(run, acfg, NAMES, factored_dim=10)
    table = experiments.comparison_table({"a": out, "b": out}, run.process.kinds, factored_dim=10)
    assert list(table.columns) == ["a", "b"]
    assert table.loc["gap to the optimal predictor (nats)", "a"] == f"{run.metrics()[-1]['gap']:+.4f}"
    mess3 = np.mean([out["summary"]["r2"][n] for n in NAMES[:3]])
    assert table.loc["mean held-out R², Mess3 factors", "b"] == f"{mess3:.3f}"


def test_discovery_at_scores_what_it_found_against_the_vary_one_subspaces(run):
    acfg = probing.analysis_config("smoke")
    out = experiments.discovery_at(run, run.steps[-1], acfg)
    v, score = out["verdict"], out["score"]
    assert v.found == out["report"].n_factors == score["n_found"] and v.true == 5
    assert v.recovered == sum(f >= 0 for f in score["table"]["found"]) and v.recovered + v.spurious == v.found


def test_beyond_factored_at_is_the_variance_decomposition_at_each_step(run):
    acfg = probing.analysis_config("smoke")
    steps = [0, run.steps[-1]]
    frame = experiments.beyond_factored_at(run, steps, acfg, n_sequences=200)
    assert list(frame.index) == steps
    final = probing.joint_belief_gain(run, acfg, n_sequences=200)  # the same measure at the final checkpoint
    assert frame.loc[steps[-1], "beliefs_r2"] == final["beliefs_r2"]
    assert frame.loc[steps[-1], "joint_gain"] == final["joint_gain"]
    assert (frame["prediction_tc"] >= 0).all()


def test_mean_by_kind_and_spread():
    assert experiments.mean_by_kind({"a": 1.0, "b": 3.0, "c": 5.0}, ["simplex", "bloch", "simplex"], "simplex") == 3.0
    assert np.isnan(experiments.mean_by_kind({"a": 1.0}, ["simplex"], "bloch"))
    assert experiments.spread([0.5, 0.25, 0.75], ".2f") == "0.25-0.75" and experiments.spread([]) == "-"
