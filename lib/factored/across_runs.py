"""Results over finished runs: what notebook 07 reads, whoever made the runs (a sweep, a notebook run by hand).

Everything here reads the run folders (outputs/runs/*/config.json, metrics and the cached analyses), not the
notebooks a sweep executed, so a run counts the same however it was made: which runs share the sweep budget,
their dims@95 over training and at the end, intervals over seeds, each condition against a reference (Welch's
test) and dimension against the number of factors. `factored.sweep` runs sweeps and reports their folders.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

from . import parameters, probing, products, profiles, run_analysis, runs, sweep_spec, theory, verdicts
from .config import RunConfig
from .paths import SWEEPS_DIR
from .seeds import format_interval, interval_table
from .trajectory import stages

# The committed sweeps (params/sweeps/), by name; notebooks 07 and 08 collect their runs.
SWEEPS = {
    name: SWEEPS_DIR / f"{name}.yaml"
    for name in ("noise", "architectures", "transformer_variants", "factors", "expansion")
}
ARCHITECTURE_SWEEPS = ("architectures", "transformer_variants")  # every model but the canonical one, noiseless
INDEPENDENT_SWEEPS = ("noise", *ARCHITECTURE_SWEEPS, "factors")  # the paper's factors and N Mess3 factors


def sweep_configs(path: Path, profile: str = "") -> list[RunConfig]:
    """The run of every point of the sweep file at `path`, at `profile` ("": the default profile), in grid order
    (`sweep_spec.point_config`): what the sweep trains, or would train at that profile."""
    profile = profiles.resolve_profile(profile)
    return [sweep_spec.point_config(p, profile) for p in sweep_spec.points(sweep_spec.load(path))]


def sweep_runs(path: Path, profile: str = "", root: Path | None = None) -> list[runs.Run]:
    """The finished runs of the sweep file's points at `profile` (`sweep_configs`), whoever trained them."""
    found = (runs.finished_run(cfg, root) for cfg in sweep_configs(path, profile))
    return [run for run in found if run is not None]


def finished_runs(root: Path | None = None) -> list[runs.Run]:
    """Every finished run in outputs/runs/ (under `root`), whoever made it."""
    out = []
    for path in sorted((root or runs.outputs_dir()).glob("runs/*/config.json")):
        try:
            cfg = runs.read_config(path)
        except ValueError as e:  # edited by hand, or written by an incompatible version of the config
            warnings.warn(f"skipping {runs.relative(path.parent)}: {e}", stacklevel=2)
            continue
        run = runs.Run(path.parent, cfg)
        if run.finished:
            out.append(run)
    return out


def model_label(cfg: RunConfig, ref: RunConfig) -> str:
    """A short name for a run's model, in notebook 05's words: `LSTM 32x2`, `transformer 120x4, n_ctx 33`; other
    model fields that differ from `ref` are appended."""
    m, r = cfg.model, ref.model
    label = f"{'transformer' if m.arch == 'transformer' else m.arch.upper()} {m.d_model}x{m.n_layers}"
    if cfg.data.seq_len != ref.data.seq_len:
        label += f", n_ctx {cfg.data.seq_len + 1}"
    shown = {"arch", "d_model", "n_layers"}
    if m.arch != "transformer":
        shown |= {"n_heads", "d_mlp", "act", "init"}  # unused by recurrent nets
    elif m.d_model != r.d_model:  # the MLP follows the width in notebook 05: named only where it does not
        shown |= {"d_mlp"}
        if m.d_mlp != parameters.architecture_sizes("transformer", m.d_model)["d_mlp"]:
            label += f", d_mlp {m.d_mlp}"
    extra = [
        f"{f.name} {getattr(m, f.name)}"
        for f in fields(m)
        if f.name not in shown and getattr(m, f.name) != getattr(r, f.name)
    ]
    return ", ".join([label, *extra])


FINAL_COLUMNS = [
    "init_dims95",
    "final_dims95",
    "min_dims95",
    "min_step",
    "final_step",
    "gap",
    "r2",
    "worst_r2",
    "learned",
]
JOINT_GAIN_COLUMNS = ("beliefs_r2", "joint_gain")


def run_frames(
    run_list: list[runs.Run], ref: RunConfig, acfg: probing.AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """dims@95 at every checkpoint (one row per run and step) and each run's final numbers (one row per run).

    The analyses come from `probing.analyze_run` with `acfg`, cached in each run folder (so shared with the
    notebooks that made the runs when they used the same settings). Columns: run, model, arch, noise,
    structure, n_mess3 (0: the paper's five factors), seed, plus step, dims95 (first frame) or init_dims95,
    final_dims95, min_dims95, min_step, final_step, gap, r2 (over all factors), worst_r2 (the smallest factor's)
    and learned (`verdicts.learning`) (second)."""
    per_step, per_run = [], []
    for run in run_list:
        c = run.config
        trajectory = probing.analyze_run(run, acfg, progress=False)
        st = stages(trajectory)
        base = {
            "run": run.dir.name,
            "model": model_label(c, ref),
            "arch": c.model.arch,
            "noise": float(c.data.noise),
            "structure": c.data.structure if not c.data.n_mess3 else f"{c.data.n_mess3} x Mess3",
            "n_mess3": c.data.n_mess3,
            "seed": c.train.seed,
        }
        per_step += [{**base, "step": s, "dims95": point.dims95} for s, point in sorted(trajectory.items())]
        final = trajectory[st["final"]]
        per_run.append(
            {
                **base,
                "init_dims95": trajectory[st["init"]].dims95,
                "final_dims95": final.dims95,
                "min_dims95": trajectory[st["collapse"]].dims95,
                "min_step": st["collapse"],
                "final_step": st["final"],
                "gap": run.metrics()[-1]["gap"],
                "r2": final.r2_overall,
                "worst_r2": float(min(final.r2)),
                "learned": verdicts.learning(final.r2, run.metrics()[-1]["gap"]).learned,
            }
        )
    columns = ["run", "model", "arch", "noise", "structure", "n_mess3", "seed"]
    return (
        pd.DataFrame(per_step, columns=[*columns, "step", "dims95"]),
        pd.DataFrame(per_run, columns=[*columns, *FINAL_COLUMNS]),
    )


def condition_table(finals: pd.DataFrame, by: str, level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by`: seeds, final dims@95 as "mean (low to high)" with its t-interval ("mean (n/a,
    1 seed)" for a single seed), the seeds' range, and averaged over seeds dims@95 at init, the collapse (smallest
    dims@95 after step 0), the step of the collapse (median), how many seeds are still falling (their smallest
    dims@95 is at the last checkpoint, so the final value is a point on the way down, not a settled dimension), the
    held-out gap to the optimal loss and the R² of the belief read-out (over all factors, and the worst factor's
    worst seed), the training steps, and how many seeds have learned their beliefs (`verdicts.learning`).
    `finals`: `run_frames`' second frame."""
    dims = interval_table(finals, by, level=level).set_index(by)
    others = finals.assign(falling=finals["min_step"] == finals["final_step"]).groupby(by).agg(
        init=("init_dims95", "mean"), collapse=("min_dims95", "mean"), at_step=("min_step", "median"),
        still_falling=("falling", "sum"), gap=("gap", "mean"), r2=("r2", "mean"), worst_r2=("worst_r2", "min"),
        steps=("final_step", "max"), learned=("learned", "sum"),
    )  # fmt: skip
    table = dims.join(others)
    table[f"final dims@95 ({level:.0%} interval)"] = [
        format_interval(m, lo, hi, ".1f") for m, lo, hi in zip(table["mean"], table["low"], table["high"], strict=True)
    ]
    table["seeds' range"] = [f"{lo:g}-{hi:g}" for lo, hi in zip(table["min"], table["max"], strict=True)]
    shown = ["seeds", f"final dims@95 ({level:.0%} interval)", "seeds' range", "init", "collapse", "at_step"]
    return table[[*shown, "still_falling", "gap", "r2", "worst_r2", "steps", "learned"]]


def factor_scaling(finals: pd.DataFrame, acfg: probing.AnalysisConfig, seq_len: int) -> pd.DataFrame:
    """Dimension against the number of factors: one row per N among the runs on N independent Mess3 factors.

    finals: `run_frames`' second frame (rows with n_mess3 = 0 are ignored). Columns: N, seeds, the measured
    dims@95 at init, at the end and at its smallest (means over seeds), the dimension counts of a factored (2N)
    and a joint (3^N - 1) representation, the dims@95 of the true beliefs on the probe data, concatenated
    (beliefs_factored) and as their outer product (beliefs_joint), the mean gap and R², the worst factor's R² of
    the worst seed, whether every seed has learned its beliefs (`verdicts.learning`), and where `finals` has them
    (merged from `joint_belief_gains`) the mean beliefs_r2 and joint_gain, else NaN."""
    rows = []
    for n, group in finals[finals["n_mess3"] > 0].groupby("n_mess3", sort=True):
        process = products.mess3_factors(int(n))
        joint, factored_dims = products.dimension_counts(process.state_dims)
        refs = probing.reference_curves(process, acfg, seq_len)
        rows.append(
            {
                "N": int(n),
                "seeds": len(group),
                "init_dims95": group["init_dims95"].mean(),
                "final_dims95": group["final_dims95"].mean(),
                "min_dims95": group["min_dims95"].mean(),
                "factored": factored_dims,
                "joint": joint,
                "beliefs_factored": refs["factored_dims95"],
                "beliefs_joint": refs["joint_dims95"],
                "gap": group["gap"].mean(),
                "r2": group["r2"].mean(),
                "worst_r2": group["worst_r2"].min(),
                "learned": bool(group["learned"].all()),
                **{k: group[k].mean() if k in group else float("nan") for k in JOINT_GAIN_COLUMNS},
            }
        )
    columns = ["N", "seeds", "init_dims95", "final_dims95", "min_dims95", "factored", "joint"]
    columns += ["beliefs_factored", "beliefs_joint"]
    return pd.DataFrame(rows, columns=[*columns, "gap", "r2", "worst_r2", "learned", *JOINT_GAIN_COLUMNS])


def joint_belief_gains(run_list: list[runs.Run], acfg: probing.AnalysisConfig) -> pd.DataFrame:
    """`probing.joint_belief_gain` of each run at its final checkpoint: columns run (its folder name), beliefs_r2,
    before_joint_r2, joint_gain; merge it into `run_frames`' second frame on `run` before `factor_scaling`."""
    rows = [{"run": r.dir.name, **probing.joint_belief_gain(r, acfg)} for r in run_list]
    return pd.DataFrame(rows, columns=["run", "beliefs_r2", "before_joint_r2", "joint_gain"])


def variance_parts(run_list: list[runs.Run], acfg: probing.AnalysisConfig) -> pd.DataFrame:
    """What each run's final activations hold (`probing.variance_parts` of `probing.final_variance_decomposition`):
    columns run (its folder name) and the held-out share of variance each part adds (beliefs, position, tokens,
    within-factor, joint belief, unexplained); cached in each run folder (`runs.cached`, keyed by acfg)."""
    rows = [{"run": r.dir.name,
             **runs.cached(r, "variance_parts", asdict(acfg),
                           lambda r=r: probing.variance_parts(probing.final_variance_decomposition(r, acfg)))}
            for r in run_list]  # fmt: skip
    return pd.DataFrame(rows, columns=["run", *dict.fromkeys(probing.VARIANCE_PARTS.values()), "unexplained"])


GROWTH_MEASURES = ("beliefs_r2", "joint_gain", "prediction_tc")  # run_analysis.beyond_factored_at's columns


def noise_growth(run_list: list[runs.Run], acfg: probing.AnalysisConfig, n_mc: int = 20_000) -> pd.DataFrame:
    """Does the representation grow beyond the factor beliefs, and does the network predict better than any
    factored readout? One row per run (independent factors, any eps), at its collapse (the smallest dims@95) and
    at its last checkpoint; cached in each run folder (`runs.save_summary`, keyed by acfg and n_mc).

    Columns: run; fidelity_cost, the fidelity cost of factoring at the run's eps (nats/token, Monte Carlo over
    n_mc sequences, seed 0); below_factored = gap - fidelity_cost (negative: beyond any factored readout);
    dims_growth = final minus smallest dims@95; and `run_analysis.beyond_factored_at`'s beliefs_r2, joint_gain and
    prediction_tc at the collapse (suffix _collapse) and the end (suffix _final)."""
    columns = ["run", "fidelity_cost", "below_factored", "dims_growth"]
    columns += [f"{k}_{when}" for when in ("collapse", "final") for k in GROWTH_MEASURES]
    settings = {**asdict(acfg), "n_mc": n_mc}
    rows = [{"run": run.dir.name,
             **runs.cached(run, "noise_growth", settings, lambda r=run: _noise_growth_of(r, acfg, n_mc))}
            for run in run_list]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _noise_growth_of(run: runs.Run, acfg: probing.AnalysisConfig, n_mc: int) -> dict[str, float]:
    cost_pp, _ = theory.fidelity_cost(run.process, run.config.data.seq_len, n_samples=n_mc, seed=0)
    cost = float(cost_pp.mean())
    trajectory = probing.analyze_run(run, acfg, progress=False)
    st = stages(trajectory)
    grown = run_analysis.beyond_factored_at(run, sorted({st["collapse"], st["final"]}), acfg)
    dims = {stage: trajectory[st[stage]].dims95 for stage in ("collapse", "final")}
    return {
        "fidelity_cost": cost,
        "below_factored": run.metrics()[-1]["gap"] - cost,
        "dims_growth": dims["final"] - dims["collapse"],
        **{f"{k}_{stage}": float(grown.loc[st[stage], k]) for stage in ("collapse", "final") for k in GROWTH_MEASURES},
    }  # fmt: skip


EXPANSION_SWEEP = SWEEPS["expansion"]
EXPANSION_COLUMNS = {  # column: format, in the order the expansion table shows them
    "fidelity_cost": ".3f", "gap": ".3f", "below_factored": "+.3f", "r2": ".2f", "min_dims95": ".3g",
    "final_dims95": ".3g", "dims_growth": "+.3g", "joint_gain_collapse": "+.4f", "joint_gain_final": "+.4f",
    "prediction_tc_final": ".3f",
}  # fmt: skip


def noise_expansion(
    run_list: list[runs.Run], ref: RunConfig, acfg: probing.AnalysisConfig, n_mc: int = 20_000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of one process and model at several eps and seeds (an expansion sweep's): `run_frames`' two
    frames (models named against `ref`), the second merged with `noise_growth`, each with a column eps (the noise
    as text: "0", "0.3")."""
    per_step, per_run = run_frames(run_list, ref, acfg)
    per_run = per_run.merge(noise_growth(run_list, acfg, n_mc), on="run")
    for frame in (per_step, per_run):
        frame["eps"] = frame["noise"].map("{:g}".format)
    return per_step, per_run
