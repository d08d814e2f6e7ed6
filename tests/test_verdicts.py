"""The conclusions notebooks state, as data: each verdict's fields on known cases."""

import math

import pandas as pd
import pytest

from factored import verdicts


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
    table = pd.DataFrame({"seeds": [3, 3, 3], "learned": [3, 3, 1], "steps": [3600, 5600, 14400]},
                         index=["0", "0.2", "0.5"])  # fmt: skip
    c = verdicts.comparison(table)
    assert c.learned == ["0", "0.2"] and c.not_learned == ["0.5"] and not c.equal_steps
    assert c.steps == {"0": 3600, "0.2": 5600, "0.5": 14400}
    assert verdicts.comparison(table.assign(steps=3600)).equal_steps


def test_a_training_path_says_when_a_run_learned_and_where_it_collapsed():
    def point(dims, r2):
        return {"dims": {"0.95": dims}, "r2": r2}

    trajectory = {0: point(60, [0.0, 0.0]), 10: point(5, [0.3, 0.5]), 20: point(5, [0.95, 0.85]),
                  40: point(9, [0.95, 0.92]), 80: point(11, [0.97, 0.96])}  # fmt: skip
    metrics = [{"step": s, "gap": g} for s, g in ((0, 0.5), (10, 0.1), (20, 0.01), (30, 0.03), (40, 0.03), (80, 0.002))]
    path = verdicts.training_path(metrics, trajectory)
    # step 20: R² 0.85 < 0.9; step 40: gap 0.03 > 0.02; step 80: both pass
    assert path.learned_step == 80 and path.final.learned and path.final_gap == 0.002
    assert (path.collapse_dims95, path.collapse_step, path.final_dims95) == (5, 10, 11)  # the earliest minimum
    never = verdicts.training_path(metrics[:3], {s: trajectory[s] for s in (0, 10, 20)})
    assert never.learned_step is None and not never.final.learned and never.final.worst_r2 == 0.85
