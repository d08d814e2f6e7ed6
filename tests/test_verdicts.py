"""The conclusions notebooks state, as data: each verdict's fields on known cases."""

import math

import pandas as pd
import pytest

from factored import verdicts
from factored.trajectory import Checkpoint


def test_learning_needs_every_factor_read_out_and_a_small_gap():
    assert verdicts.learning([0.95, 0.91, 0.9], 0.012).learned
    weak = verdicts.learning([0.95, 0.89, 0.99], 0.012)
    assert not weak.learned and weak.worst_r2 == 0.89 and weak.reason == "not learned: worst R² 0.89 < 0.9"
    far = verdicts.learning([0.95, 0.95], 0.03)
    assert not far.learned and far.reason == "not learned: gap 0.030 > 0.02"
    assert not verdicts.learning([0.95, math.nan], 0.01).learned and not verdicts.learning([], 0.01).learned


def phases(steps, dims, final, expanded, span):
    return {"phase_steps": steps, "phase_dims95": dims, "phase_span": span, "min_dims95": 8, "min_step": 500,
            "final_dims95": final, "final_step": 4000, "expanded": expanded}  # fmt: skip


def test_noise_phases_need_a_plateau_and_growth_beyond_the_noiseless_run():
    base = phases([], [], 18, True, 0.0)
    plateau = verdicts.noise_phases(phases([1000, 1500, 2000], [10, 11, 12], 30, True, 2.0), base, 10, 1e8, 2e9)
    assert plateau.phase_seen and plateau.expansion_begun and plateau.excess == 12 and plateau.band == (8, 12)
    assert plateau.budget_share == pytest.approx(0.05)
    passing = verdicts.noise_phases(phases([1000, 1250], [12, 11], 19, True, 1.25), base, 10, 1e8, 2e9)
    assert not passing.phase_seen  # through the band on the way up: no plateau
    assert not passing.expansion_begun and passing.above_band  # above the band, but only 1 above eps = 0


def score(found, overlap, ratio, n_found):
    return {"table": {"found": found, "overlap": overlap, "ratio": ratio}, "n_found": n_found,
            "n_true": len(found), "n_recovered": sum(f >= 0 for f in found),
            "n_spurious": n_found - sum(f >= 0 for f in found)}  # fmt: skip


def test_discovery_verdicts_count_and_match():
    every = verdicts.discovery_verdict(score([1, 0, 2], [0.99, 0.95, 0.93], [0.97, 0.9, 0.96], 3))
    assert every.right_count and every.all_matched and every.min_overlap == 0.93 and every.min_ratio == 0.9
    weak = verdicts.discovery_verdict(score([1, 0, 2], [0.99, 0.85, 0.93], [1, 1, 1], 3))
    assert weak.right_count and not weak.all_matched  # a match below MATCHED_OVERLAP
    extra = verdicts.discovery_verdict(score([0, -1], [0.99, 0.2], [1.0, math.nan], 3))
    assert (extra.recovered, extra.spurious, extra.right_count, extra.all_matched) == (1, 2, False, False)
    none = verdicts.discovery_verdict(score([-1, -1], [0.1, 0.2], [math.nan, math.nan], 0))
    assert math.isnan(none.min_overlap) and not none.all_matched


def test_only_learned_conditions_are_compared_and_the_budgets_are_said():
    table = pd.DataFrame({"seeds": [3, 3, 3], "learned": [3, 3, 1], "steps": [3600, 5600, 14400],
                          "still_falling": [0, 1, 2]}, index=["0", "0.2", "0.5"])  # fmt: skip
    c = verdicts.comparison(table)
    assert c.learned == ["0", "0.2"] and c.not_learned == ["0.5"] and not c.equal_steps
    assert (
        c.still_falling == ["0.2", "0.5"]
        and verdicts.comparison(table.drop(columns="still_falling")).still_falling == []
    )
    assert c.steps == {"0": 3600, "0.2": 5600, "0.5": 14400}
    assert verdicts.comparison(table.assign(steps=3600)).equal_steps


def test_a_training_path_says_when_a_run_learned_and_where_it_collapsed():
    def point(dims, r2):
        return Checkpoint([], {0.95: dims}, [], r2, 0.0, 0.0, 0.0)

    trajectory = {0: point(60, [0.0, 0.0]), 10: point(5, [0.3, 0.5]), 20: point(5, [0.95, 0.85]),
                  40: point(9, [0.95, 0.92]), 80: point(11, [0.97, 0.96])}  # fmt: skip
    metrics = [{"step": s, "gap": g} for s, g in ((0, 0.5), (10, 0.1), (20, 0.01), (30, 0.03), (40, 0.03), (80, 0.002))]
    path = verdicts.training_path(metrics, trajectory)
    # step 20: R² 0.85 < 0.9; step 40: gap 0.03 > 0.02; step 80: both pass
    assert path.learned_step == 80 and path.final.learned and path.final_gap == 0.002
    assert (path.collapse_dims95, path.collapse_step, path.final_dims95) == (5, 10, 11)  # the earliest minimum
    never = verdicts.training_path(metrics[:3], {s: trajectory[s] for s in (0, 10, 20)})
    assert never.learned_step is None and not never.final.learned and never.final.worst_r2 == 0.85


def test_a_gap_is_set_against_the_fidelity_cost():
    above = verdicts.gap_against_cost(0.03, 0.01)
    assert above.above_cost and above.ratio == pytest.approx(3.0)
    assert not verdicts.gap_against_cost(0.01, 0.01).above_cost  # equal: no more than factoring costs
    free = verdicts.gap_against_cost(0.005, 0.0)
    assert free.above_cost and math.isnan(free.ratio)


def test_a_dimension_is_nearer_the_factored_or_the_joint_count():
    assert verdicts.nearer_count(14, 10, 431).nearer == "factored"
    assert verdicts.nearer_count(300, 10, 431).nearer == "joint"
    assert verdicts.nearer_count(18, 10, 26).nearer == "joint"  # a tie goes to joint: factored must be nearer


def test_the_chain_is_held_to_the_factored_band_and_its_excess_dependence_to_two_standard_errors():
    near = verdicts.chain_finding(11, 10, 10, (0.010, 0.003), (0.002, 0.004))
    assert near.near_factored and near.difference == 1 and not near.differs
    assert near.excess == pytest.approx(0.008) and near.excess_err == pytest.approx(0.005)
    assert not near.predicts_dependence  # 0.008 < 2 x 0.005
    far = verdicts.chain_finding(14, 10, 10, (0.020, 0.003), (0.002, 0.004))
    assert not far.near_factored and far.difference == 4 and far.differs and far.predicts_dependence
    assert verdicts.chain_finding(12, 15, 10, (0, 0), (0, 0)).difference == -3


def test_conditions_are_learned_only_when_every_seed_has_learned():
    per_run = pd.DataFrame({"eps": ["0", "0", "0.1", "0.1", "0.5"], "learned": [True, True, True, False, True]})
    split = verdicts.learned_split(per_run, "eps", ["0", "0.1", "0.3", "0.5"])
    assert split.learned == ["0", "0.5"] and split.not_learned == ["0.1", "0.3"]  # 0.3: no run, not learned


def test_factor_scaling_says_which_n_learned_and_which_sit_below_the_joint_beliefs():
    scaling = pd.DataFrame({"N": [1, 2, 3, 4], "learned": [True, True, True, False],
                            "final_dims95": [4, 9, 12, 30], "beliefs_joint": [2, 8, 20, 60]})  # fmt: skip
    v = verdicts.factor_scaling(scaling)
    assert (v.learned, v.not_learned) == ([1, 2, 3], [4])
    assert (v.below_joint_beliefs, v.at_or_above_joint_beliefs) == ([3], [1, 2])


def test_a_survey_is_held_to_learned_networks_of_independent_factors():
    survey = pd.DataFrame(
        {
            "run": ["a", "a", "b", "c"],
            "step": [10, 20, 20, 20],
            "learned": [True, True, False, True],
            "independent": [True, True, True, False],
            "all matched": [True, False, False, False],
        }
    )
    v = verdicts.survey_finding(survey.set_index(["run", "step"]))
    assert (v.held, v.all_matched, v.missed) == (2, 1, [("a", 20)])


def test_one_method_beats_another_only_where_its_overlap_is_larger():
    every = verdicts.methods_compared([0.95, 0.9, 0.8], [0.5, math.nan, 0.7])  # NaN: not matched, counts as 0
    assert (every.factors, every.better, every.every_factor) == (3, 3, True)
    tie = verdicts.methods_compared([0.95, 0.7], [0.5, 0.7])
    assert (tie.better, tie.every_factor) == (1, False)
