"""Tables that set runs side by side: conditions against a baseline (04, 06) and seeds of one condition (03).

Tables hold numbers (`comparison_table`, `seeds_table`); `comparison_text` writes one as the notebooks print it.
Each column is one run's `run_analysis.RunAnalysis`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .run_analysis import RunAnalysis, flatten_summary
from .verdicts import FACTORED_TOL


def phase_label(phase_steps: Sequence[float]) -> str:
    """A factored phase's checkpoints (`trajectory.dimension_phases`' phase_steps, or its first and last) as
    "steps a-b", or "none"."""
    return f"steps {phase_steps[0]:.0f}-{phase_steps[-1]:.0f}" if len(phase_steps) else "none"


def phases_table(phases: Mapping[str, dict], factored_dim: int) -> pd.DataFrame:
    """dims@95 over training per condition, one row each: init, the collapse (minimum and its step), the factored
    phase (checkpoints within FACTORED_TOL of factored_dim after the collapse) and the final value."""
    rows = {
        label: {
            "init": p["init_dims95"],
            "minimum (step)": f"{p['min_dims95']} ({p['min_step']})",
            f"within {FACTORED_TOL} of {factored_dim}": phase_label(p["phase_steps"]),
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
    """A range as text, "low-high" ("-" for no values)."""
    values = list(values)
    return f"{min(values):{fmt}}-{max(values):{fmt}}" if values else "-"


def comparison_table(results: Mapping[str, RunAnalysis], kinds: Sequence[str]) -> pd.DataFrame:
    """The numbers every condition-versus-baseline table shares, one column per condition: the gap; dims@95 at
    init, at the collapse (and its step), the factored phase's first and last step (NaN: none) and final (and its
    step); held-out R^2 by factor kind; the RMSE's range over factors; the final and random-init mean overlaps
    at k = 1, 2."""
    rows: dict[str, dict[str, float]] = {}
    for label, r in results.items():
        p, s = r.phases, r.summary
        phase = p["phase_steps"]
        rmse = list(s["rmse"].values())
        rows[label] = {
            "gap": s["optimal_loss_gap"],
            "init_dims95": p["init_dims95"],
            "min_dims95": p["min_dims95"],
            "min_step": p["min_step"],
            "phase_first": phase[0] if phase else np.nan,
            "phase_last": phase[-1] if phase else np.nan,
            "final_dims95": p["final_dims95"],
            "final_step": p["final_step"],
            "r2_mess3": mean_by_kind(s["r2"], kinds, "simplex"),
            "r2_bloch": mean_by_kind(s["r2"], kinds, "bloch"),
            "rmse_min": min(rmse),
            "rmse_max": max(rmse),
            "overlap_k1": s["overlap_k1"],
            "overlap_k2": s["overlap_k2"],
            "random_overlap_k1": s["random_init_overlap_k1"],
            "random_overlap_k2": s["random_init_overlap_k2"],
        }
    table = pd.DataFrame(rows)
    table.index.name = "quantity"
    return table


def comparison_text(table: pd.DataFrame, factored_dim: int) -> pd.DataFrame:
    """`comparison_table` as the notebooks print it: one text row per quantity, pairs joined ("11 (1500)")."""

    def column(c: pd.Series) -> dict[str, str]:
        phase = phase_label([] if np.isnan(c["phase_first"]) else [c["phase_first"], c["phase_last"]])
        return {
            "gap to the optimal predictor (nats)": f"{c['gap']:+.4f}",
            "dims@95 at init": f"{c['init_dims95']:.0f}",
            "min dims@95 (step)": f"{c['min_dims95']:.0f} ({c['min_step']:.0f})",
            f"factored phase (dims@95 within {FACTORED_TOL} of {factored_dim})": phase,
            "final dims@95 (step)": f"{c['final_dims95']:.0f} ({c['final_step']:.0f})",
            "mean held-out R², Mess3 factors": f"{c['r2_mess3']:.3f}",
            "mean held-out R², Bloch factors": f"{c['r2_bloch']:.3f}",
            "held-out RMSE per factor": f"{c['rmse_min']:.3f}-{c['rmse_max']:.3f}",
            "mean overlap k = 1, 2 (final)": f"{c['overlap_k1']:.2g}, {c['overlap_k2']:.2g}",
            "random-init overlap k = 1, 2": f"{c['random_overlap_k1']:.2f}, {c['random_overlap_k2']:.2f}",
        }

    text = pd.DataFrame({label: column(table[label]) for label in table.columns})
    text.index.name = "quantity"
    return text


def seeds_table(summaries: Mapping[int, dict]) -> pd.DataFrame:
    """`run_analysis.summary` of several seeds side by side (one column each, flattened), with mean, sd, min,
    max."""
    table = pd.DataFrame({f"seed {s}": flatten_summary(r) for s, r in sorted(summaries.items())})
    numbers = table.astype(float)
    table["mean"], table["sd"] = numbers.mean(axis=1), numbers.std(axis=1)
    table["min"], table["max"] = numbers.min(axis=1), numbers.max(axis=1)
    return table
