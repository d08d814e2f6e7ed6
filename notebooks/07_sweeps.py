# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-papermill,-execution,-ExecuteTime
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version,-papermill
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Sweeps: the noise and architecture results over seeds
#
# Notebooks 04 and 05 run one condition each: one noise level eps, one architecture, one seed. A **sweep** runs
# such a notebook over a grid of parameters, as a YAML file in `params/sweeps/` describes it:
#
# ```bash
# make sweep SWEEP=params/sweeps/noise.yaml           # 04_noise at eps 0, 0.2, 0.5 x seeds 0, 1, 2
# make sweep SWEEP=params/sweeps/architectures.yaml   # 05_architectures for RNN, LSTM, GRU x seeds 0, 1, 2
# make sweep SWEEP=params/sweeps/transformer_variants.yaml  # the long and wide transformers (hours of 2 cores)
# make sweep SWEEP=params/sweeps/factors.yaml         # 02_training on N = 1..6 independent Mess3 factors
# python -m factored.sweep params/sweeps/noise.yaml --scheduler tcp://host:8786   # on a Dask cluster
# ```
#
# Points already done are skipped, so a rerun after a crash does only what is left; two points that need the
# same run train it once. This notebook then collects **the runs each sweep's points describe**, whoever trained
# them (a sweep, a notebook run by hand), from the run folders and their cached analyses. Each condition is
# first checked against the library's rule for a network that has learned its beliefs (`verdicts.learning`:
# every factor's held-out R² >= 0.9 and the gap to the optimal predictor <= 0.02 nats); dimensions are compared
# only between learned conditions:
#
# * dims@95 against training step for each eps (the paper's noise figure), and for each architecture;
# * final dims@95 against eps and against architecture, with a 95% interval over seeds;
# * beyond the paper, dims@95 against the number of factors N, beside the factored (2N) and joint (3^N - 1)
#   predictions.
#
# The paper reports one seed per condition, so how much dims@95 varies from seed to seed, and whether the
# differences between conditions exceed it, is information it does not give.

# %% tags=["parameters"]
profile: str = ""  # smoke: trains the sweeps' runs itself, tiny (CI); laptop | long | paper: collects; "": default

# %%
from factored import config, parameters, profiles

_, acfg = parameters.prologue(globals())  # checks, converts and resolves the parameters: a bad one stops here

import dataclasses
import math

import pandas as pd

from factored import across_runs, paper, plots, products, runs, seeds, sweep, train, verdicts

SWEEPS = across_runs.SWEEPS
# acfg: notebooks 03-05's analysis sizes, so their caches are shared
ref = config.make_config(profile)  # the canonical transformer of this profile: the models are named against it
joint_dim, factored_dim = products.dimension_counts(products.process_of(ref.data).state_dims)
t = ref.train
print(f"profile {profile}: the canonical transformer trains {t.steps:,} steps x {t.batch_size} sequences of "
      f"{ref.data.seq_len} tokens = {t.steps * t.batch_size * ref.data.seq_len:,} training tokens (the paper: "
      f"10^11), {t.optimizer} at lr {t.lr:g} with the {t.schedule} schedule")

# %% [markdown]
# ## At the smoke profile: the sweeps' runs, tiny
#
# CI executes this notebook at the `smoke` profile, where no sweep has run. So that every step below has data
# to show, the notebook then trains every run the sweeps describe itself, at the smoke profile's size, straight
# through the library rather than through papermill (seconds each; a rerun loads them). At any other profile it
# trains nothing and collects what the sweeps left.

# %%
trains_own = profiles.profile_record(profile).trains_demo_grid
for path in SWEEPS.values() if trains_own else []:
    for cfg in across_runs.sweep_configs(path, profile):
        train.get_or_train(cfg, progress=False)

# %% [markdown]
# ## What the sweeps left
#
# One row per sweep folder: finished and failed points, the minutes their notebooks ran (summed over points)
# and the wall-clock minutes of the sweep invocations. Then how many of each sweep's runs are finished here.

# %%
folders = sweep.sweep_folders()
print(folders.round(1).to_string(index=False) if len(folders) else "no sweep has been run here yet")
if len(folders):
    minutes, cores = folders["point_minutes"].sum(), sweep.available_cores()
    print(f"in all: {minutes:.0f} minutes of points, i.e. about {minutes / cores:.0f} minutes of wall time with one "
          f"single-threaded point per core on this machine's {cores} cores")
swept = {name: across_runs.sweep_runs(path, profile) for name, path in SWEEPS.items()}
for name, path in SWEEPS.items():
    print(f"{name}: {len(swept[name])} of {len(across_runs.sweep_configs(path, profile))} runs finished in "
          f"{runs.relative(runs.outputs_dir() / 'runs')}")
frames = {name: across_runs.run_frames(found, ref, acfg) for name, found in swept.items()}
for per_step, per_run in frames.values():
    for frame in (per_step, per_run):
        frame["eps"] = frame["noise"].map("{:g}".format)

# %% [markdown]
# ## Noise: the factored phase and the later expansion
#
# The canonical transformer on the five-factor process with each token replaced by a random one with
# probability eps. Each curve is the mean over seeds, its band the range of the seeds (lowest to highest). The
# paper (one seed each, 500k steps of 25,000 sequences) sees every eps collapse to 3-5 dimensions, sit near the
# factored 10 for a while, and then, after about 10^4 steps, expand the more the larger eps: about 19 at
# eps = 0.2 and 38 at 0.5, 11-13 for eps <= 0.1.
#
# The laptop profile trains every eps for the same 1,500 steps on the exact next-token law (`target=law`), which
# learns every eps's beliefs within that budget (`benchmarks/target_study.md`): the comparison is at equal steps.
# Whether a condition has learned is computed below, not assumed.

# %%
ref_model = across_runs.model_label(ref, ref)
noise_steps, noise_runs = frames["noise"]
eps_order = [f"{e:g}" for e in sorted(noise_runs["noise"].unique())]
plots.dims_over_training_by(noise_steps, "eps", factored_dim, f"dims@95 over training, {ref_model}", eps_order);

# %% [markdown]
# ### Final dimension against eps, with intervals over seeds
#
# Each grey dot is one seed's dims@95 at the last checkpoint; the red diamond is the mean over seeds with its
# 95% Student-t interval (with three seeds the t factor is 4.3, so the interval is wide: it says how far the
# mean of three seeds can be trusted, not how far one seed lies from another). The table adds the collapse
# (the smallest dims@95 after step 0, and where), the held-out gap to the optimal loss and the R² of the
# linear belief read-out, averaged over seeds.

# %%
noise_table = seeds.interval_table(noise_runs, "noise")
noise_table["eps"] = noise_table["noise"].map("{:g}".format)
plots.final_dims_by(noise_runs, noise_table, "eps", factored_dim, f"Final dims@95 against eps, {ref_model}", "eps");

# %%
def welch(p: float) -> str:
    """A p-value as printed: Welch's test needs 2 seeds a side and some spread."""
    return "no test (1 seed, or no spread)" if math.isnan(p) else f"Welch p = {p:.2g}"


noise_summary = across_runs.condition_table(noise_runs, "eps")
noise_summary[f"paper ({paper.BUDGET})"] = [paper.noise_final_dims95(float(e)).value for e in noise_summary.index]
print(noise_summary.round(3).to_string() if len(noise_summary) else "no noise runs here yet")


def learned_or_not(table, name):
    """Say per condition whether every seed has learned its beliefs (the library's rule), which conditions have
    not finished collapsing (computed from the table), and at what budgets the learned ones compare."""
    c = verdicts.comparison(table)
    for key, row in table.iterrows():
        status = "learned" if key in c.learned else f"still learning ({row['learned']:g} of {row['seeds']} seeds)"
        print(f"{name}{key}: beliefs {status} (worst factor's R² {row['worst_r2']:.2f}, mean gap {row['gap']:.3f} "
              f"after {row['steps']:,} steps; learned: every factor's R² >= {verdicts.LEARNED_R2} and gap <= "
              f"{verdicts.LEARNED_GAP})")
    for key, row in table.loc[c.still_falling].iterrows():
        print(f"{name}{key}: the smallest dims@95 is at the last checkpoint in {row['still_falling']:g} of "
              f"{row['seeds']} seeds (dims@95 {row['init']:.0f} at init): the collapse is not finished at this "
              "budget, so the final dims@95 is a point on the way down, not a settled dimension")
    budgets = ", ".join(f"{name}{key}: {c.steps[key]:,}" for key in c.learned)
    print(f"compared: {[f'{name}{k}' for k in c.learned]} (learned); left out: "
          f"{[f'{name}{k}' for k in c.not_learned] or 'none'}. "
          + ("At equal steps." if c.equal_steps else f"At equal quality, not equal steps ({budgets}): each trained "
             "until learned; at equal steps the slower ones would still be learning, and a network still learning "
             "answers no question about its geometry."))
    return c


noise_compared = learned_or_not(noise_summary, "eps ")

# %% [markdown]
# Does noise change the dimension, beyond the seed-to-seed spread? Each learned eps against eps = 0: the
# difference of the mean final dims@95, of the collapse and of the step where it happens, with Welch's t-test
# over seeds (two-sided; with three seeds a side only a large, consistent difference reaches p < 0.05).

# %%
learned_noise = noise_runs[noise_runs["eps"].isin(noise_compared.learned)]
for value, what in (("final_dims95", "final dims@95"), ("min_dims95", "smallest dims@95 (the collapse)"),
                    ("min_step", "step of the collapse")):
    for row in seeds.difference_table(learned_noise, "eps", "0", value).itertuples():
        print(f"{what}, eps {row.eps} vs 0: {row.mean:.1f} vs {row.reference_mean:.1f} "
              f"({row.difference:+.1f}; {row.seeds} and {row.reference_seeds} seeds, {welch(row.p_welch)})")
if "0" not in noise_compared.learned:
    print("eps 0 has not learned its beliefs here: no comparison")

# %% [markdown]
# ## Noise where factoring costs: does the representation expand?
#
# On the paper's process the fidelity cost of factoring is at most 8.7e-4 nats/token (eps 0.5; notebook 01), twenty
# times below what a network at this scale has left to learn, so nothing there can reward an expansion.
# `params/sweeps/expansion.yaml` chooses a process where it pays: three sharp Mess3(0.05, 0.9) factors (27 joint tokens;
# factored belief dimension 6, joint 26), where factoring costs 1-3% of the loss at eps 0.1-0.5 and the optimal logits
# span 6-15 dimensions at 95% of their variance (notebook 01's planning table), learned by a small transformer (width
# 64, 2 layers) at eps 0, 0.1, 0.3 and 0.5 with seeds 0, 1, 2. A representation has grown **beyond the factored
# beliefs** when the joint belief (every cross-factor product of belief coordinates) explains more of its activations
# than at eps 0 (Welch's test over seeds) *and* every seed's held-out loss lies below the optimum plus the fidelity
# cost, which no factored readout can reach. Beside that verdict: dims@95 against eps 0's, whether the run passed
# through the factored band first, and how much cross-factor dependence the network's own next-token law carries against
# the true law's (its total correlation, which is the fidelity cost).

# %%
exp_ref = across_runs.sweep_configs(SWEEPS["expansion"], profile)[0]
n_mc = profiles.profile_record(profile).mc_samples
exp_steps, expansion = across_runs.noise_expansion(swept["expansion"], exp_ref, acfg, n_mc)
exp_factored = products.dimension_counts(products.process_of(exp_ref.data).state_dims)[1]
exp_order = [f"{e:g}" for e in sorted(expansion["noise"].unique())]
exp_title = f"dims@95 over training, {across_runs.model_label(exp_ref, ref)} on 3 sharp Mess3 factors"
plots.dims_over_training_by(exp_steps, "eps", exp_factored, exp_title, exp_order);

# %%
exp_table = seeds.intervals_by(expansion, "eps", across_runs.EXPANSION_COLUMNS)
print(exp_table.T.to_string() if len(exp_table) else "no expansion runs here yet")
exp_learned = verdicts.learned_split(expansion, "eps", exp_order)
print(f"learned (every seed): {exp_learned.learned}; not learned: {exp_learned.not_learned or 'none'}")
print("\n".join(f.sentence() for f in verdicts.expansion_findings(expansion, exp_factored)))

# %% [markdown]
# ## Architectures
#
# Every model of `params/sweeps/architectures.yaml` (the recurrent nets) and `transformer_variants.yaml` (the long
# and wide transformers) on the noiseless five-factor process, each trained with its own optimizer and lr
# (`Profile.recurrent`, from the recipe study) on the exact law for 1,500 steps, beside the canonical transformer
# (the eps = 0 runs above). A recurrent net is probed at the hidden state of its top layer. The paper (one seed
# each, 30k steps and more) finds the LSTM of width 32 at 14-17 dimensions, the RNN of width 256 still at about 35
# at 30k steps, the wide transformer and the long contexts at 10-12.
#
# Each net is said to have learned its beliefs, or not, by the library's rule before its dimension is compared.

# %%
noiseless = lambda frame: frame[frame["noise"] == 0]
arch_steps = pd.concat([noiseless(frames["noise"][0]), *(frames[name][0] for name in across_runs.ARCHITECTURE_SWEEPS)])
arch_runs = pd.concat([noiseless(frames["noise"][1]), *(frames[name][1] for name in across_runs.ARCHITECTURE_SWEEPS)])
models = sorted(arch_runs["model"].unique(), key=lambda m: (m != ref_model, m))  # the canonical one first
plots.dims_over_training_by(arch_steps, "model", factored_dim, "dims@95 over training, by architecture", models);

# %%
arch_table = seeds.interval_table(arch_runs, "model").set_index("model").loc[models].reset_index()
plots.final_dims_by(arch_runs, arch_table, "model", factored_dim, "Final dims@95 by architecture", "");

# %%
arch_summary = across_runs.condition_table(arch_runs, "model").loc[models]
noiseless_runs = [r for name in ("noise", *across_runs.ARCHITECTURE_SWEEPS) for r in swept[name]
                  if r.config.data.noise == 0]
model_configs = {across_runs.model_label(r.config, ref): r.config for r in noiseless_runs}
arch_summary["paper (final dims@95)"] = [paper.architecture_final_dims95(model_configs[m]).value for m in models]
print(arch_summary.round(3).to_string() if len(arch_summary) else "no noiseless runs here yet")
arch_compared = learned_or_not(arch_summary, "")
for row in seeds.difference_table(arch_runs[arch_runs["model"].isin(arch_compared.learned)], "model",
                                  ref_model).itertuples():
    print(f"final dims@95, {row.model} vs {ref_model}: {row.mean:.1f} vs {row.reference_mean:.1f} "
          f"({row.difference:+.1f}; {welch(row.p_welch)})")

# %% [markdown]
# ### What the extra directions hold
#
# dims@95 counts every direction a network uses, not only its beliefs. The nested linear models of notebook 03
# split each learned network's final activations into the share the beliefs explain, then what position, the
# tokens (newest and previous), within-factor products and last the joint belief (every cross-factor product) add,
# on the same probe data (the models at the canonical context). Where a network sits above the factored count,
# this tells joint beliefs (the paper's question) from the bookkeeping of position and tokens.
#
# The paper gives the wide transformer's d_model (480) and not its MLP width, so the sweep trains both readings on
# the same seeds and recipe: 4 x d_model (notebook 05's rule) and the canonical 480. Each transformer whose MLP
# departs from the rule is compared with the same model under it: the one change.

# %%
learned_here = [r for r in noiseless_runs if r.config.data.seq_len == ref.data.seq_len
                and across_runs.model_label(r.config, ref) in arch_compared.learned]  # fmt: skip
parts = across_runs.variance_parts(learned_here, acfg).merge(arch_runs[["run", "model"]].drop_duplicates("run"))
part_models = [m for m in models if m in set(parts["model"])]
plots.variance_parts_by(parts, "model", part_models, "What the final activations hold (learned networks)");

# %%
part_columns = [c for c in parts.columns if c not in ("run", "model")]
shares = 100 * parts.groupby("model")[part_columns].mean().reindex(part_models)
print("held-out share of the final activations' variance each part adds, % (mean over seeds):")
print(shares.round(1).to_string() if len(parts) else "no learned runs at the canonical context here yet")
for label, cfg in model_configs.items():
    rule = parameters.architecture_sizes("transformer", cfg.model.d_model)["d_mlp"]
    if cfg.model.arch != "transformer" or cfg.model.d_mlp == rule:
        continue
    ruled = across_runs.model_label(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_mlp=rule)), ref)
    pair = arch_runs[arch_runs["model"].isin([label, ruled])]
    for row in seeds.difference_table(pair, "model", ruled).itertuples():
        print(f"one change, the MLP width: final dims@95, {row.model} vs {ruled}: {row.mean:.1f} vs "
              f"{row.reference_mean:.1f} ({row.difference:+.1f}; {row.seeds} and {row.reference_seeds} seeds, "
              f"{welch(row.p_welch)})")

# %% [markdown]
# ## Beyond the paper: dimension against the number of factors
#
# The paper's argument in one line: a joint belief over N three-state factors needs 3^N - 1 dimensions, a
# factored one 2N. Here the canonical transformer (width 120) learns N = 1..6 independent Mess3 factors at this
# budget (`params/sweeps/factors.yaml`, 3 to 729 joint tokens). Beside the two counts: the dims@95 of the true
# beliefs on the same probe data, concatenated and as their outer product (what an ideal factored or joint
# representation would show at 95% variance), and the network's dims@95 at the end and at its collapse. Beyond
# N = 4 a joint representation (242, 728 dimensions) no longer fits in the width at all.
#
# The network's dims@95 counts everything its residual stream holds, not only beliefs: notebook 03 found the
# position and the newest tokens there too (about a fifth of the variance). So even an ideal factored network
# sits above 2N; what separates the hypotheses is how dims@95 grows with N, against 3^N. A second test does
# not count dimensions at all: the nested linear models of notebook 03 (beliefs, position, newest and previous
# tokens, within-factor products), then every cross-factor product of belief coordinates (the joint belief,
# 3^N features) on top. A joint representation would put its variance in that last step; a factored one
# leaves nothing for it. And a network can only be judged where it has learned: the R² of the belief read-out says
# where.

# %%
scaling_runs = frames["factors"][1]
gains = across_runs.joint_belief_gains(swept["factors"], acfg)
scaling = across_runs.factor_scaling(scaling_runs.merge(gains, on="run"), acfg, ref.data.seq_len)
plots.dims_vs_factors(scaling, ref.model.d_model);

# %%
print(scaling.round(3).to_string(index=False) if len(scaling) else "no runs on N Mess3 factors at this budget")
if len(scaling):
    v = verdicts.factor_scaling(scaling)
    learned, unlearned = scaling[scaling["N"].isin(v.learned)], scaling[scaling["N"].isin(v.not_learned)]
    print(f"learned (every factor's R² >= {verdicts.LEARNED_R2}): N = {v.learned}; final dims@95 "
          f"{', '.join(f'{d:g}' for d in learned['final_dims95'])} against joint counts "
          f"{', '.join(str(j) for j in learned['joint'])} and factored counts "
          f"{', '.join(str(f) for f in learned['factored'])}")
    print(f"below even the joint beliefs' own dims@95 for N = {v.below_joint_beliefs}; "
          f"at or above it for N = {v.at_or_above_joint_beliefs}")
    print("variance of the final activations that the joint belief (every cross-factor product) explains beyond "
          "beliefs, position and tokens: "
          + ", ".join(f"N = {row.N}: {100 * row.joint_gain:+.1f}% (beliefs alone {100 * row.beliefs_r2:.0f}%)"
                      for row in learned.itertuples()))
    for row in unlearned.itertuples():
        print(f"N = {row.N}: not learned at this budget (worst R² {row.worst_r2:.2f}, gap {row.gap:.3f} nats; dims@95 "
              f"{row.init_dims95:g} at init, {row.final_dims95:g} at the end): no conclusion about its dimension")

# %% [markdown]
# ## Every condition of the sweeps
#
# Every finished run of the four sweeps, grouped by model, process and eps, with the number of seeds behind each
# row, its training steps and how many seeds have learned their beliefs.

# %%
per_run = pd.concat([frame for _, frame in frames.values()]).drop_duplicates("run")
per_run["condition"] = per_run["model"] + ", " + per_run["structure"] + ", eps " + per_run["eps"]
everything = across_runs.condition_table(per_run, "condition")
print(everything.round(3).to_string() if len(everything) else "no sweep runs here yet")
