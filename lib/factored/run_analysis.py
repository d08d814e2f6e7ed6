"""One run's analyses, gathered by one recipe: `analyze(run, acfg)` returns a `RunAnalysis` that notebooks 03-06,
the seeds table and the sweeps read. Each piece is measured and cached in the run folder by `probing`, so asking
again for the same run and settings reads it back.

Also here: the measures a notebook takes of one run at chosen checkpoints (`beyond_factored_at`, `discovery_at`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import probing, products, verdicts
from .config import RunConfig
from .runs import Run, finished_run
from .trajectory import Trajectory, dimension_phases, stages


@dataclass(frozen=True)
class RunAnalysis:
    """Everything notebooks 03-06 measure of one run.

    trajectory: {step: `trajectory.Checkpoint`} (PCA and regression at every checkpoint); stages: the steps of
    init, collapse and final (`trajectory.stages`); phases: `trajectory.dimension_phases` against the process's
    factored dimension; vary: vary-one results at each stage's step; random_overlaps: [n_models, k_max], the
    random-init baseline; summary: `summary`, plain floats; metrics: the run's logged rows."""

    trajectory: Trajectory
    stages: dict[str, int]
    phases: dict
    vary: dict[int, dict]
    random_overlaps: np.ndarray
    summary: dict
    metrics: list[dict]

    @property
    def final(self) -> int:
        """The last checkpoint's step."""
        return self.stages["final"]


def analyze(run: Run, acfg: probing.AnalysisConfig, progress: bool = True) -> RunAnalysis:
    """Every analysis of one run (each cached in its folder): the trajectory, its stages and phases, vary-one
    subspaces at the stages, the random-init overlap baseline and the `summary`. A single-factor process has no
    pairwise overlap (NaN)."""
    trajectory = probing.analyze_run(run, acfg, progress=progress)
    st = stages(trajectory)
    vary = probing.vary_one_at(run, sorted(set(st.values())), acfg)
    random_overlaps = probing.random_init_overlaps(run, acfg)
    metrics = run.metrics()
    _, factored_dim = products.dimension_counts(run.process.state_dims)
    gap = metrics[-1]["gap"]  # held-out loss minus the optimal predictor's on the same sequences
    return RunAnalysis(
        trajectory=trajectory,
        stages=st,
        phases=dimension_phases(trajectory, factored_dim),
        vary=vary,
        random_overlaps=random_overlaps,
        summary=summary(trajectory, vary, random_overlaps, gap, run.process.names),
        metrics=metrics,
    )


def summary(
    trajectory: Trajectory, vary: dict[int, dict], random_overlaps: np.ndarray, gap: float, names: list[str]
) -> dict:
    """One run's results as plain floats: final and minimum dims@95, per-factor RMSE and R^2 (keyed by `names`),
    vary-one dims, the mean overlaps at k = 1, 2 against the random-init median, the gap."""
    st = stages(trajectory)
    final, collapse = trajectory[st["final"]], trajectory[st["collapse"]]
    random_median = np.median(random_overlaps, axis=0)
    overlap = vary[st["final"]]["mean_overlap"]
    return {
        "final_step": st["final"],
        "final_dims95": final.dims95,
        "min_dims95": collapse.dims95,
        "min_dims95_step": st["collapse"],
        "rmse": dict(zip(names, final.rmse, strict=True)),
        "r2": dict(zip(names, final.r2, strict=True)),
        "vary_one_dims95": dict(zip(names, vary[st["final"]]["dims95"].tolist(), strict=True)),
        "union_dims95": int(vary[st["final"]]["union_dims95"]),
        "overlap_k1": float(overlap[0]),
        "overlap_k2": float(overlap[1]) if len(overlap) > 1 else float("nan"),  # NaN: a model of width 1
        "random_init_overlap_k1": float(random_median[0]),
        "random_init_overlap_k2": float(random_median[1]) if len(random_median) > 1 else float("nan"),
        "optimal_loss_gap": gap,
    }


def seed_summaries(
    cfg: RunConfig, acfg: probing.AnalysisConfig, seeds: Sequence[int] = (0, 1, 2), root=None
) -> dict[int, dict]:
    """{seed: `summary`} of the runs of `cfg` with each of `seeds` that have finished (the others are left out;
    nothing is trained), for the tables across seeds."""
    found = {}
    for seed in seeds:
        run = finished_run(replace(cfg, train=replace(cfg.train, seed=seed)), root)
        if run is not None:
            found[seed] = analyze(run, acfg, progress=False).summary
    return found


def flatten_summary(result: dict) -> dict[str, float]:
    """One `summary` as flat {quantity: number} (per-factor entries as "rmse Mess3 F0", ...), for tables that
    put several runs (seeds) side by side."""
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update({f"{key} {name}": float(v) for name, v in value.items()})
        else:
            flat[key] = float(value)
    return flat


def beyond_factored_at(
    run: Run, steps: Sequence[int], acfg: probing.AnalysisConfig, n_sequences: int = probing.FEW_SEQUENCES
) -> pd.DataFrame:
    """Does the representation grow beyond the factor beliefs? Dimension-free measures at checkpoints `steps`:
    "beliefs_r2" and "joint_gain" of `probing.variance_decomposition` (the share of the activations' variance the
    beliefs explain linearly, and what every cross-factor product of belief coordinates adds on top of beliefs,
    position and tokens), and "prediction_tc", the total correlation of the model's own next-token law (nats per
    token; the true law's is the fidelity cost). One row per step, as a data frame indexed by step."""
    data = probing.few_probe_data(run.process, acfg, run.config.data.seq_len, n_sequences)
    rows = {}
    for step in steps:
        model = run.load_model(step)
        probed = probing.probe(model, run.process, data, acfg.site_for(model))
        r2 = [r["r2"] for r in probing.variance_decomposition(probed, run.process, data.tokens, acfg.seed)]
        tc = probing.prediction_total_correlation(model, run.process, data.tokens)
        rows[step] = {"beliefs_r2": r2[0], "joint_gain": r2[-1] - r2[-2], "prediction_tc": float(tc.mean())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("step")


def discovery_at(run: Run, step: int, acfg: probing.AnalysisConfig, seed: int = 0) -> dict:
    """Factor discovery from one checkpoint's activations alone (`discovery.find_factors`), then scored against
    what it never saw: the checkpoint's vary-one subspaces and the true beliefs
    (`discovery_eval.score_against_truth`).
    Returns {"verdict": `verdicts.DiscoveryVerdict`, "report": the `FactorReport`, "score": the score}."""
    from . import discovery, discovery_eval  # numpy/scikit-learn only: kept out of the import path of 03-07

    model = run.load_model(step)
    data = probing.probe_data(run.process, acfg.n_sequences, run.config.data.seq_len, acfg.seed)
    probed = probing.probe(model, run.process, data, acfg.site_for(model))
    report = discovery.find_factors(probed.acts, seed=seed)
    truth = list(probing.vary_one_at(run, [step], acfg)[step]["directions"])
    score = discovery_eval.score_against_truth(report.subspaces, probed.acts, probed.beliefs, truth)
    return {"verdict": verdicts.discovery_verdict(score), "report": report, "score": score}
