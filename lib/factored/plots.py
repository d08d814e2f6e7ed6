"""Every figure the notebooks show, one function each. Functions take plain results and return the Figure."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import hsv_to_rgb

from . import analysis
from .trajectory import Trajectory

# Scatter panels draw at most this many points (a fixed random subset) at a screen resolution of SCATTER_DPI:
# beyond about a thousand points the picture does not change, while the PNG a notebook stores grows with
# every point and pixel (28k points a panel at 100 dpi made megabyte notebooks).
MAX_POINTS = 1_000
SCATTER_DPI = 64
FIGURE_DPI = 80  # every figure: legible at notebook width, a third fewer pixels than matplotlib's 100
MAX_CURVES = 15  # curves per training-trajectory figure: one per checkpoint (80+) only blurs into a thick band


def _subset(n: int) -> np.ndarray:
    """Indices of at most MAX_POINTS of n rows, the same ones for every panel of a figure (seeded)."""
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_POINTS, replace=False))


# Every figure is drawn in seaborn's whitegrid style at notebook scale, inside a context: drawing one leaves the
# caller's global matplotlib and seaborn settings as they were.
def figure(plot):
    """Decorates each function below that returns a Figure: draws it in the house style, at FIGURE_DPI at most."""

    @functools.wraps(plot)
    def themed(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
            fig = plot(*args, **kwargs)
        # the dpi is set on the figure, not through plt.rc_context: leaving an rc_context stops Jupyter's inline
        # backend from showing the figures of later cells
        if hasattr(fig, "set_dpi") and fig.dpi > FIGURE_DPI:
            fig.set_dpi(FIGURE_DPI)
        return fig

    return themed


def belief_colors(beliefs: np.ndarray, kind: str = "simplex") -> np.ndarray:
    """beliefs: [..., 3] -> RGB [..., 3] in [0, 1]; a function of the belief alone, so one point gets one
    colour in the theory panel and in the activation panel. simplex: the belief itself as RGB. bloch: hue from
    the disk angle, saturation from the radius."""
    beliefs = analysis.check_belief3(beliefs, kind)
    if kind == "simplex":
        return np.clip(beliefs, 0.0, 1.0)
    xz = analysis.belief_to_2d(beliefs, "bloch")
    hue = (np.arctan2(xz[..., 1], xz[..., 0]) / (2 * np.pi)) % 1.0
    radius = np.clip(np.hypot(xz[..., 0], xz[..., 1]), 0.0, 1.0)
    # Saturation floor keeps the disk centre visible on a white background.
    hsv = np.stack([hue, 0.15 + 0.85 * radius, np.full_like(hue, 0.9)], axis=-1)
    return hsv_to_rgb(hsv)


def _outline(ax, kind: str) -> None:
    if kind == "simplex":
        corners = analysis.belief_to_2d(np.eye(3), "simplex")
        ax.fill(corners[:, 0], corners[:, 1], fill=False, lw=0.8, color="0.4")
    else:
        theta = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(theta), np.sin(theta), lw=0.8, color="0.4")
    ax.set_aspect("equal")
    ax.set_xticks([]), ax.set_yticks([])


@figure
def belief_geometry(beliefs: np.ndarray, kind: str, ax=None, title: str = "", s: float = 2.0):
    """Scatter beliefs [n, 3] in their natural 2D picture: the simplex (Mess3) or the Bloch disk."""
    ax = ax or plt.subplots(figsize=(4, 4), dpi=SCATTER_DPI)[1]
    beliefs = np.asarray(beliefs)[_subset(len(beliefs))]
    xy = analysis.belief_to_2d(beliefs, kind)
    ax.scatter(xy[:, 0], xy[:, 1], c=belief_colors(beliefs, kind), s=s, lw=0, rasterized=True)
    _outline(ax, kind)
    ax.set_title(title)
    return ax.figure


@figure
def dimension_count_curves(n_factors: np.ndarray, joint: np.ndarray, factored: np.ndarray):
    """Joint (exponential) vs factored (linear) belief dimension against the number of factors."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(n_factors, joint, "o-", label="joint: prod(d) - 1")
    ax.semilogy(n_factors, factored, "s-", label="factored: sum(d - 1)")
    ax.set(
        xlabel="number of factors N",
        ylabel="belief dimension",
        title="Dimension of the belief representation",
    )
    ax.legend()
    return fig


@figure
def per_position(
    values: dict[str, np.ndarray],
    errors: dict[str, np.ndarray] | None = None,
    ylabel: str = "nats",
    title: str = "",
):
    """One line per label over token positions 1..L (with optional error bars)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, v in values.items():
        pos = np.arange(1, len(v) + 1)
        err = None if errors is None else errors.get(label)
        ax.errorbar(pos, v, yerr=err, marker="o", ms=4, capsize=2, label=label)
    ax.set(xlabel="token position", ylabel=ylabel, title=title)
    ax.legend()
    return fig


@figure
def fidelity_cost_curve(eps: np.ndarray, cost: np.ndarray, stderr: np.ndarray, chain_cost: float, chain_stderr: float):
    """Mean fidelity cost of factoring vs noise eps, with the chain process as a reference line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.errorbar(eps, cost, yerr=stderr, marker="o", capsize=2, label="noise eps")
    ax.axhspan(chain_cost - chain_stderr, chain_cost + chain_stderr, color="C1", alpha=0.3)
    ax.axhline(chain_cost, color="C1", label="chain (hidden dependencies)")
    ax.set(
        xlabel="noise eps",
        ylabel="KL(true law || product of marginals), nats/token",
        title="Fidelity cost of a factored predictor",
    )
    ax.legend()
    return fig


@figure
def loss_curves(metrics: Sequence[dict], optimum: float, vocab_size: int):
    """Train and held-out loss vs step, against the exact optimum and the unigram plateau ln(vocab_size)."""
    plateau = float(np.log(vocab_size))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    rows = [m for m in metrics if m["step"] > 0]
    steps = np.array([m["step"] for m in rows])
    ax.plot(steps, [m["train_loss"] for m in rows], lw=1, alpha=0.7, label="train (one batch)")
    ax.plot(steps, [m["eval_loss"] for m in rows], lw=1.5, label="held-out")
    ax.axhline(optimum, color="k", ls="--", lw=1, label=f"exact optimum {optimum:.5f}")
    ax.axhline(plateau, color="0.5", ls=":", lw=1, label=f"ln({vocab_size}) = {plateau:.4f}")
    ax.set_xscale("log")
    ax.set_ylim(optimum - 0.02, max(plateau + 0.1, min(6.5, max(m["eval_loss"] for m in rows))))
    ax.set(xlabel="step", ylabel="loss (nats/token)", title="Training loss against the Bayes-optimal loss")
    ax.legend()
    return fig


def _step_colors(steps: Sequence[int]):
    import matplotlib as mpl

    norm = mpl.colors.LogNorm(vmin=max(1, min(steps) or 1), vmax=max(2, max(steps)))
    cmap = plt.get_cmap("viridis")
    return [cmap(norm(max(s, 1))) for s in steps], mpl.cm.ScalarMappable(norm=norm, cmap=cmap)


@figure
def cev_over_training(trajectory: Trajectory, factored_cev: np.ndarray, joint_cev: np.ndarray, k_max: int = 60):
    """Cumulative explained variance of the activations at every checkpoint (coloured by step) with the
    'Factored' (concatenated beliefs) and 'Joint' (outer product) reference curves."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    every = sorted(trajectory)
    steps = sorted({*every[:: max(1, len(every) // MAX_CURVES)], every[-1]})  # a readable, lighter subset
    colors, mappable = _step_colors(steps)
    for s, c in zip(steps, colors, strict=True):
        cev = np.asarray(trajectory[s].cev)[:k_max]
        ax.plot(np.arange(1, len(cev) + 1), cev, color=c, lw=0.8, alpha=0.8)
    for cev, label, style in (
        (factored_cev, "Factored (true beliefs)", "--"),
        (joint_cev, "Joint (true beliefs)", ":"),
    ):
        cev = np.asarray(cev)[:k_max]
        ax.plot(np.arange(1, len(cev) + 1), cev, "k", ls=style, lw=2, label=label)
    ax.axhline(0.95, color="r", lw=0.8, alpha=0.6)
    ax.set(
        xscale="log",
        xlabel="principal components",
        ylabel="cumulative explained variance",
        title="Residual-stream CEV over training",
        ylim=(0, 1.01),
    )
    fig.colorbar(mappable, ax=ax, label="training step")
    ax.legend(loc="lower right")
    return fig


@figure
def dims_over_training(trajectory: Trajectory, factored_dims: int, joint_dims: int, threshold: float = 0.95):
    """dims@95 of the activations vs step, against the factored (sum d_n - 1) and joint dimensions."""
    return dims_compare({"activations": trajectory}, factored_dims, joint_dims, threshold)


def _line_style(kinds: Sequence[str] | None, n: int) -> str:
    """Solid for Mess3 ("simplex") factors, dashed for Bloch walks; solid for all when kinds is None."""
    return "--" if kinds is not None and kinds[n] == "bloch" else "-"


@figure
def rmse_over_training(trajectory: Trajectory, names: Sequence[str], kinds: Sequence[str] | None = None):
    """Held-out belief-regression RMSE per factor vs step (kinds: `FactoredProcess.kinds`, for line styles)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    steps = np.array(sorted(trajectory))
    rmse = np.array([trajectory[s].rmse for s in steps])
    for n, name in enumerate(names):
        ax.plot(np.maximum(steps, 1), rmse[:, n], lw=1.5, ls=_line_style(kinds, n), label=name)
    ax.set(
        xscale="log",
        xlabel="training step (step 0 drawn at 1)",
        ylabel="held-out RMSE",
        title="Linear decodability of each factor's belief",
    )
    ax.legend()
    return fig


@figure
def projection_grid(
    beliefs: Sequence[np.ndarray],
    projections: Sequence[np.ndarray],
    kinds: Sequence[str],
    names: Sequence[str],
    s: float = 2.0,
):
    """Top row: each factor's true belief geometry. Bottom row: activations projected on that factor's top-2
    subspace directions, coloured by the same belief, so the eye can match the two pictures."""
    n = len(beliefs)
    fig, axes = plt.subplots(2, n, figsize=(3 * n, 6.2), dpi=SCATTER_DPI)
    for i in range(n):
        keep = _subset(len(beliefs[i]))
        belief_geometry(beliefs[i][keep], kinds[i], ax=axes[0, i], title=names[i], s=s)
        xy, colors = projections[i][keep], belief_colors(beliefs[i][keep], kinds[i])
        axes[1, i].scatter(xy[:, 0], xy[:, 1], c=colors, s=s, lw=0, rasterized=True)
        axes[1, i].set_aspect("equal", adjustable="datalim")
        axes[1, i].set_xticks([]), axes[1, i].set_yticks([])
    axes[0, 0].set_ylabel("true beliefs")
    axes[1, 0].set_ylabel("activations (top-2 dirs)")
    fig.tight_layout()
    return fig


@figure
def vary_one_dims(results: dict[str, dict], names: Sequence[str]):
    """Grouped bars: each factor's vary-one dims@95 (and the union) at a few training stages."""
    import pandas as pd

    rows = [
        {"stage": stage, "factor": name, "dims@95": d}
        for stage, r in results.items()
        for name, d in zip([*names, "union"], [*r["dims95"], r["union_dims95"]], strict=True)
    ]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.barplot(pd.DataFrame(rows), x="factor", y="dims@95", hue="stage", ax=ax)
    ax.set_title("Vary-one subspace dimension per factor")
    return fig


@figure
def overlap_vs_k(results: dict[str, np.ndarray], band: tuple[np.ndarray, np.ndarray, np.ndarray], d_model: int):
    """Mean pairwise subspace overlap vs rank k at a few stages, with the random-init band and k/d."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    k = np.arange(1, len(band[0]) + 1)
    ax.fill_between(k, band[0], band[2], color="0.8", label="random init (5-95%)")
    ax.plot(k, band[1], color="0.5", lw=1)
    ax.plot(k, k / d_model, "k:", label="random subspaces k/d")
    for stage, values in results.items():
        ax.plot(k, values, "o-", ms=3, label=stage)
    ax.set(
        yscale="log",
        xlabel="rank k",
        ylabel="mean pairwise overlap",
        title="Are the factor subspaces orthogonal?",
    )
    ax.legend(fontsize=8)
    return fig


@figure
def variance_shares(rows: Sequence[dict], total_dims95: int, factored_dims: int):
    """Nested encoding models (probing.variance_decomposition): share of the activations' variance explained
    as feature sets are added (bars), and dims@95 of what is still unexplained (line, right axis)."""
    labels = [r["features"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4))
    bars = ax.bar(range(len(rows)), [r["r2"] for r in rows], color=sns.color_palette()[0])
    ax.bar_label(bars, labels=[f"{r['r2']:.2f}" for r in rows], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="held-out share of variance explained")
    ax.set_xticks(range(len(rows)), labels, rotation=25, ha="right", fontsize=8)
    right = ax.twinx()
    right.plot(range(len(rows)), [r["residual_dims95"] for r in rows], "o-", color="C3", label="dims@95 of the rest")
    right.axhline(total_dims95, color="C3", ls=":", label=f"dims@95 of all activations ({total_dims95})")
    right.axhline(factored_dims, color="k", ls="--", lw=1, label=f"factored ({factored_dims})")
    right.set(ylabel="dims@95", ylim=(0, None))
    right.grid(False)
    right.legend(fontsize=8, loc="upper left")
    ax.set_title("What the residual stream's variance holds")
    fig.tight_layout()
    return fig


@figure
def cev_references(curves: dict[str, np.ndarray], k_max: int | None = None):
    """Cumulative explained variance of reference belief sets, one line each, labelled with their dims@95 (over
    the whole curve, whatever k_max shows). Curves come in (Factored, Joint) pairs: dashed and dotted, one
    colour per pair (e.g. one pair per process)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (label, cev) in enumerate(curves.items()):
        dims = analysis.dims_at(np.asarray(cev), 0.95)
        cev = np.asarray(cev)[:k_max]
        color, style = ("k", *(f"C{n}" for n in range(9)))[i // 2], ("--", ":")[i % 2]
        ax.plot(np.arange(1, len(cev) + 1), cev, color=color, ls=style, lw=2, label=f"{label}: dims@95 {dims}")
    ax.axhline(0.95, color="r", lw=0.8, alpha=0.6)
    ax.set(
        xscale="log",
        xlabel="principal components",
        ylabel="cumulative explained variance",
        title="CEV of the true beliefs",
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return fig


@figure
def dims_compare(trajectories: dict[str, Trajectory], factored_dims: int, joint_dims: int, threshold: float = 0.95):
    """dims@95 vs step for several runs on one axis (e.g. a noisy run beside the eps = 0 run)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, trajectory in trajectories.items():
        steps = np.array(sorted(trajectory))
        ax.plot(np.maximum(steps, 1), [trajectory[s].dims(threshold) for s in steps], "o-", ms=3, label=label)
    ax.axhline(factored_dims, color="C2", ls="--", label=f"factored: {factored_dims}")
    ax.axhline(joint_dims, color="C3", ls=":", label=f"joint: {joint_dims}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="training step (step 0 drawn at 1)",
        ylabel=f"dims@{float(threshold):.0%}",
        title="Dimension of the residual stream over training",
    )
    ax.legend()
    return fig


@figure
def per_factor_compare(
    trajectories: dict[str, Trajectory], names: Sequence[str], key: str = "r2", kinds: Sequence[str] | None = None
):
    """One panel per run: a per-factor regression score (`r2` or `rmse`) vs step, panels sharing the y axis."""
    fig, axes = plt.subplots(1, len(trajectories), figsize=(5 * len(trajectories), 3.8), sharey=True, squeeze=False)
    for ax, (label, trajectory) in zip(axes[0], trajectories.items(), strict=True):
        steps = np.array(sorted(trajectory))
        values = np.array([getattr(trajectory[s], key) for s in steps])
        for n, name in enumerate(names):
            ax.plot(np.maximum(steps, 1), values[:, n], lw=1.5, ls=_line_style(kinds, n), label=name)
        ax.set(xscale="log", xlabel="training step (step 0 drawn at 1)", title=label)
    axes[0, 0].set_ylabel({"r2": "held-out R²", "rmse": "held-out RMSE"}.get(key, key))
    axes[0, -1].legend(fontsize=8)
    fig.suptitle("Linear decodability of each factor's belief")
    fig.tight_layout()
    return fig


@figure
def gap_compare(metrics: dict[str, Sequence[dict]]):
    """Held-out loss minus the optimal predictor's loss on the same sequences, vs step, for several runs.

    Each run's gap is to its own process's optimum; the y axis is logarithmic above 1e-3 and linear below
    (symlog), since a gap can dip below 0 by sampling noise."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, rows in metrics.items():
        rows = [m for m in rows if m["step"] > 0]
        ax.plot([m["step"] for m in rows], [m["gap"] for m in rows], lw=1.5, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3, linscale=0.3)
    lowest = min(m["gap"] for rows in metrics.values() for m in rows if m["step"] > 0)
    ax.set_ylim(bottom=min(0.0, 2 * lowest))
    ax.set(xlabel="step", ylabel="gap to the optimal loss (nats/token)", title="Held-out loss above the optimum")
    ax.legend()
    return fig


@figure
def training_paths(runs: dict[str, tuple[Sequence[dict], Trajectory]], factored_dims: int, tol: int, learned_r2: float):
    """Three panels over training steps for several runs ({label: (metrics rows, trajectory)}): the held-out gap
    (symlog, as `gap_compare`), the worst factor's held-out R^2 (the line: `learned_r2`), and dims@95 (the band:
    the factored dimension +- `tol`). Shows how two recipes differ on the way, not only at the end."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for i, (label, (metrics, trajectory)) in enumerate(runs.items()):
        rows = [m for m in metrics if m["step"] > 0]
        steps = np.array([s for s in sorted(trajectory) if s > 0])
        style = dict(color=f"C{i}", lw=1.5, label=label)
        axes[0].plot([m["step"] for m in rows], [m["gap"] for m in rows], **style)
        axes[1].plot(steps, [min(trajectory[s].r2) for s in steps], **style)
        axes[2].plot(steps, [trajectory[s].dims95 for s in steps], **style)
    axes[0].set_yscale("symlog", linthresh=1e-3, linscale=0.3)
    axes[1].axhline(learned_r2, color="k", ls=":", lw=1)
    axes[1].set_ylim(0, 1)
    axes[2].axhspan(factored_dims - tol, factored_dims + tol, color="C2", alpha=0.15, lw=0)
    axes[2].set_yscale("log")
    titles = ("gap to the optimal loss (nats/token)", "worst factor's held-out R²", f"dims@95 (band: factored ± {tol})")
    for ax, title in zip(axes, titles, strict=True):
        ax.set(xscale="log", xlabel="training step", title=title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


@figure
def overlap_compare(overlaps: dict[str, np.ndarray], bands: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Mean pairwise vary-one overlap vs rank k for several runs (lines), each over its own random-init band
    (5th-95th percentile, same colour, shaded): orthogonal factor subspaces sit far below their band."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (label, values) in enumerate(overlaps.items()):
        lo, _, hi = bands[label]
        ax.fill_between(np.arange(1, len(lo) + 1), lo, hi, color=f"C{i}", alpha=0.15, lw=0)
        ax.plot(np.arange(1, len(values) + 1), values, "o-", color=f"C{i}", ms=3, label=f"{label} (band: random init)")
    ax.set(yscale="log", xlabel="rank k", ylabel="mean pairwise overlap", title="Are the factor subspaces orthogonal?")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


def _no_data(fig, ax, title: str, message: str):
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set(title=title, xticks=[], yticks=[])
    return fig


@figure
def dims_over_training_by(
    per_step,
    hue: str,
    factored_dims: int,
    title: str,
    order: Sequence[str] | None = None,
    legend_title: str = "",
    legend_outside: bool = False,
):
    """dims@95 against step, one curve per value of `hue` (an eps, a model): the mean over seeds, the band their
    range (min to max). `per_step`: a DataFrame with columns step, dims95 and `hue`, one row per run and step.
    `legend_outside`: the legend right of the axes, for curves that fill every corner."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if per_step.empty:
        return _no_data(fig, ax, title, "no finished runs at this budget yet")
    data = per_step.assign(step=np.maximum(per_step["step"], 1))
    sns.lineplot(
        data=data,
        x="step",
        y="dims95",
        hue=hue,
        hue_order=order,
        estimator="mean",
        errorbar=("pi", 100),
        marker="o",
        markersize=3,
        markeredgewidth=0,
        ax=ax,
    )
    ax.axhline(factored_dims, color="0.3", ls="--", lw=1, label=f"factored: {factored_dims}")
    ax.set(xscale="log", yscale="log", xlabel="training step (step 0 drawn at 1)", ylabel="dims@95%", title=title)
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # 12, not 1.2 x 10^1
        axis(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    outside = dict(loc="upper left", bbox_to_anchor=(1.01, 1)) if legend_outside else {}
    ax.legend(title=legend_title or hue, fontsize=8, **outside)
    if legend_outside:
        fig.tight_layout()
    return fig


@figure
def final_dims_by(per_run, intervals, x: str, factored_dims: int, title: str, xlabel: str = ""):
    """Final dims@95 per condition: one dot per seed, and the mean over seeds with its 95% t-interval.

    per_run: a DataFrame with columns `x` and final_dims95, one row per run; intervals: one row per value of `x`
    (in the order to draw) with columns mean, low, high (`seeds.interval_table`; NaN bounds for a single seed)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if per_run.empty:
        return _no_data(fig, ax, title, "no finished runs at this budget yet")
    order = list(intervals[x])
    slot = per_run[x].map({value: i for i, value in enumerate(order)}).to_numpy(float)
    jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(slot))  # seeded: a re-render draws the same figure
    ax.scatter(slot + jitter, per_run["final_dims95"], color="0.5", s=36, label="one seed")
    labels = [str(value) for value in order]
    ticks = ax.set_xticks(range(len(order)), labels)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.xaxis.grid(False)  # categories, not a scale
    # tilt the labels when side by side they would run into each other (a character is about 0.6 em wide)
    slot_points = ax.get_position().width * fig.get_figwidth() * 72 / len(order)
    if max(map(len, labels)) * 0.6 * ticks[0].label1.get_fontsize() > slot_points:
        ax.tick_params(axis="x", labelrotation=25)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    mean = intervals["mean"].to_numpy(float)
    low, high = intervals["low"].fillna(intervals["mean"]), intervals["high"].fillna(intervals["mean"])
    ax.errorbar(
        np.arange(len(order)) + 0.25,
        mean,
        yerr=[mean - low.to_numpy(float), high.to_numpy(float) - mean],
        fmt="D",
        color="C3",
        capsize=5,
        label="mean over seeds, 95% t-interval",
    )
    ax.axhline(factored_dims, color="0.3", ls="--", lw=1, label=f"factored: {factored_dims}")
    ax.set(xlabel=xlabel or x, ylabel="final dims@95%", title=title)
    top = np.nanmax([per_run["final_dims95"].max(), high.max(), factored_dims])
    ax.set_ylim(0, 1.1 * top)  # room above the highest dot and interval
    ax.legend(fontsize=8)
    return fig


@figure
def variance_parts_by(parts, by: str, order: Sequence[str], title: str):
    """What the final activations hold, per condition: the mean over runs of the held-out share of variance each
    part adds (stacked: beliefs, position, tokens, within-factor, joint belief, unexplained).

    parts: a DataFrame with column `by` and one column per part (`across_runs.variance_parts`), one row per run;
    order: the values of `by` to draw, top to bottom."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(order) + 1.6))
    if parts.empty:
        return _no_data(fig, ax, title, "no finished runs at this budget yet")
    columns = [c for c in parts.columns if c not in ("run", by)]
    means = parts.groupby(by)[columns].mean().loc[list(order)[::-1]]
    left = np.zeros(len(means))
    colors = [*sns.color_palette("deep", len(columns) - 1), "0.85"]  # the unexplained part in light grey
    for column, color in zip(columns, colors, strict=True):
        width = means[column].clip(lower=0).to_numpy(float)  # a part that adds nothing held out may dip below 0
        ax.barh(range(len(means)), width, left=left, color=color, label=column)
        left += width
    ax.set_yticks(range(len(means)), means.index, fontsize=8)
    ax.set(xlim=(0, 1), xlabel="held-out share of the final activations' variance (mean over seeds)", title=title)
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    return fig


@figure
def dims_vs_factors(scaling, d_model: int):
    """Measured dims@95 against the number of factors N, beside the factored (2N) and joint (3^N - 1) counts and
    the dims@95 of the true beliefs. scaling: `across_runs.factor_scaling`'s frame; d_model: the network's width."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    title = "Dimension against the number of Mess3 factors"
    if scaling.empty:
        return _no_data(fig, ax, title, "no runs on N Mess3 factors at this budget yet")
    n = scaling["N"]
    ax.plot(n, scaling["joint"], "o-", color="C1", label="joint: 3^N - 1")
    ax.plot(n, scaling["factored"], "s-", color="C0", label="factored: 2N")
    ax.plot(
        n, scaling["beliefs_joint"], "o", mfc="none", color="C1", ms=9, label="true beliefs, outer product (dims@95)"
    )
    ax.plot(
        n, scaling["beliefs_factored"], "s", mfc="none", color="C0", ms=9, label="true beliefs, concatenated (dims@95)"
    )
    ax.plot(n, scaling["final_dims95"], "D", color="C3", ms=7, label="network, final dims@95")
    ax.plot(n, scaling["min_dims95"], "v", color="C2", ms=7, label="network, smallest dims@95 (collapse)")
    ax.axhline(d_model, color="0.3", ls=":", lw=1, label=f"width d_model = {d_model}")
    ax.set(yscale="log", xlabel="number of factors N", ylabel="dimensions", title=title, xticks=list(n))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------------------------ factor discovery (08)
@figure
def dependence_structure(
    dependence: np.ndarray, groups: Sequence[np.ndarray], shuffled: np.ndarray, threshold: float, title: str = ""
):
    """Left: the components' pairwise dependence [k, k], ordered by group (boxes) then unassigned. Right: the
    dependence of pairs within a group, between components otherwise, and after shuffling, against the threshold."""
    dep = np.asarray(dependence)
    k = len(dep)
    assigned = [int(i) for g in groups for i in g]
    order = assigned + [i for i in range(k) if i not in set(assigned)]
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(10.5, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    im = ax.imshow(dep[np.ix_(order, order)], cmap="magma", vmin=0, vmax=max(float(dep.max()), 1e-9))
    start = 0
    for g in groups:
        ax.add_patch(plt.Rectangle((start - 0.5, start - 0.5), len(g), len(g), fill=False, ec="c", lw=2))
        start += len(g)
    ax.set(xticks=range(k), yticks=range(k), xticklabels=order, yticklabels=order, title="dependence, by group")
    ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
    label = np.full((k, k), -1)
    for n, g in enumerate(groups):
        label[np.ix_(g, g)] = n
    upper = np.triu_indices(k, 1)
    within = label[upper] >= 0
    bins = np.linspace(0, max(float(dep.max()), threshold) * 1.05, 40)
    hx.hist(np.ravel(shuffled), bins=bins, density=True, color="0.7", label="shuffled (independent)")
    hx.hist(dep[upper][~within], bins=bins, density=True, histtype="step", lw=2, label="between groups / unassigned")
    if within.any():
        hx.hist(dep[upper][within], bins=bins, density=True, histtype="step", lw=2, label="within a group")
    hx.axvline(threshold, color="r", ls="--", lw=1, label=f"noise threshold {threshold:.3f}")
    hx.set(yscale="log", xlabel="energy dependence of a pair", ylabel="density", title="pairs of components")
    hx.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@figure
def components_scan(counts: dict[int, int], contrasts: dict[int, float], chosen: int, min_contrast: float):
    """Factors found (bars) and the contrast of the best partition (line) against the number of components k."""
    ks = sorted(counts)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.bar(ks, [counts[k] for k in ks], color=["C1" if k == chosen else "C0" for k in ks], alpha=0.8)
    ax.set(xlabel="independent components kept (k)", ylabel="factors found", title="How the answer depends on k")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    twin = ax.twinx()
    twin.plot(ks, [contrasts[k] for k in ks], "k.-", lw=1)
    twin.axhline(min_contrast, color="k", ls=":", lw=1)
    twin.set_ylabel("contrast (dotted: the minimum)")
    twin.grid(False)
    return fig


@figure
def overlap_heatmap(overlap: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = ""):
    """Overlap of each found subspace (rows) with each reference subspace (columns), annotated."""
    fig, ax = plt.subplots(figsize=(1.1 * len(col_labels) + 2, 0.6 * len(row_labels) + 1.6))
    sns.heatmap(
        np.asarray(overlap), vmin=0, vmax=1, annot=True, fmt=".2f", cmap="viridis", ax=ax,
        xticklabels=col_labels, yticklabels=row_labels, cbar_kws={"label": "overlap (top 2 directions)"},
    )  # fmt: skip
    ax.set_title(title)
    fig.tight_layout()
    return fig


@figure
def discovered_projections(
    beliefs: Sequence[np.ndarray],
    found: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    kinds: Sequence[str],
    names: Sequence[str],
    s: float = 2.0,
):
    """One column per discovered factor. Top: activations on its top-2 discovered directions, as the method has
    them (no colours). Middle: the same points coloured afterwards by the true belief of the factor it matched.
    Bottom: the ground-truth (vary-one) directions of that factor, same colours."""
    n = len(found)
    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 6.6), squeeze=False, dpi=SCATTER_DPI)
    for i in range(n):
        keep = _subset(len(beliefs[i]))
        colors = belief_colors(beliefs[i][keep], kinds[i])
        for row, (xy, c) in enumerate(
            ((found[i][keep], "0.3"), (found[i][keep], colors), (reference[i][keep], colors))
        ):
            ax = axes[row, i]
            ax.scatter(xy[:, 0], xy[:, 1], c=c, s=s, lw=0, rasterized=True)
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_xticks([]), ax.set_yticks([])
        axes[0, i].set_title(names[i])
    axes[0, 0].set_ylabel("discovered (what the method sees)")
    axes[1, 0].set_ylabel("discovered, true-belief colours")
    axes[2, 0].set_ylabel("vary-one (ground truth)")
    fig.tight_layout()
    return fig
