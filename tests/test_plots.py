"""The figures' own rules: colours that are a function of the belief alone, and a style that stays inside."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from factored import plots, products

matplotlib.use("Agg")


def test_belief_colours_are_the_simplex_itself_and_tell_bloch_points_apart():
    corners = np.eye(3)
    np.testing.assert_allclose(plots.belief_colors(corners), corners)
    bloch = np.array([[1 / 3, 1 / 3, 0.0], [1 / 3, 0.0, -1 / 6], [1 / 3, 0.0, 0.0]])
    rgb = plots.belief_colors(bloch, "bloch")
    assert rgb.shape == (3, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert len({tuple(c) for c in rgb.round(6)}) == 3  # different points, different colours
    with pytest.raises(ValueError, match="beliefs"):
        plots.belief_colors(np.ones((4, 2)))


def test_factor_names_follow_their_kind():
    assert products.paper_process().kinds == ("simplex",) * 3 + ("bloch",) * 2
    assert products.paper_process().names == ["Mess3 F0", "Mess3 F1", "Mess3 F2", "Bloch F3", "Bloch F4"]
    assert products.mess3_factors(2).names == ["Mess3 F0", "Mess3 F1"]


def test_a_figure_leaves_the_global_style_as_it_was():
    before = dict(matplotlib.rcParams)
    fig = plots.dimension_count_curves(np.arange(1, 4), np.array([2, 8, 26]), np.array([2, 4, 6]))
    assert fig.dpi <= plots.FIGURE_DPI
    after = dict(matplotlib.rcParams)
    assert {k for k in before if before[k] != after[k]} == set()


def test_variance_parts_stack_each_condition_s_mean_shares_in_order():
    parts = pd.DataFrame({"run": ["a", "b", "c"], "model": ["wide", "wide", "narrow"], "beliefs": [0.4, 0.6, 0.9],
                          "position": [0.3, 0.1, -0.01], "unexplained": [0.3, 0.3, 0.11]})  # fmt: skip
    fig = plots.variance_parts_by(parts, "model", ["narrow", "wide"], "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["wide", "narrow"]  # the first one drawn on top
    widths = [round(p.get_width(), 6) for p in ax.patches]
    assert widths == [0.5, 0.9, 0.2, 0.0, 0.3, 0.11]  # per part, the means of (wide, narrow); below 0 drawn as 0


def test_a_legend_drawn_outside_lies_right_of_the_axes():
    per_step = pd.DataFrame({"step": [0, 10, 100] * 2, "dims95": [60, 12, 10, 60, 30, 20], "eps": list("aaabbb")})
    for outside in (False, True):
        fig = plots.dims_over_training_by(per_step, "eps", 10, "t", legend_outside=outside)
        fig.canvas.draw()
        ax = fig.axes[0]
        legend, axes_box = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert (legend.x0 >= axes_box.x1) == outside
        plt.close(fig)


def test_final_dims_by_draws_each_seed_in_its_condition_s_slot_the_same_way_every_time():
    per_run = pd.DataFrame({"model": ["a", "a", "a", "b"], "final_dims95": [11, 12, 13, 20]})
    intervals = pd.DataFrame({"model": ["b", "a"], "mean": [20.0, 12.0], "low": [np.nan, 9.5], "high": [np.nan, 14.5]})

    def dots(fig):
        return fig.axes[0].collections[0].get_offsets().data

    first = dots(plots.final_dims_by(per_run, intervals, "model", 10, "t"))
    again = dots(plots.final_dims_by(per_run, intervals, "model", 10, "t"))
    np.testing.assert_array_equal(first, again)  # seeded jitter: a re-render draws the same figure
    np.testing.assert_allclose(np.round(first[:, 0]), [1, 1, 1, 0])  # "a" drawn second, as `intervals` orders it
    np.testing.assert_array_equal(first[:, 1], [11, 12, 13, 20])
    assert np.abs(first[:, 0] - np.round(first[:, 0])).max() <= 0.08


def test_final_dims_by_tilts_only_labels_that_would_run_into_each_other():
    def rotation(names):
        per_run = pd.DataFrame({"c": names, "final_dims95": range(len(names))})
        intervals = pd.DataFrame({"c": names, "mean": range(len(names)), "low": np.nan, "high": np.nan})
        return plots.final_dims_by(per_run, intervals, "c", 10, "t").axes[0].get_xticklabels()[0].get_rotation()

    assert rotation(["0", "0.1", "0.2", "0.3", "0.5"]) == 0
    assert rotation([f"transformer 480x4, d_mlp {w}" for w in range(10)]) == 25
