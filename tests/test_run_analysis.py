"""One run's analyses (notebooks 03-08) on one tiny trained run: each result against what it is made of."""

import numpy as np
import pandas as pd
import pytest

from factored import config, probing, run_analysis, tables, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = config.make_config("smoke", d_model=8, n_layers=1, n_heads=1, d_mlp=16, steps=20, batch_size=16,
                             eval_batch_size=32, plateau_window=5, device="cpu")  # fmt: skip
    return train.get_or_train(cfg, root=tmp_path_factory.mktemp("outputs"), progress=False)


NAMES = ["Mess3 F0", "Mess3 F1", "Mess3 F2", "Bloch F3", "Bloch F4"]


def test_analyze_gathers_the_cached_analyses_of_one_run(run):
    acfg = probing.analysis_config("smoke")
    out = run_analysis.analyze(run, acfg, progress=False)
    assert out.final == run.steps[-1] == out.phases["final_step"] and sorted(out.trajectory) == run.steps
    assert set(out.vary) == set(out.stages.values())  # vary-one at init, collapse and final
    assert out.summary["optimal_loss_gap"] == run.metrics()[-1]["gap"] and out.metrics == run.metrics()
    assert out.phases["final_dims95"] == out.summary["final_dims95"] == out.trajectory[out.final].dims95
    assert list(out.summary["r2"]) == NAMES == run.process.names
    again = run_analysis.analyze(run, acfg, progress=False)  # read back from the run folder's caches
    assert again.summary == out.summary and again.trajectory == out.trajectory


def test_the_comparison_table_has_a_column_per_condition_and_prints_its_numbers(run):
    out = run_analysis.analyze(run, probing.analysis_config("smoke"), progress=False)
    table = tables.comparison_table({"a": out, "b": out}, run.process.kinds)
    assert list(table.columns) == ["a", "b"] and table.loc["gap", "a"] == run.metrics()[-1]["gap"]
    mess3 = np.mean([out.summary["r2"][n] for n in NAMES[:3]])
    assert table.loc["r2_mess3", "b"] == pytest.approx(mess3)
    text = tables.comparison_text(table, factored_dim=10)
    assert text.loc["gap to the optimal predictor (nats)", "a"] == f"{run.metrics()[-1]['gap']:+.4f}"
    assert text.loc["mean held-out R², Mess3 factors", "b"] == f"{mess3:.3f}"
    assert text.loc["min dims@95 (step)", "a"] == f"{out.phases['min_dims95']} ({out.phases['min_step']})"


def test_comparison_text_of_known_numbers():
    numbers = {"gap": 0.01234, "init_dims95": 60, "min_dims95": 4, "min_step": 100, "phase_first": 200,
               "phase_last": 1500, "final_dims95": 11, "final_step": 1500, "r2_mess3": 0.98, "r2_bloch": np.nan,
               "rmse_min": 0.0241, "rmse_max": 0.026, "overlap_k1": 2.1e-4, "overlap_k2": 9.1e-4,
               "random_overlap_k1": 0.52, "random_overlap_k2": 0.556}  # fmt: skip
    none = {**numbers, "phase_first": np.nan, "phase_last": np.nan}
    text = tables.comparison_text(pd.DataFrame({"run": numbers, "flat": none}), factored_dim=10)
    assert text["run"].tolist() == ["+0.0123", "60", "4 (100)", "steps 200-1500", "11 (1500)", "0.980", "nan",
                                    "0.024-0.026", "0.00021, 0.00091", "0.52, 0.56"]  # fmt: skip
    assert text.loc["factored phase (dims@95 within 2 of 10)", "flat"] == "none"


def test_discovery_at_scores_what_it_found_against_the_vary_one_subspaces(run):
    acfg = probing.analysis_config("smoke")
    out = run_analysis.discovery_at(run, run.steps[-1], acfg)
    v, score = out["verdict"], out["score"]
    assert v.found == out["report"].n_factors == score["n_found"] and v.true == 5
    assert v.recovered == sum(f >= 0 for f in score["table"]["found"]) and v.recovered + v.spurious == v.found


def test_beyond_factored_at_is_the_variance_decomposition_at_each_step(run):
    acfg = probing.analysis_config("smoke")
    steps = [0, run.steps[-1]]
    frame = run_analysis.beyond_factored_at(run, steps, acfg, n_sequences=200)
    assert list(frame.index) == steps
    final = probing.joint_belief_gain(run, acfg, n_sequences=200)  # the same measure at the final checkpoint
    assert frame.loc[steps[-1], "beliefs_r2"] == final["beliefs_r2"]
    assert frame.loc[steps[-1], "joint_gain"] == final["joint_gain"]
    assert (frame["prediction_tc"] >= 0).all()


def test_mean_by_kind_and_spread():
    assert tables.mean_by_kind({"a": 1.0, "b": 3.0, "c": 5.0}, ["simplex", "bloch", "simplex"], "simplex") == 3.0
    assert np.isnan(tables.mean_by_kind({"a": 1.0}, ["simplex"], "bloch"))
    assert tables.spread([0.5, 0.25, 0.75], ".2f") == "0.25-0.75" and tables.spread([]) == "-"


def test_seed_summaries_read_the_finished_seeds_and_train_nothing(run):
    acfg = probing.analysis_config("smoke")
    root = run.dir.parent.parent
    seed = run.config.train.seed
    found = run_analysis.seed_summaries(run.config, acfg, (seed, seed + 1), root=root)
    assert list(found) == [seed] and found[seed] == run_analysis.analyze(run, acfg, progress=False).summary
    assert sorted(p.name for p in (root / "runs").iterdir()) == [run.dir.name]
