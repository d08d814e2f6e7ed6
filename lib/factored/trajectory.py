"""A run's geometry over training, typed: one `Checkpoint` per analysed step, and what the notebooks read off
the sequence of them (the training `stages`, the `dimension_phases`). Pure Python and numpy.

A trajectory is {step: Checkpoint}. `probing.analyze_run` measures it and caches it as JSON; `Checkpoint.to_json`
and `from_json` are the only places that know the JSON layout (dims keyed by the threshold as text).
"""

from __future__ import annotations

from dataclasses import dataclass

from .verdicts import FACTORED_TOL

Trajectory = dict  # {step: Checkpoint}


@dataclass(frozen=True)
class Checkpoint:
    """PCA and held-out belief regression of one checkpoint's activations on the probe data.

    cev: cumulative explained variance [min(n, d)]; dims_at_threshold: {threshold: dimensions reaching it}
    (`analysis.THRESHOLDS`); rmse, r2: [N] per factor, held out; rmse_overall, r2_overall: pooled over every
    belief coordinate; rcond: the regression's chosen cut-off."""

    cev: list[float]
    dims_at_threshold: dict[float, int]
    rmse: list[float]
    r2: list[float]
    rmse_overall: float
    r2_overall: float
    rcond: float

    def dims(self, threshold: float) -> int:
        """Dimensions needed to reach `threshold` of the variance (one of `analysis.THRESHOLDS`)."""
        return self.dims_at_threshold[float(threshold)]

    @property
    def dims95(self) -> int:
        """The paper's measure: dimensions holding 95% of the variance."""
        return self.dims(0.95)

    def to_json(self) -> dict:
        """Plain floats and lists (dims keyed by the threshold as text, "0.95"), for the cache files."""
        return {
            "cev": list(self.cev),
            "dims": {str(t): d for t, d in self.dims_at_threshold.items()},
            "rmse": list(self.rmse),
            "r2": list(self.r2),
            "rmse_overall": self.rmse_overall,
            "r2_overall": self.r2_overall,
            "rcond": self.rcond,
        }

    @classmethod
    def from_json(cls, data: dict) -> Checkpoint:
        """The inverse of `to_json`."""
        return cls(
            cev=data["cev"],
            dims_at_threshold={float(t): int(d) for t, d in data["dims"].items()},
            rmse=data["rmse"],
            r2=data["r2"],
            rmse_overall=data["rmse_overall"],
            r2_overall=data["r2_overall"],
            rcond=data["rcond"],
        )


def stages(trajectory: Trajectory) -> dict[str, int]:
    """The three training stages the vary-one analysis compares: init (step 0), collapse (the step after init
    where dims@95 is smallest), final (the last checkpoint)."""
    steps = sorted(trajectory)
    collapse = min(steps[1:] or steps, key=lambda s: (trajectory[s].dims95, s))
    return {"init": steps[0], "collapse": collapse, "final": steps[-1]}


def dimension_phases(
    trajectory: Trajectory, factored_dims: int, tol: int = FACTORED_TOL, threshold: float = 0.95
) -> dict:
    """The phases of dims@95 over training, as the noise experiments describe them (plain ints and lists).

    After the collapse (the smallest dims@95 after step 0, as in `stages`), the *factored phase* is the longest
    run of consecutive checkpoints whose dims@95 is within `tol` of `factored_dims`; `expanded` says whether the
    last checkpoint lies above that band (factored_dims + tol), i.e. the dimension has grown past it.
    `phase_span` is the ratio of the phase's last step to its first (2: it lasts a doubling of training time;
    0 when there is no phase), which tells a plateau from a pass through the band on the way up.
    """
    steps = sorted(trajectory)
    dims = [trajectory[s].dims(threshold) for s in steps]
    low = stages(trajectory)["collapse"]
    best: list[int] = []
    current: list[int] = []
    for i, s in enumerate(steps):
        if s >= low and abs(dims[i] - factored_dims) <= tol:
            current.append(i)
            if len(current) > len(best):
                best = list(current)
        else:
            current = []
    return {
        "init_dims95": dims[0],
        "min_dims95": dims[steps.index(low)],
        "min_step": low,
        "phase_steps": [steps[i] for i in best],
        "phase_dims95": [dims[i] for i in best],
        "phase_span": steps[best[-1]] / max(steps[best[0]], 1) if best else 0.0,
        "final_step": steps[-1],
        "final_dims95": dims[-1],
        "peak_dims95_after_min": max(dims[steps.index(low) :]),
        "expanded": dims[-1] > factored_dims + tol,
    }
