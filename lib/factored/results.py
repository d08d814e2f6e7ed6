"""Results over finished runs: what notebook 07 reads, whoever made the runs (a sweep, a notebook run by hand).

Everything here reads the run folders (outputs/runs/*/config.json, metrics and the cached analyses), not the
notebooks a sweep executed, so a run counts the same however it was made: which runs share the sweep budget,
their dims@95 over training and at the end, intervals over seeds, each condition against a reference (Welch's
test), dimension against the number of factors, and what the sweep folders hold. `factored.sweep` runs sweeps.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import config, experiments, probing, products, profiles, runs, sweep_spec, theory
from .config import RunConfig
from .paths import SWEEPS_DIR


def sweep_budget(profile: str = "", steps: int = 0, sweeps_dir: Path = SWEEPS_DIR) -> RunConfig:
    """The reference config results are compared at: the profile's canonical run with `steps` training steps;
    steps 0 means the `steps` that the sweep files in `sweeps_dir` fix for this profile (else the profile's)."""
    profile = profiles.resolve_profile(profile)
    if not steps:
        found = set()
        for path in sorted(Path(sweeps_dir).glob("*.yaml")):
            fixed = sweep_spec.load(path).fixed
            # only the sweeps of the comparison (07): a sweep of another model or process (expansion.yaml's
            # small transformer on sharp Mess3 factors) is an experiment of its own, with its own budget
            own_model = set(fixed) & {"d_model", "n_layers", "n_heads", "d_mlp", "mess3_x", "mess3_a"}
            if fixed.get("profile") == profile and fixed.get("steps") and not own_model:
                found.add(fixed["steps"])
        if len(found) > 1:
            raise ValueError(
                f"the sweeps in {runs.relative(sweeps_dir)} train for {sorted(found)} steps at "
                f"profile {profile}; choose one with the parameter `steps`"
            )
        steps = found.pop() if found else 0
    return config.from_parameters(profile, steps=steps)


def sweep_config(path: Path, profile: str = "", **overrides) -> RunConfig:
    """The run a sweep file fixes at `profile`: the sweep's process and model, and its steps where `profile` is the
    sweep's own (else the profile's budget); its grid's parameters at their defaults (eps 0, seed 0) unless
    `overrides` sets them."""
    profile = profiles.resolve_profile(profile)
    fixed = dict(sweep_spec.load(path).fixed)
    if fixed.pop("profile", profile) != profile:
        fixed.pop("steps", None)
    return config.from_parameters(profile, **{**fixed, **overrides})


def same_but_noise(cfg: RunConfig, ref: RunConfig) -> bool:
    """The run `ref` describes at some eps and seed: same process otherwise, same model, same training budget."""
    skip = {"noise", "name"}
    a, b = asdict(cfg.data), asdict(ref.data)
    data_equal = all(a[k] == b[k] for k in a if k not in skip)
    return data_equal and cfg.model == ref.model and same_budget(cfg, ref)


def same_budget(cfg: RunConfig, ref: RunConfig) -> bool:
    """Trained like `ref`: every training field equal except the seed (and those that change speed only)."""
    skip = {"seed", *config.NOT_HASHED}
    a, b = asdict(cfg.train), asdict(ref.train)
    return all(a[k] == b[k] for k in a if k not in skip)


def finished_runs(root: Path | None = None) -> list[runs.Run]:
    """Every finished run in outputs/runs/ (under `root`), whoever made it; of runs with the same config under two
    names (notebooks name runs differently) only the first, so no run counts twice as two seeds."""
    out, seen = [], set()
    for path in sorted((root or runs.outputs_dir()).glob("runs/*/config.json")):
        try:
            cfg = RunConfig.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError) as e:  # written by an incompatible version of the config
            warnings.warn(f"skipping {runs.relative(path.parent)}: unreadable config ({e})", stacklevel=2)
            continue
        run = runs.Run(path.parent, cfg)
        if run.finished and cfg.hash() not in seen:
            seen.add(cfg.hash())
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
    elif m.d_model != r.d_model:
        shown |= {"d_mlp"}  # follows the width (4 x d_model) in notebook 05
    extra = [
        f"{f.name} {getattr(m, f.name)}"
        for f in fields(m)
        if f.name not in shown and getattr(m, f.name) != getattr(r, f.name)
    ]
    return ", ".join([label, *extra])


FINAL_COLUMNS = ["init_dims95", "final_dims95", "min_dims95", "min_step", "final_step", "gap", "r2"]
JOINT_GAIN_COLUMNS = ("beliefs_r2", "joint_gain")


def collect(
    run_list: list[runs.Run], ref: RunConfig, acfg: probing.AnalysisConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """dims@95 at every checkpoint (one row per run and step) and each run's final numbers (one row per run).

    The analyses come from `probing.analyze_run` with `acfg`, cached in each run folder (so shared with the
    notebooks that made the runs when they used the same settings). Columns: run, model, arch, noise,
    structure, n_mess3 (0: the paper's five factors), seed, plus step, dims95 (first frame) or init_dims95,
    final_dims95, min_dims95, min_step, final_step, gap, r2 (second)."""
    per_step, per_run = [], []
    for run in run_list:
        c = run.config
        trajectory = probing.analyze_run(run, acfg, progress=False)
        st = probing.stages(trajectory)
        base = {
            "run": run.dir.name,
            "model": model_label(c, ref),
            "arch": c.model.arch,
            "noise": float(c.data.noise),
            "structure": c.data.structure if not c.data.n_mess3 else f"{c.data.n_mess3} x Mess3",
            "n_mess3": c.data.n_mess3,
            "seed": c.train.seed,
        }
        per_step += [{**base, "step": s, "dims95": r["dims"]["0.95"]} for s, r in sorted(trajectory.items())]
        final = trajectory[st["final"]]
        per_run.append(
            {
                **base,
                "init_dims95": trajectory[st["init"]]["dims"]["0.95"],
                "final_dims95": final["dims"]["0.95"],
                "min_dims95": trajectory[st["early"]]["dims"]["0.95"],
                "min_step": st["early"],
                "final_step": st["final"],
                "gap": run.metrics()[-1]["gap"],
                "r2": final["r2_overall"],
            }
        )
    columns = ["run", "model", "arch", "noise", "structure", "n_mess3", "seed"]
    return (
        pd.DataFrame(per_step, columns=[*columns, "step", "dims95"]),
        pd.DataFrame(per_run, columns=[*columns, *FINAL_COLUMNS]),
    )


def seed_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean over seeds and its Student-t confidence interval; NaN bounds for one seed."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return mean, float(mean - half), float(mean + half)


def interval_table(finals: pd.DataFrame, by: str, value: str = "final_dims95", level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by`: seeds, mean of `value` with its t-interval (low, high), and the seeds' range."""
    rows = []
    for key, group in finals.groupby(by, sort=True):
        mean, low, high = seed_interval(group[value], level)
        rows.append(
            {
                by: key,
                "seeds": len(group),
                "mean": mean,
                "low": low,
                "high": high,
                "min": group[value].min(),
                "max": group[value].max(),
            }
        )
    return pd.DataFrame(rows, columns=[by, "seeds", "mean", "low", "high", "min", "max"])


def difference_table(finals: pd.DataFrame, by: str, reference, value: str = "final_dims95") -> pd.DataFrame:
    """Each condition against a reference condition: one row per value of `by` other than `reference`, with the
    seeds on each side, the two means of `value`, their difference, and the two-sided p-value of Welch's t-test
    (NaN with fewer than 2 seeds on a side, or no spread at all). Seeds are independent runs, so the test is
    the unpaired one."""
    base = finals.loc[finals[by] == reference, value].to_numpy(float)
    rows = []
    for key, group in finals[finals[by] != reference].groupby(by, sort=True):
        x = group[value].to_numpy(float)
        testable = len(x) > 1 and len(base) > 1 and (x.std() > 0 or base.std() > 0)
        with warnings.catch_warnings():  # one side without spread (all seeds equal) is fine for Welch's test,
            warnings.simplefilter("ignore", RuntimeWarning)  # but scipy warns of "catastrophic cancellation"
            p = float(stats.ttest_ind(x, base, equal_var=False).pvalue) if testable else float("nan")
        mean = float(x.mean())
        ref_mean = float(base.mean()) if len(base) else float("nan")
        rows.append({by: key, "seeds": len(x), "mean": mean, "reference_seeds": len(base),
                     "reference_mean": ref_mean, "difference": mean - ref_mean, "p_welch": p})  # fmt: skip
    columns = [by, "seeds", "mean", "reference_seeds", "reference_mean", "difference", "p_welch"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def condition_table(finals: pd.DataFrame, by: str, level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by`: seeds, final dims@95 as "mean (low to high)" with its t-interval ("mean (n/a,
    1 seed)" for a single seed), the seeds' range, and averaged over seeds dims@95 at init, the collapse (smallest
    dims@95 after step 0), the step of the collapse (median), how many seeds are still falling (their smallest
    dims@95 is at the last checkpoint, so the final value is a point on the way down, not a settled dimension), the
    held-out gap to the optimal loss and the R² of the belief read-out. `finals`: `collect`'s second frame."""
    dims = interval_table(finals, by, level=level).set_index(by)
    others = finals.assign(falling=finals["min_step"] == finals["final_step"]).groupby(by).agg(
        init=("init_dims95", "mean"), collapse=("min_dims95", "mean"), at_step=("min_step", "median"),
        still_falling=("falling", "sum"), gap=("gap", "mean"), r2=("r2", "mean"),
    )  # fmt: skip
    table = dims.join(others)
    table[f"final dims@95 ({level:.0%} interval)"] = [
        format_interval(m, lo, hi, ".1f") for m, lo, hi in zip(table["mean"], table["low"], table["high"], strict=True)
    ]
    table["seeds' range"] = [f"{lo:g}-{hi:g}" for lo, hi in zip(table["min"], table["max"], strict=True)]
    shown = ["seeds", f"final dims@95 ({level:.0%} interval)", "seeds' range", "init", "collapse", "at_step"]
    return table[[*shown, "still_falling", "gap", "r2"]]


def factor_scaling(finals: pd.DataFrame, acfg: probing.AnalysisConfig, seq_len: int) -> pd.DataFrame:
    """Dimension against the number of factors: one row per N among the runs on N independent Mess3 factors.

    finals: `collect`'s second frame (rows with n_mess3 = 0 are ignored). Columns: N, seeds, the measured
    dims@95 at init, at the end and at its smallest (means over seeds), the dimension counts of a factored (2N)
    and a joint (3^N - 1) representation, the dims@95 of the true beliefs on the probe data, concatenated
    (beliefs_factored) and as their outer product (beliefs_joint), the mean gap and R², and where `finals` has them
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
                **{k: group[k].mean() if k in group else float("nan") for k in JOINT_GAIN_COLUMNS},
            }
        )
    columns = ["N", "seeds", "init_dims95", "final_dims95", "min_dims95", "factored", "joint"]
    columns += ["beliefs_factored", "beliefs_joint"]
    return pd.DataFrame(rows, columns=[*columns, "gap", "r2", *JOINT_GAIN_COLUMNS])


def joint_belief_gains(run_list: list[runs.Run], acfg: probing.AnalysisConfig) -> pd.DataFrame:
    """`probing.joint_belief_gain` of each run at its final checkpoint: columns run (its folder name), beliefs_r2,
    before_joint_r2, joint_gain; merge it into `collect`'s second frame on `run` before `factor_scaling`."""
    rows = [{"run": r.dir.name, **probing.joint_belief_gain(r, acfg)} for r in run_list]
    return pd.DataFrame(rows, columns=["run", "beliefs_r2", "before_joint_r2", "joint_gain"])


def sweep_folders(root: Path | None = None) -> pd.DataFrame:
    """Every sweep folder under outputs/sweeps/: its notebook, points done and failed, the minutes the done
    points' notebooks ran (papermill's record, summed) and the wall-clock minutes of all invocations (log.jsonl)."""
    rows = []
    for folder in sorted((root or runs.outputs_dir()).glob("sweeps/*/")):
        spec = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {}
        done = [p for p in folder.glob("*.ipynb") if not p.name.endswith((".partial.ipynb", ".failed.ipynb"))]
        durations = [json.loads(p.read_text())["metadata"].get("papermill", {}).get("duration") or 0 for p in done]
        log = folder / "log.jsonl"
        invocations = (
            [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        )
        rows.append(
            {
                "sweep": folder.name,
                "notebook": spec.get("notebook", "?"),
                "done": len(done),
                "failed": len(list(folder.glob("*.failed.txt"))),
                "point_minutes": sum(durations) / 60,
                "wall_minutes": sum(i["seconds"] for i in invocations) / 60,
                "folder": runs.relative(folder),
            }
        )
    columns = ["sweep", "notebook", "done", "failed", "point_minutes", "wall_minutes", "folder"]
    return pd.DataFrame(rows, columns=columns)


GROWTH_MEASURES = ("beliefs_r2", "joint_gain", "prediction_tc")  # experiments.beyond_factored_at's columns


def noise_growth(run_list: list[runs.Run], acfg: probing.AnalysisConfig, n_mc: int = 20_000) -> pd.DataFrame:
    """Does the representation grow beyond the factor beliefs, and does the network predict better than any
    factored readout? One row per run (independent factors, any eps), at its collapse (the smallest dims@95) and
    at its last checkpoint; cached in each run folder (`runs.save_summary`, keyed by acfg and n_mc).

    Columns: run; fidelity_cost, the fidelity cost of factoring at the run's eps (nats/token, Monte Carlo over
    n_mc sequences, seed 0); below_factored = gap - fidelity_cost (negative: beyond any factored readout);
    dims_growth = final minus smallest dims@95; and `experiments.beyond_factored_at`'s beliefs_r2, joint_gain and
    prediction_tc at the collapse (suffix _collapse) and the end (suffix _final)."""
    columns = ["run", "fidelity_cost", "below_factored", "dims_growth"]
    columns += [f"{k}_{when}" for when in ("collapse", "final") for k in GROWTH_MEASURES]
    settings = {**asdict(acfg), "n_mc": n_mc}
    rows = []
    for run in run_list:
        row = runs.load_summary(run, "noise_growth", settings)
        if row is None:
            row = _noise_growth_of(run, acfg, n_mc)
            runs.save_summary(run, "noise_growth", row, settings)
        rows.append({"run": run.dir.name, **row})
    return pd.DataFrame(rows, columns=columns)


def _noise_growth_of(run: runs.Run, acfg: probing.AnalysisConfig, n_mc: int) -> dict[str, float]:
    cost_pp, _ = theory.fidelity_cost(run.process, run.config.data.seq_len, n_samples=n_mc, seed=0)
    cost = float(cost_pp.mean())
    trajectory = probing.analyze_run(run, acfg, progress=False)
    st = probing.stages(trajectory)
    grown = experiments.beyond_factored_at(run, sorted({st["early"], st["final"]}), acfg)
    dims = {stage: trajectory[st[stage]]["dims"]["0.95"] for stage in ("early", "final")}
    return {
        "fidelity_cost": cost,
        "below_factored": run.metrics()[-1]["gap"] - cost,
        "dims_growth": dims["final"] - dims["early"],
        **{f"{k}_{when}": float(grown.loc[st[stage], k]) for when, stage in (("collapse", "early"), ("final", "final"))
           for k in GROWTH_MEASURES},
    }  # fmt: skip


def format_interval(mean: float, low: float, high: float, fmt: str = ".3g") -> str:
    """ "mean (low to high)", or "mean (n/a, 1 seed)" where the interval is undefined (NaN bounds)."""
    return f"{mean:{fmt}} (n/a, 1 seed)" if np.isnan(low) else f"{mean:{fmt}} ({low:{fmt}} to {high:{fmt}})"


def interval_text(values, fmt: str = ".3g", level: float = 0.95) -> str:
    """The mean of `values` over seeds with its t-interval, as `format_interval`."""
    return format_interval(*seed_interval(values, level), fmt)


def intervals_by(frame: pd.DataFrame, by: str, columns: dict[str, str], level: float = 0.95) -> pd.DataFrame:
    """One row per value of `by` (the number of seeds, then each column of `columns` {column: format} as
    `interval_text`), one column per entry: the means over seeds with their t-intervals, side by side."""
    return frame.groupby(by, sort=True).agg(
        seeds=(by, "size"), **{c: (c, lambda v, f=f: interval_text(v, f, level)) for c, f in columns.items()}
    )


EXPANSION_SWEEP = SWEEPS_DIR / "expansion.yaml"
EXPANSION_COLUMNS = {  # column: format, in the order the expansion table shows them
    "fidelity_cost": ".3f", "gap": ".3f", "below_factored": "+.3f", "r2": ".2f", "min_dims95": ".3g",
    "final_dims95": ".3g", "dims_growth": "+.3g", "joint_gain_collapse": "+.4f", "joint_gain_final": "+.4f",
    "prediction_tc_final": ".3f",
}  # fmt: skip


def noise_expansion(
    ref: RunConfig, acfg: probing.AnalysisConfig, run_list: list[runs.Run], n_mc: int = 20_000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of `ref`'s process, model and budget at every eps and seed found in `run_list`: `collect`'s two
    frames, the second merged with `noise_growth`, each with a column eps (the noise as text: "0", "0.3")."""
    chosen = [r for r in run_list if same_but_noise(r.config, ref)]
    per_step, per_run = collect(chosen, ref, acfg)
    per_run = per_run.merge(noise_growth(chosen, acfg, n_mc), on="run")
    for frame in (per_step, per_run):
        frame["eps"] = frame["noise"].map("{:g}".format)
    return per_step, per_run


def expansion_findings(per_run: pd.DataFrame, factored_dim: int, tol: int = experiments.FACTORED_TOL) -> list[str]:
    """What the runs of `noise_expansion` say, one line per eps > 0 against eps 0, computed from them.

    The verdict, "beyond the factored beliefs", needs both: the joint belief (every cross-factor product of belief
    coordinates) explains more of the final activations than at eps 0 (Welch's test over seeds, p < 0.05), and
    every seed predicts better than any factored readout can (held-out gap below the fidelity cost). Beside it,
    the dimension: final dims@95 against eps 0's, whether the run passed through the factored band (its
    smallest dims@95 within `tol` of `factored_dim`) and how much dims@95 grew after that smallest value; and the
    cross-factor dependence (total correlation) of the network's own next-token law against the true law's."""
    if "0" not in set(per_run["eps"]):
        return ["no eps = 0 runs to compare with"]
    lines = []
    against = {
        value: difference_table(per_run, "eps", "0", value).set_index("eps")
        for value in ("final_dims95", "dims_growth", "joint_gain_final", "prediction_tc_final")
    }
    for eps, group in per_run[per_run["eps"] != "0"].groupby("noise", sort=True):
        key = f"{eps:g}"
        d, g, j, c = (against[v].loc[key] for v in against)
        beyond = int((group["below_factored"] < 0).sum())
        cost = group["fidelity_cost"].mean()  # also the true law's total correlation
        factored_first = int((group["min_dims95"] <= factored_dim + tol).sum())
        verdict = j["difference"] > 0 and j["p_welch"] < 0.05 and beyond == len(group)  # NaN p: no verdict of yes
        lines.append(
            f"eps {key} ({len(group)} seeds): beyond the factored beliefs: {'YES' if verdict else 'no'}. The joint "
            f"belief explains {100 * j['mean']:+.2f}% of the final activations beyond beliefs, position and tokens "
            f"against {100 * j['reference_mean']:+.2f}% at eps 0 (Welch p = {j['p_welch']:.2g}); {beyond} of "
            f"{len(group)} seeds predict better than any factored readout (gap {group['gap'].mean():.4f} against a "
            f"fidelity cost of {cost:.4f} nats/token); the network's own next-token law "
            f"carries {c['mean']:.4f} nats/token of cross-factor dependence, the true law {cost:.4f} "
            f"(eps 0: {c['reference_mean']:.4f}). Final dims@95 {d['mean']:.1f} against {d['reference_mean']:.1f} at "
            f"eps 0 (p = {d['p_welch']:.2g}); {factored_first} of {len(group)} seeds passed through the factored "
            f"band ({factored_dim} +- {tol}) first, smallest dims@95 {group['min_dims95'].mean():.1f} at step "
            f"{group['min_step'].median():g}, then {g['mean']:+.1f} to the end (eps 0: {g['reference_mean']:+.1f})."
        )
    return lines
