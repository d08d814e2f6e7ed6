"""The conclusions the notebooks state, computed as data: whether a network has learned its beliefs, whether the
factored phase was seen and expansion has begun (04), whether the representation grows beyond the factored
beliefs (04, 07), and what factor discovery found (08). Each verdict is a small frozen dataclass whose fields
the tests check; the notebooks only put them into words (`sentence()` where two notebooks say the same thing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .seeds import difference_table

# "The network has learned its beliefs": every factor's belief read out linearly with held-out R^2 at least
# LEARNED_R2 (nine tenths of its variance), and the held-out loss within LEARNED_GAP nats per token of the optimal
# predictor's on the same sequences (0.3% of the paper process's loss). A network that has not learned its beliefs
# answers no question about their geometry: dimensions are compared only between learned networks.
LEARNED_R2 = 0.9
LEARNED_GAP = 0.02
# "Near the factored value": dims@95 within 2 of sum(d_n - 1). Two is one factor's belief (a Mess3 or Bloch
# belief spans 2 dims), so a network that is one factor short or one factor over still counts as factored.
FACTORED_TOL = 2
# A factored phase is a plateau, not a pass through the band: its checkpoints span at least a doubling of steps.
PHASE_SPAN = 2.0
# A discovered subspace matches a true factor when their overlap at rank 2 is at least this.
MATCHED_OVERLAP = 0.9


@dataclass(frozen=True)
class Learning:
    """Whether a network has learned its beliefs (the library's one rule, LEARNED_R2 and LEARNED_GAP): worst_r2,
    the smallest held-out R^2 over its factors; gap, its held-out gap to the optimal predictor (nats/token)."""

    learned: bool
    worst_r2: float
    gap: float

    @property
    def reason(self) -> str:
        """What the rule saw, in words: "learned", or which of the two thresholds was missed."""
        missed = [f"worst R² {self.worst_r2:.2f} < {LEARNED_R2}"] if not self.worst_r2 >= LEARNED_R2 else []
        missed += [f"gap {self.gap:.3f} > {LEARNED_GAP}"] if not self.gap <= LEARNED_GAP else []
        return "learned" if self.learned else "not learned: " + ", ".join(missed)


def learning(r2: Sequence[float], gap: float) -> Learning:
    """The rule on one network: every factor's held-out R^2 (r2: one per factor) >= LEARNED_R2 and gap <=
    LEARNED_GAP. NaN never passes."""
    worst = float(np.min(r2)) if len(r2) else math.nan
    return Learning(bool(worst >= LEARNED_R2 and gap <= LEARNED_GAP), worst, float(gap))


@dataclass(frozen=True)
class Comparison:
    """Which conditions of a `results.condition_table` may have their dimensions compared: learned (every seed
    has learned its beliefs) and not_learned (keys, in table order); steps, each condition's training steps;
    equal_steps: the learned ones trained equally long (else they are compared at equal quality: each was
    trained until learned, and at equal steps the slower ones would still be learning)."""

    learned: list
    not_learned: list
    steps: dict
    equal_steps: bool


def comparison(table: pd.DataFrame) -> Comparison:
    """The `Comparison` of a condition table (columns seeds, learned, steps)."""
    learned = [key for key, row in table.iterrows() if row["learned"] == row["seeds"]]
    steps = {key: int(row["steps"]) for key, row in table.iterrows()}
    return Comparison(
        learned=learned,
        not_learned=[key for key in table.index if key not in learned],
        steps=steps,
        equal_steps=len({steps[key] for key in learned}) <= 1,
    )


@dataclass(frozen=True)
class NoisePhases:
    """Notebook 04's verdict on one noisy run beside its eps = 0 run (`probing.dimension_phases` of each).

    phase_seen: after the collapse, dims@95 stays within `tol` of the factored value over consecutive
    checkpoints spanning at least PHASE_SPAN (a doubling of the step). expansion_begun: the final dims@95 lies
    above that band and above the eps = 0 run's by more than `tol` (the eps = 0 run shows how far the budget is
    from convergence, noise or not). budget_share: this run's training tokens over the paper's before its
    expansion (below 1: the expansion the paper reports lies beyond this budget)."""

    phase_seen: bool
    phase_steps: tuple[int, ...]
    phase_dims: tuple[int, ...]
    phase_span: float
    min_dims95: int
    min_step: int
    final_dims95: int
    base_final_dims95: int
    excess: int
    final_step: int
    band: tuple[int, int]
    above_band: bool
    expansion_begun: bool
    budget_share: float


def noise_phases(
    phases: dict, base_phases: dict, factored_dim: int, tokens: float, paper_tokens: float, tol: int = FACTORED_TOL
) -> NoisePhases:
    """`NoisePhases` from the phases of the noisy run and of its eps = 0 run, and the two token budgets."""
    excess = phases["final_dims95"] - base_phases["final_dims95"]
    return NoisePhases(
        phase_seen=bool(phases["phase_span"] >= PHASE_SPAN),
        phase_steps=tuple(phases["phase_steps"]),
        phase_dims=tuple(phases["phase_dims95"]),
        phase_span=float(phases["phase_span"]),
        min_dims95=phases["min_dims95"],
        min_step=phases["min_step"],
        final_dims95=phases["final_dims95"],
        base_final_dims95=base_phases["final_dims95"],
        excess=excess,
        final_step=phases["final_step"],
        band=(factored_dim - tol, factored_dim + tol),
        above_band=bool(phases["expanded"]),
        expansion_begun=bool(phases["expanded"] and excess > tol),
        budget_share=tokens / paper_tokens,
    )


@dataclass(frozen=True)
class ExpansionFinding:
    """What the runs of one eps > 0 say against eps = 0 (`results.noise_expansion`'s frame), means over seeds.

    beyond_factored, the verdict, needs both: the joint belief (every cross-factor product of belief
    coordinates) explains more of the final activations than at eps 0 (Welch's test over seeds, p < 0.05; NaN
    p: no), and every seed predicts better than any factored readout can (held-out gap below the fidelity
    cost). Beside it, the dimension (final dims@95 against eps 0's, whether each seed passed through the factored
    band first, growth after the smallest dims@95) and the cross-factor dependence (total correlation) of the
    network's own next-token law against the true law's (the fidelity cost)."""

    eps: float
    seeds: int
    beyond_factored: bool
    joint_gain: float
    joint_gain_eps0: float
    p_joint_gain: float
    seeds_below_cost: int
    gap: float
    fidelity_cost: float
    prediction_tc: float
    prediction_tc_eps0: float
    final_dims95: float
    final_dims95_eps0: float
    p_final_dims95: float
    seeds_factored_first: int
    min_dims95: float
    min_step: float
    growth: float
    growth_eps0: float
    factored_dim: int
    tol: int

    def sentence(self) -> str:
        """The finding in words (what notebooks 04 and 07 print)."""
        return (
            f"eps {self.eps:g} ({self.seeds} seeds): beyond the factored beliefs: "
            f"{'YES' if self.beyond_factored else 'no'}. The joint belief explains {100 * self.joint_gain:+.2f}% "
            f"of the final activations beyond beliefs, position and tokens against {100 * self.joint_gain_eps0:+.2f}%"
            f" at eps 0 (Welch p = {self.p_joint_gain:.2g}); {self.seeds_below_cost} of {self.seeds} seeds predict "
            f"better than any factored readout (gap {self.gap:.4f} against a fidelity cost of "
            f"{self.fidelity_cost:.4f} nats/token); the network's own next-token law carries "
            f"{self.prediction_tc:.4f} nats/token of cross-factor dependence, the true law {self.fidelity_cost:.4f} "
            f"(eps 0: {self.prediction_tc_eps0:.4f}). Final dims@95 {self.final_dims95:.1f} against "
            f"{self.final_dims95_eps0:.1f} at eps 0 (p = {self.p_final_dims95:.2g}); {self.seeds_factored_first} of "
            f"{self.seeds} seeds passed through the factored band ({self.factored_dim} +- {self.tol}) first, "
            f"smallest dims@95 {self.min_dims95:.1f} at step {self.min_step:g}, then {self.growth:+.1f} to the end "
            f"(eps 0: {self.growth_eps0:+.1f})."
        )


def expansion_findings(per_run: pd.DataFrame, factored_dim: int, tol: int = FACTORED_TOL) -> list[ExpansionFinding]:
    """One `ExpansionFinding` per eps > 0 of `results.noise_expansion`'s per-run frame, against its eps = 0 runs
    (none without them)."""
    if "0" not in set(per_run["eps"]):
        return []
    against = {
        value: difference_table(per_run, "eps", "0", value).set_index("eps")
        for value in ("final_dims95", "dims_growth", "joint_gain_final", "prediction_tc_final")
    }
    findings = []
    for eps, group in per_run[per_run["eps"] != "0"].groupby("noise", sort=True):
        d, g, j, c = (against[v].loc[f"{eps:g}"] for v in against)
        below = int((group["below_factored"] < 0).sum())
        findings.append(
            ExpansionFinding(
                eps=float(eps),
                seeds=len(group),
                beyond_factored=bool(j["difference"] > 0 and j["p_welch"] < 0.05 and below == len(group)),
                joint_gain=float(j["mean"]),
                joint_gain_eps0=float(j["reference_mean"]),
                p_joint_gain=float(j["p_welch"]),
                seeds_below_cost=below,
                gap=float(group["gap"].mean()),
                fidelity_cost=float(group["fidelity_cost"].mean()),  # also the true law's total correlation
                prediction_tc=float(c["mean"]),
                prediction_tc_eps0=float(c["reference_mean"]),
                final_dims95=float(d["mean"]),
                final_dims95_eps0=float(d["reference_mean"]),
                p_final_dims95=float(d["p_welch"]),
                seeds_factored_first=int((group["min_dims95"] <= factored_dim + tol).sum()),
                min_dims95=float(group["min_dims95"].mean()),
                min_step=float(group["min_step"].median()),
                growth=float(g["mean"]),
                growth_eps0=float(g["reference_mean"]),
                factored_dim=factored_dim,
                tol=tol,
            )
        )
    return findings


@dataclass(frozen=True)
class DiscoveryVerdict:
    """What factor discovery found in one set of activations, scored against the truth it never saw
    (`discovery.score_against_truth`): found, true, recovered (true factors matched by overlap > SAME_FACTOR),
    spurious (found subspaces matching none), min_overlap and min_ratio over the matched factors (NaN: none).
    right_count: as many factors found as there are; all_matched: every true factor recovered at overlap >=
    MATCHED_OVERLAP and nothing spurious."""

    found: int
    true: int
    recovered: int
    spurious: int
    min_overlap: float
    min_ratio: float

    @property
    def right_count(self) -> bool:
        return self.found == self.true

    @property
    def all_matched(self) -> bool:
        return self.recovered == self.true and self.spurious == 0 and self.min_overlap >= MATCHED_OVERLAP


def discovery_verdict(score: dict) -> DiscoveryVerdict:
    """The verdict of one `discovery.score_against_truth` result."""
    table = score["table"]
    matched = [i for i, f in enumerate(table["found"]) if f >= 0]
    smallest = lambda key: float(min((table[key][i] for i in matched), default=math.nan))  # noqa: E731
    return DiscoveryVerdict(
        found=score["n_found"],
        true=score["n_true"],
        recovered=score["n_recovered"],
        spurious=score["n_spurious"],
        min_overlap=smallest("overlap"),
        min_ratio=smallest("ratio"),
    )


@dataclass(frozen=True)
class TrainingPath:
    """How one run got where it is, from its metrics rows and its trajectory (PCA and regression at every
    checkpoint): learned_step, the first checkpoint after step 0 at which it has learned its beliefs by `learning`
    (None: not within the run); collapse_dims95 and collapse_step, the smallest dims@95 after step 0 and where
    (the earliest such checkpoint, as `probing.stages`); final_dims95, final_gap and final (a `Learning`) at the
    last checkpoint."""

    learned_step: int | None
    collapse_dims95: int
    collapse_step: int
    final_dims95: int
    final_gap: float
    final: Learning


def training_path(metrics: Sequence[dict], trajectory: dict[int, dict]) -> TrainingPath:
    """The `TrainingPath` of a run (every checkpoint is logged, so each has its gap in `metrics`)."""
    gap = {m["step"]: m["gap"] for m in metrics}
    steps = sorted(trajectory)
    later = steps[1:] or steps
    learned = [s for s in later if s in gap and learning(trajectory[s]["r2"], gap[s]).learned]
    collapse = min(later, key=lambda s: (trajectory[s]["dims"]["0.95"], s))
    last = steps[-1]
    return TrainingPath(
        learned_step=learned[0] if learned else None,
        collapse_dims95=int(trajectory[collapse]["dims"]["0.95"]),
        collapse_step=collapse,
        final_dims95=int(trajectory[last]["dims"]["0.95"]),
        final_gap=float(gap[last]),
        final=learning(trajectory[last]["r2"], gap[last]),
    )
