"""Results over finished runs: the sweep budget, which runs share it, what `collect` reads from them, intervals over
seeds, Welch's test against a reference, the tables notebook 07 prints, and the model labels of notebook 05."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from factored import across_runs, config, parameters, probing, seeds, train, verdicts
from factored.trajectory import stages


def tiny_config(**overrides):
    base = dict(d_model=8, n_layers=1, n_heads=1, d_mlp=16, steps=5, batch_size=16, eval_batch_size=32)
    return config.make_config("smoke", plateau_window=5, device="cpu", **{**base, **overrides})


def test_a_sweep_file_describes_one_run_per_point_and_finds_those_trained(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("notebook: 05_architectures\ngrid: [{arch: [lstm], seed: [0, 1]}, {arch: [transformer], "
                    "seed: [0]}]\nfixed: {profile: smoke, steps: 5}\n")  # fmt: skip
    smoke = across_runs.sweep_configs(path, "smoke")
    assert [(c.model.arch, c.train.seed, c.train.steps) for c in smoke] == [("lstm", 0, 5), ("lstm", 1, 5),
                                                                            ("transformer", 0, 5)]  # fmt: skip
    assert (smoke[0].model.d_model, smoke[0].model.n_layers) == (32, 2)  # notebook 05's recurrent sizes
    assert smoke[2] == parameters.from_parameters("smoke", steps=5)  # the canonical transformer, as 02 trains it
    laptop = across_runs.sweep_configs(path, "laptop")
    assert laptop[2].train.steps == config.make_config("laptop").train.steps  # another profile keeps its budget
    assert across_runs.sweep_runs(path, "smoke", tmp_path) == []
    train.get_or_train(smoke[1], root=tmp_path, progress=False)
    assert [r.config for r in across_runs.sweep_runs(path, "smoke", tmp_path)] == [smoke[1]]


def test_seed_interval_is_the_student_t_interval():
    mean, low, high = seeds.seed_interval([10, 12, 14])
    assert mean == 12 and math.isclose(high - mean, 4.302652729911275 * 2 / math.sqrt(3))
    assert math.isclose(mean - low, high - mean)
    mean, low, high = seeds.seed_interval([7])
    assert mean == 7 and math.isnan(low) and math.isnan(high)


def test_run_frames_read_finished_runs(tmp_path):
    ref = tiny_config()
    for noise, seed in [(0.0, 0), (0.0, 1), (0.5, 0)]:
        train.get_or_train(tiny_config(noise=noise, seed=seed), root=tmp_path, progress=False)
    found = across_runs.finished_runs(tmp_path)
    assert len(found) == 3
    selected = found
    acfg = probing.analysis_config("smoke")
    per_step, per_run = across_runs.run_frames(selected, ref, acfg)
    assert len(per_run) == 3 and set(per_step["step"]) == set(range(6))
    assert set(per_run["model"]) == {"transformer 8x1"}
    table = seeds.interval_table(per_run, "noise")
    assert list(table["noise"]) == [0.0, 0.5] and list(table["seeds"]) == [2, 1]
    zero = per_run[per_run["noise"] == 0.0]["final_dims95"]
    assert np.isclose(table["mean"][0], zero.mean())


def test_model_labels_name_what_differs_from_the_reference():
    ref = config.make_config("laptop")
    assert across_runs.model_label(ref, ref) == "transformer 120x4"
    lstm = parameters.from_parameters("laptop", arch="lstm", d_model=32, n_layers=2)
    assert across_runs.model_label(lstm, ref) == "LSTM 32x2"
    wide = parameters.from_parameters("laptop", d_model=480, d_mlp=1920, n_ctx=33)
    assert across_runs.model_label(wide, ref) == "transformer 480x4, n_ctx 33"
    narrow_mlp = config.make_config("laptop", d_model=480, d_mlp=480)  # the canonical MLP kept: not 05's rule
    assert across_runs.model_label(narrow_mlp, ref) == "transformer 480x4, d_mlp 480"
    assert across_runs.model_label(config.make_config("laptop", init="gpt2"), ref) == "transformer 120x4, init gpt2"


def test_factor_scaling_sets_measured_dims_beside_both_predictions():
    finals = pd.DataFrame(
        {"n_mess3": [0, 1, 2, 2], "init_dims95": [89, 8, 9, 9], "final_dims95": [18, 3, 5, 7],
         "min_dims95": [9, 2, 4, 4], "gap": [0.1, 0.01, 0.01, 0.5], "r2": [0.9, 0.95, 0.95, 0.5],
         "worst_r2": [0.9, 0.95, 0.93, 0.4], "learned": [False, True, True, False]}
    )  # fmt: skip
    table = across_runs.factor_scaling(finals, probing.analysis_config("smoke"), seq_len=8)
    assert list(table["learned"]) == [True, False] and list(table["worst_r2"]) == [0.95, 0.4]  # every seed, or not
    assert list(table["N"]) == [1, 2] and list(table["seeds"]) == [1, 2]  # the paper's process (0) is not an N
    assert list(table["factored"]) == [2, 4] and list(table["joint"]) == [2, 8]
    assert table["final_dims95"][1] == 6 and np.isclose(table["gap"][1], 0.255)  # means over seeds
    # the true beliefs of one factor: concatenation and outer product are the same vectors
    assert table["beliefs_factored"][0] == table["beliefs_joint"][0] <= 2
    assert 3 <= table["beliefs_factored"][1] <= 4 < table["beliefs_joint"][1] <= 8


def test_difference_table_is_welchs_test_against_the_reference():
    finals = pd.DataFrame({"eps": [0, 0, 0, 0.5, 0.5, 0.5, 0.2], "final_dims95": [10, 12, 14, 20, 22, 24, 11]})
    table = seeds.difference_table(finals, "eps", 0).set_index("eps")
    assert list(table.index) == [0.2, 0.5]
    row = table.loc[0.5]
    assert row["seeds"] == 3 and row["reference_mean"] == 12 and row["difference"] == 10
    t = 10 / math.sqrt(4 / 3 + 4 / 3)  # equal variances 4 and 3 seeds each: Welch's df = 4
    assert math.isclose(row["p_welch"], 2 * stats.t.sf(t, 4), rel_tol=1e-9)
    assert math.isnan(table.loc[0.2, "p_welch"])  # one seed: no test


def test_condition_table_counts_the_seeds_still_falling_at_the_end():
    finals = pd.DataFrame(
        {"eps": [0, 0, 0.5, 0.5], "init_dims95": [89, 87, 89, 89], "final_dims95": [9, 10, 80, 84],
         "min_dims95": [8, 10, 80, 84], "min_step": [600, 1000, 1000, 1000], "final_step": [1000] * 4,
         "gap": [0.01, 0.1, 0.01, 0.05], "r2": [0.93, 0.4, 0.92, 0.2], "worst_r2": [0.92, 0.3, 0.91, 0.1],
         "learned": [True, False, True, False]}
    )  # fmt: skip
    table = across_runs.condition_table(finals, "eps")
    assert list(table["still_falling"]) == [1, 2] and list(table["init"]) == [88, 89]
    assert list(table["collapse"]) == [9, 82] and table.loc[0.5, "seeds' range"] == "80-84"
    assert (
        list(table["learned"]) == [1, 1]
        and list(table["worst_r2"]) == [0.3, 0.1]
        and list(table["steps"]) == [1000] * 2
    )


def test_difference_table_tests_against_a_reference_without_spread_quietly():
    finals = pd.DataFrame({"eps": [0, 0, 0, 0.2, 0.2, 0.2], "final_dims95": [9, 9, 9, 8, 12, 13]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every seed of the reference at 9: a valid Welch test, and no warning
        row = seeds.difference_table(finals, "eps", 0).iloc[0]
    assert row["difference"] == 2 and 0 < row["p_welch"] < 1


def test_a_single_seed_has_no_interval_and_says_so():
    finals = pd.DataFrame(
        {"eps": [0, 0, 0.5], "init_dims95": [89, 87, 89], "final_dims95": [9, 11, 80], "min_dims95": [8, 10, 80],
         "min_step": [600, 1000, 1000], "final_step": [1000] * 3, "gap": [0.1, 0.1, 0.03], "r2": [0.3, 0.4, 0.2],
         "worst_r2": [0.2, 0.3, 0.1], "learned": [False] * 3}
    )  # fmt: skip
    shown = across_runs.condition_table(finals, "eps")["final dims@95 (95% interval)"]
    assert shown[0.5] == "80.0 (n/a, 1 seed)" and "nan" not in shown[0.0] and shown[0.0].startswith("10.0 (")


def test_a_sweep_file_fixes_process_model_and_its_own_steps(tmp_path):
    path = tmp_path / "e.yaml"
    fixed = "{profile: laptop, steps: 4000, n_mess3: 3, mess3_x: 0.05, d_model: 64, n_heads: 2, d_mlp: 256}"
    path.write_text(f"notebook: 04_noise\ngrid: {{noise: [0, 0.3]}}\nfixed: {fixed}\n")
    (laptop, noisy), (smoke, _) = across_runs.sweep_configs(path, "laptop"), across_runs.sweep_configs(path, "smoke")
    assert (laptop.train.steps, laptop.data.n_mess3, laptop.data.mess3_x, laptop.model.d_model) == (4000, 3, 0.05, 64)
    assert smoke.train.steps == config.make_config("smoke").train.steps  # another profile keeps its own budget
    assert (smoke.data.n_mess3, smoke.model.d_mlp) == (3, 256) and noisy.data.noise == 0.3
    assert noisy == parameters.from_parameters("laptop", noise=0.3, steps=4000, n_mess3=3, mess3_x=0.05, d_model=64,
                                           n_heads=2, d_mlp=256)  # as notebook 04 builds it  # fmt: skip


def test_noise_growth_measures_the_cost_of_factoring_and_growth_past_the_collapse(tmp_path):
    made = [
        train.get_or_train(tiny_config(noise=e, n_mess3=2, mess3_x=0.05, mess3_a=0.9), root=tmp_path, progress=False)
        for e in (0.0, 0.5)
    ]
    acfg = probing.analysis_config("smoke")
    growth = across_runs.noise_growth(made, acfg, n_mc=500).set_index("run")
    clean, noisy = growth.loc[made[0].dir.name], growth.loc[made[1].dir.name]
    assert clean["fidelity_cost"] == 0  # independent and noiseless: the law is the product of its marginals
    assert noisy["fidelity_cost"] > 1e-2  # sharp Mess3 factors: factoring costs (notebook 01)
    assert math.isclose(noisy["below_factored"], made[1].metrics()[-1]["gap"] - noisy["fidelity_cost"])
    for run in made:  # growth past the collapse: the final dims@95 less the smallest one after init
        trajectory = probing.analyze_run(run, acfg, progress=False)
        st = stages(trajectory)
        dims = {stage: trajectory[st[stage]].dims95 for stage in ("collapse", "final")}
        assert growth.loc[run.dir.name, "dims_growth"] == dims["final"] - dims["collapse"]
    for when in ("collapse", "final"):
        assert ((growth[f"beliefs_r2_{when}"] <= 1) & (growth[f"prediction_tc_{when}"] >= 0)).all()
    assert list(tmp_path.glob("runs/*/summaries/noise_growth-*.json"))  # cached: a second call reads the same
    pd.testing.assert_frame_equal(across_runs.noise_growth(made, acfg, n_mc=500).set_index("run"), growth)


def test_variance_parts_of_each_run_are_its_final_decomposition_and_cached(tmp_path):
    made = train.get_or_train(tiny_config(), root=tmp_path, progress=False)
    acfg = probing.analysis_config("smoke")
    frame = across_runs.variance_parts([made], acfg).set_index("run")
    gain = probing.joint_belief_gain(made, acfg)  # the same decomposition, three of its numbers
    row = frame.loc[made.dir.name]
    assert row["beliefs"] == pytest.approx(gain["beliefs_r2"])
    assert row["joint belief"] == pytest.approx(gain["joint_gain"])
    assert row.sum() == pytest.approx(1.0) and row["unexplained"] == pytest.approx(1 - gain["before_joint_r2"]
                                                                                  - gain["joint_gain"])  # fmt: skip
    assert list(tmp_path.glob("runs/*/summaries/variance_parts-*.json"))
    pd.testing.assert_frame_equal(across_runs.variance_parts([made], acfg).set_index("run"), frame)


def test_intervals_by_sets_the_t_intervals_of_several_columns_side_by_side():
    frame = pd.DataFrame({"eps": [0, 0, 0, 0.5], "a": [10, 12, 14, 3.0], "b": [1.0, 1.0, 1.0, 2.0]})
    table = seeds.intervals_by(frame, "eps", {"a": ".3g", "b": ".1f"})
    assert list(table["seeds"]) == [3, 1]
    assert table.loc[0, "a"] == "12 (7.03 to 17)" and table.loc[0.5, "a"] == "3 (n/a, 1 seed)"
    assert table.loc[0, "b"] == "1.0 (1.0 to 1.0)"


def test_expansion_findings_need_a_joint_gain_above_eps_0_and_every_seed_beyond_factored():
    base = {"final_dims95": 6, "min_dims95": 6, "min_step": 500, "dims_growth": 0, "gap": 0.003, "fidelity_cost": 0.0}
    clean = {**base, "prediction_tc_final": 1e-4, "below_factored": 0.003}
    rows = [{"eps": "0", "noise": 0.0, **clean, "joint_gain_final": g} for g in (0.0005, 0.0004, 0.0006)]
    noisy = {**base, "fidelity_cost": 0.03, "final_dims95": 18, "min_dims95": 18, "min_step": 90}
    rows += [{"eps": "0.3", "noise": 0.3, **noisy, "joint_gain_final": g, "prediction_tc_final": 0.029,
              "below_factored": -0.027} for g in (0.052, 0.051, 0.053)]  # fmt: skip
    rows += [{"eps": "0.1", "noise": 0.1, **noisy, "joint_gain_final": g, "prediction_tc_final": 0.009,
              "below_factored": b} for g, b in ((0.014, -0.006), (0.015, 0.001), (0.015, -0.006))]  # fmt: skip
    low, high = verdicts.expansion_findings(pd.DataFrame(rows), factored_dim=6)
    assert (low.eps, low.seeds, low.beyond_factored, low.seeds_below_cost) == (0.1, 3, False, 2)  # one seed is not
    assert (high.eps, high.beyond_factored, high.seeds_below_cost) == (0.3, True, 3)
    assert high.joint_gain == pytest.approx(0.052) and high.joint_gain_eps0 == pytest.approx(0.0005)
    assert high.p_joint_gain < 1e-3 and (high.final_dims95, high.final_dims95_eps0) == (18.0, 6.0)
    assert high.seeds_factored_first == 0 and high.growth == 0 and high.fidelity_cost == pytest.approx(0.03)
    assert high.sentence().startswith("eps 0.3 (3 seeds): beyond the factored beliefs: YES.")
    assert verdicts.expansion_findings(pd.DataFrame(rows[3:]), factored_dim=6) == []  # no eps 0 to compare with
