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
    """Which conditions of a `across_runs.condition_table` may have their dimensions compared: learned (every seed
    has learned its beliefs) and not_learned (keys, in table order); steps, each condition's training steps;
    equal_steps: the learned ones trained equally long (else they are compared at equal quality: each was
    trained until learned, and at equal steps the slower ones would still be learning); still_falling, the
    conditions where some seed's smallest dims@95 is at its last checkpoint (the collapse is not finished, so its
    final dims@95 is a point on the way down)."""

    learned: list
    not_learned: list
    steps: dict
    equal_steps: bool
    still_falling: list


def comparison(table: pd.DataFrame) -> Comparison:
    """The `Comparison` of a condition table (columns seeds, learned, steps; still_falling, if present)."""
    learned = [key for key, row in table.iterrows() if row["learned"] == row["seeds"]]
    steps = {key: int(row["steps"]) for key, row in table.iterrows()}
    return Comparison(
        learned=learned,
        not_learned=[key for key in table.index if key not in learned],
        steps=steps,
        equal_steps=len({steps[key] for key in learned}) <= 1,
        still_falling=[key for key, row in table.iterrows() if row.get("still_falling", 0) > 0],
    )


@dataclass(frozen=True)
class NoisePhases:
    """Notebook 04's verdict on one noisy run beside its eps = 0 run (`trajectory.dimension_phases` of each).

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
    """What the runs of one eps > 0 say against eps = 0 (`across_runs.noise_expansion`'s frame), means over seeds.

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
    """One `ExpansionFinding` per eps > 0 of `across_runs.noise_expansion`'s per-run frame, against its eps = 0 runs
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
    (`discovery_eval.score_against_truth`): found, true, recovered (true factors matched by overlap > SAME_FACTOR),
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
    """The verdict of one `discovery_eval.score_against_truth` result."""
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
    (the earliest such checkpoint, as `trajectory.stages`); final_dims95, final_gap and final (a `Learning`) at the
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
    learned = [s for s in later if s in gap and learning(trajectory[s].r2, gap[s]).learned]
    collapse = min(later, key=lambda s: (trajectory[s].dims95, s))
    last = steps[-1]
    return TrainingPath(
        learned_step=learned[0] if learned else None,
        collapse_dims95=int(trajectory[collapse].dims95),
        collapse_step=collapse,
        final_dims95=int(trajectory[last].dims95),
        final_gap=float(gap[last]),
        final=learning(trajectory[last].r2, gap[last]),
    )


@dataclass(frozen=True)
class GapAgainstCost:
    """A network's held-out gap to the optimal predictor against the fidelity cost of factoring (both nats/token,
    on its own process): ratio, gap / cost (NaN at cost 0); above_cost, the gap is larger than what the best
    factored predictor must lose, so learning the factor beliefs better still gains more than giving up the
    factored form, and the loss alone cannot show whether the prediction factors (04, 06)."""

    gap: float
    cost: float
    ratio: float
    above_cost: bool


def gap_against_cost(gap: float, cost: float) -> GapAgainstCost:
    """The `GapAgainstCost` of one run."""
    return GapAgainstCost(float(gap), float(cost), gap / cost if cost else math.nan, bool(gap > cost))


@dataclass(frozen=True)
class NearerCount:
    """Which belief dimension count a network's dims@95 is nearer (05): "factored" (sum(d_n - 1)) when strictly
    nearer it than the joint count (prod(d_n) - 1), else "joint"."""

    dims95: int
    factored: int
    joint: int
    nearer: str


def nearer_count(dims95: int, factored_dim: int, joint_dim: int) -> NearerCount:
    """The `NearerCount` of one final dims@95."""
    nearer = "factored" if abs(dims95 - factored_dim) < abs(dims95 - joint_dim) else "joint"
    return NearerCount(dims95, factored_dim, joint_dim, nearer)


# "The network predicts part of the dependence": its predicted law's total correlation exceeds the independent
# model's by more than this many standard errors of the difference.
DEPENDENCE_SIGMAS = 2


@dataclass(frozen=True)
class ChainFinding:
    """Notebook 06's verdict on the chain run beside the independent run (same profile, seed, budget).

    near_factored: the chain's final dims@95 within `tol` of the factored value; difference, chain minus
    independent final dims@95, and differs, |difference| > tol. excess: how much more cross-factor dependence
    (total correlation, nats/token) the chain model's predicted law carries than the independent model's,
    excess_err its standard error; predicts_dependence: excess > DEPENDENCE_SIGMAS x excess_err."""

    chain_dims95: int
    independent_dims95: int
    factored_dim: int
    tol: int
    near_factored: bool
    difference: int
    differs: bool
    excess: float
    excess_err: float
    predicts_dependence: bool


def chain_finding(
    chain_dims95: int,
    independent_dims95: int,
    factored_dim: int,
    chain_tc: tuple[float, float],
    independent_tc: tuple[float, float],
    tol: int = FACTORED_TOL,
) -> ChainFinding:
    """The `ChainFinding` from both runs' final dims@95 and the (mean, standard error) of each model's predicted
    law's total correlation."""
    difference = chain_dims95 - independent_dims95
    excess, excess_err = chain_tc[0] - independent_tc[0], float(np.hypot(chain_tc[1], independent_tc[1]))
    return ChainFinding(
        chain_dims95=chain_dims95,
        independent_dims95=independent_dims95,
        factored_dim=factored_dim,
        tol=tol,
        near_factored=bool(abs(chain_dims95 - factored_dim) <= tol),
        difference=difference,
        differs=bool(abs(difference) > tol),
        excess=excess,
        excess_err=excess_err,
        predicts_dependence=bool(excess > DEPENDENCE_SIGMAS * excess_err),
    )


@dataclass(frozen=True)
class LearnedSplit:
    """Conditions (values of one column of a per-run frame, in the order given) whose every seed has learned its
    beliefs, and the rest."""

    learned: list
    not_learned: list


def learned_split(per_run: pd.DataFrame, by: str, order: Sequence) -> LearnedSplit:
    """The `LearnedSplit` of a per-run frame with a boolean column `learned` (a condition with no run: not
    learned)."""
    every = per_run.groupby(by)["learned"].all()
    learned = [key for key in order if every.get(key, False)]
    return LearnedSplit(learned, [key for key in order if key not in learned])


@dataclass(frozen=True)
class FactorScalingFinding:
    """What the runs on N Mess3 factors say (07, `across_runs.factor_scaling`'s frame, one row per N): learned and
    not_learned, the N of each; below_joint_beliefs, the learned N whose final dims@95 is below even the joint
    beliefs' own dims@95 on the same data, and at_or_above_joint_beliefs, the other learned N."""

    learned: list
    not_learned: list
    below_joint_beliefs: list
    at_or_above_joint_beliefs: list


def factor_scaling(scaling: pd.DataFrame) -> FactorScalingFinding:
    """The `FactorScalingFinding` of a factor-scaling frame (columns N, learned, final_dims95, beliefs_joint)."""
    learned = scaling[scaling["learned"]]
    below = learned[learned["final_dims95"] < learned["beliefs_joint"]]
    return FactorScalingFinding(
        learned=list(learned["N"]),
        not_learned=list(scaling[~scaling["learned"]]["N"]),
        below_joint_beliefs=list(below["N"]),
        at_or_above_joint_beliefs=sorted(set(learned["N"]) - set(below["N"])),
    )


@dataclass(frozen=True)
class SurveyFinding:
    """Factor discovery over many trained networks (08's survey, one row per network and step, columns learned,
    independent, "all matched"): held, the rows it is held to (learned networks of independent factors);
    all_matched, how many of them have every factor found and matched; missed, the index labels of the others."""

    held: int
    all_matched: int
    missed: list


def survey_finding(survey: pd.DataFrame) -> SurveyFinding:
    """The `SurveyFinding` of a survey table."""
    held = survey[survey["learned"] & survey["independent"]]
    return SurveyFinding(len(held), int(held["all matched"].sum()), list(held.index[~held["all matched"]]))


@dataclass(frozen=True)
class MethodsCompared:
    """Two factor-finding methods scored against the same true factors (`discovery_eval.score_against_truth`'s
    overlaps, one per true factor; NaN: the method matched nothing to it, counted as 0): better, the factors
    where the first method's overlap is strictly larger; every_factor, it is larger on all of them."""

    factors: int
    better: int
    every_factor: bool


def methods_compared(overlaps: Sequence[float], other_overlaps: Sequence[float]) -> MethodsCompared:
    """The `MethodsCompared` of one method's overlaps against another's."""
    ours, theirs = np.asarray(overlaps, dtype=float), np.nan_to_num(np.asarray(other_overlaps, dtype=float), nan=0.0)
    wins = ours > theirs
    return MethodsCompared(len(wins), int(wins.sum()), bool(wins.all()))
