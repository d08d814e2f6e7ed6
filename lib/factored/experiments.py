"""Run-level experiments for notebooks 03-07: one run's analyses gathered, and conditions set beside a baseline,
returned as data (dicts and data frames). The notebooks keep the narrative; tests check these numbers.

Every analysis is cached in its run folder by `probing`, so a notebook that asks again for the same run and
settings reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from . import analysis, probing, verdicts
from .runs import Run
from .verdicts import FACTORED_TOL


def final_results(run: Run, acfg: probing.AnalysisConfig, names: list[str], factored_dim: int) -> dict:
    """What the condition-versus-baseline notebooks (04, 06) measure of one run, each piece cached:
    {"trajectory", "phases" (`probing.dimension_phases`), "final" (last step), "vary" (vary-one at it),
    "random_overlaps", "summary" (`probing.summary`), "metrics"}."""
    trajectory = probing.analyze_run(run, acfg)
    final, vary, random_overlaps = probing.final_vary_one(run, acfg)
    metrics = run.metrics()
    return {
        "trajectory": trajectory,
        "phases": probing.dimension_phases(trajectory, factored_dim, FACTORED_TOL),
        "final": final,
        "vary": vary,
        "random_overlaps": random_overlaps,
        "summary": probing.summary(trajectory, vary, random_overlaps, metrics[-1]["gap"], names),
        "metrics": metrics,
    }


def phase_label(phases: dict) -> str:
    """The factored phase of `probing.dimension_phases` as "steps a-b", or "none"."""
    steps = phases["phase_steps"]
    return f"steps {steps[0]}-{steps[-1]}" if steps else "none"


def phases_table(phases: Mapping[str, dict], factored_dim: int) -> pd.DataFrame:
    """dims@95 over training per condition, one row each: init, the collapse (minimum and its step), the factored
    phase (checkpoints within FACTORED_TOL of factored_dim after the collapse) and the final value."""
    rows = {
        label: {
            "init": p["init_dims95"],
            "minimum (step)": f"{p['min_dims95']} ({p['min_step']})",
            f"within {FACTORED_TOL} of {factored_dim}": phase_label(p),
            "checkpoints in phase": len(p["phase_steps"]),
            "final (step)": f"{p['final_dims95']} ({p['final_step']})",
        }
        for label, p in phases.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def mean_by_kind(per_factor: Mapping[str, float], kinds: Sequence[str], kind: str) -> float:
    """Mean of a per-factor value (ordered like the factors) over the factors of one kind ("simplex": Mess3,
    "bloch"); NaN when there is none."""
    values = [v for v, k in zip(per_factor.values(), kinds, strict=True) if k == kind]
    return float(np.mean(values)) if values else float("nan")


def spread(values, fmt: str = ".3f") -> str:
    values = list(values)
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"


def comparison_table(results: Mapping[str, dict], kinds: Sequence[str], factored_dim: int) -> pd.DataFrame:
    """The rows every condition-versus-baseline table shares, one column per condition (`final_results` each):
    the gap, dims@95 at init, minimum, factored phase and final, held-out R^2 by factor kind and RMSE range,
    and the final and random-init mean overlaps at k = 1, 2."""
    rows: dict[str, dict[str, object]] = {}
    for label, r in results.items():
        p, s = r["phases"], r["summary"]
        rows[label] = {
            "gap to the optimal predictor (nats)": f"{s['optimal_loss_gap']:+.4f}",
            "dims@95 at init": p["init_dims95"],
            "min dims@95 (step)": f"{p['min_dims95']} ({p['min_step']})",
            f"factored phase (dims@95 within {FACTORED_TOL} of {factored_dim})": phase_label(p),
            "final dims@95 (step)": f"{p['final_dims95']} ({p['final_step']})",
            "mean held-out R², Mess3 factors": f"{mean_by_kind(s['r2'], kinds, 'simplex'):.3f}",
            "mean held-out R², Bloch factors": f"{mean_by_kind(s['r2'], kinds, 'bloch'):.3f}",
            "held-out RMSE per factor": spread(s["rmse"].values()),
            "mean overlap k = 1, 2 (final)": f"{s['overlap_k1']:.2g}, {s['overlap_k2']:.2g}",
            "random-init overlap k = 1, 2": f"{s['random_init_overlap_k1']:.2f}, {s['random_init_overlap_k2']:.2f}",
        }
    table = pd.DataFrame(rows)
    table.index.name = "quantity"
    return table


def seeds_table(summaries: Mapping[int, dict]) -> pd.DataFrame:
    """`probing.summary` of several seeds side by side (one column each, flattened), with mean, sd, min, max."""
    table = pd.DataFrame({f"seed {s}": probing.flatten_summary(r) for s, r in sorted(summaries.items())})
    numbers = table.astype(float)
    table["mean"], table["sd"] = numbers.mean(axis=1), numbers.std(axis=1)
    table["min"], table["max"] = numbers.min(axis=1), numbers.max(axis=1)
    return table


def overlap_split(directions: Sequence[np.ndarray], own: int = 2, k: int = 6) -> dict[str, float]:
    """Where the mean pairwise overlap at rank k comes from (directions: list[N >= 2] of vary-one [>= k, d]):
    "at_k", of the top k directions; "head", of each factor's top `own` directions (its belief: a Mess3 or
    Bloch belief spans 2); "tail", of directions own+1..k alone, which carry what varies with a factor's tokens
    beyond its belief. A tail that overlaps while the head does not says the factors share those directions."""
    k = min(k, *(len(V) for V in directions))
    if not 1 <= own < k:
        raise ValueError(f"own must be in 1..k-1 = {k - 1}, got {own}")
    return {
        "k": k,
        "at_k": float(analysis.mean_pairwise_overlap(directions, [k])[0]),
        "head": float(analysis.mean_pairwise_overlap([V[:own] for V in directions], [own])[0]),
        "tail": float(analysis.mean_pairwise_overlap([V[own:k] for V in directions], [k - own])[0]),
    }


def discovery_at(run: Run, step: int, acfg: probing.AnalysisConfig, seed: int = 0) -> dict:
    """Factor discovery from one checkpoint's activations alone (`discovery.find_factors`), then scored against
    what it never saw: the checkpoint's vary-one subspaces and the true beliefs (`score_against_truth`).
    Returns {"verdict": `verdicts.DiscoveryVerdict`, "report": the `FactorReport`, "score": the score}."""
    from . import discovery  # numpy/scikit-learn only; kept out of the import path of notebooks 03-07

    model = run.load_model(step)
    data = probing.probe_data(run.process, acfg.n_sequences, run.config.data.seq_len, acfg.seed)
    probed = probing.probe(model, run.process, data, acfg.site_for(model))
    report = discovery.find_factors(probed.acts, seed=seed)
    truth = list(probing.vary_one_at(run, [step], acfg)[step]["directions"])
    score = discovery.score_against_truth(report.subspaces, probed.acts, probed.beliefs, truth)
    return {"verdict": verdicts.discovery_verdict(score), "report": report, "score": score}


def beyond_factored_at(
    run: Run, steps: Sequence[int], acfg: probing.AnalysisConfig, n_sequences: int = probing.FEW_SEQUENCES
):
    """Does the representation grow beyond the factor beliefs? Dimension-free measures at checkpoints `steps`:
    "beliefs_r2" and "joint_gain" of `probing.variance_decomposition` (the share of the activations' variance the
    beliefs explain linearly, and what every cross-factor product of belief coordinates adds on top of beliefs,
    position and tokens), and "prediction_tc", the total correlation of the model's own next-token law (nats per
    token; the true law's is the fidelity cost). One row per step, as a data frame indexed by step."""
    seq_len = run.config.data.seq_len
    data = probing.few_probe_data(run.process, acfg, seq_len, n_sequences)
    rows = {}
    for step in steps:
        model = run.load_model(step)
        r2 = [
            r["r2"] for r in probing.variance_decomposition(model, run.process, data, acfg.site_for(model), acfg.seed)
        ]
        tc = probing.prediction_total_correlation(model, run.process, data.tokens)
        rows[step] = {"beliefs_r2": r2[0], "joint_gain": r2[-1] - r2[-2], "prediction_tc": float(tc.mean())}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("step")
