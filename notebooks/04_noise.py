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
# # 04 · Noise: a factored representation when factoring is lossy
#
# The paper's RQ4. With probability eps every joint token is replaced by a uniformly random one (one of 432).
# The next-token law becomes `(1 - eps)·prod_n p_n + eps/432`: no longer a product of per-factor laws, so a
# network that keeps one separate belief per factor can no longer predict optimally. The paper finds that
# networks still go through a **factored phase** (after the early collapse, dims@95 sits near the factored
# value 10) and only later **expand** their dimension to recover fidelity, the more the larger eps: after
# about 10^4 steps of 25,000 sequences, dims@95 grows to about 38 at eps = 0.5, 24 at 0.3, 19 at 0.2 and
# 11-13 at eps <= 0.1.
#
# This notebook runs one eps, the parameter `noise` (default 0.2, where the paper's expansion is clear), and
# sets it beside the eps = 0 run of notebooks 02-03 (same profile, seed and budget). From the `notebooks`
# folder, with the project's environment active:
#
# ```bash
# papermill 04_noise.ipynb out.ipynb -p noise 0.2
# papermill -f ../params/04_noise/eps_0.2.yaml 04_noise.ipynb out.ipynb   # the paper's sweep, one file per eps
# ```

# %% tags=["parameters"]
noise: float = 0.2  # eps in [0, 1]: probability that a joint token is replaced by a uniform one
profile: str = ""  # smoke | laptop | long | paper; "": $FACTORED_PROFILE, else laptop
seed: int = 0
target: str = ""  # tokens (sampled next tokens) | law (their exact law); "": the profile's
steps: int = 0  # 0: the profile's training budget
n_mess3: int = 0  # 0: the paper's five factors; N in [1, 8]: N independent Mess3(mess3_x, mess3_a) factors
mess3_x: float = 0.15  # the Mess3 factors' parameters when n_mess3 > 0 (sharper ones: a larger fidelity cost)
mess3_a: float = 0.6
d_model: int = 0  # model sizes; 0: the profile's (d_mlp follows 4 x d_model when d_model is set)
n_layers: int = 0
n_heads: int = 0
d_mlp: int = 0

# %%
from factored import config, parameters, profiles

setup = parameters.prologue(globals())  # checks, converts, builds the run and analysis: a bad value stops here
cfg, acfg = setup
base_cfg = parameters.run_config(setup.values, noise=0.0)  # eps = 0 (02-03's by default)
print(cfg.describe())

# %%
import dataclasses

import pandas as pd

from factored import (
    across_runs,
    analysis,
    paper,
    plots,
    probing,
    products,
    run_analysis,
    runs,
    seeds,
    tables,
    theory,
    train,
    verdicts,
)

n_mc = profiles.profile_record(profile).mc_samples  # Monte-Carlo contexts for the theory
seq_len = cfg.data.seq_len
process = products.process_of(cfg.data)
joint_dim, factored_dim = products.dimension_counts(process.state_dims)
TOL = verdicts.FACTORED_TOL  # "near the factored value": dims@95 within 2 of it
label = f"eps = {noise:g}"


def pm(value, err, fmt):
    """value ± its standard error, or "(exact)" when there is none."""
    return f"{value:{fmt}} ± {err:{fmt}}" if err else f"{value:{fmt}} (exact)"

# %% [markdown]
# ## Theory first: what factoring costs at this eps
#
# **Fidelity cost of factoring** (notebook 01): the extra loss per token of the best predictor that keeps one
# independent prediction per factor, i.e. the KL divergence from the true next-token law to the product of
# its per-factor marginals, averaged over contexts. **Optimal loss**: the entropy of the next token given the
# past. Both are exact at eps = 0 and Monte-Carlo estimates otherwise (± one standard error; positions share
# their contexts, so the error of the position average is at most the average of the positions' errors).

# %%
cost_pp, cost_se = theory.fidelity_cost(process, seq_len, n_samples=n_mc, seed=seed)
optimal_pp, optimal_se = theory.optimal_loss(process, seq_len, n_samples=n_mc, seed=seed)
clean_pp, _ = theory.optimal_loss(products.process_of(base_cfg.data), seq_len)  # exact: independent, noiseless
cost, cost_err = float(cost_pp.mean()), float(cost_se.mean())
optimal, optimal_err, clean = float(optimal_pp.mean()), float(optimal_se.mean()), float(clean_pp.mean())
print(f"{label}: fidelity cost of factoring {pm(cost, cost_err, '.3g')} nats/token"
      + (": the factors are conditionally independent" if noise == 0 else ""))
print(f"optimal loss {pm(optimal, optimal_err, '.5f')} nats/token"
      + (f"; at eps = 0 it is {clean:.5f} (exact), so noise adds {optimal - clean:+.5f} nats of irreducible loss"
         if noise else ""))

# %%
plots.per_position(
    {f"optimal loss, {label}": optimal_pp, "optimal loss, eps = 0": clean_pp},
    {f"optimal loss, {label}": optimal_se},
    title="Optimal loss per position",
);

# %%
plots.per_position({label: cost_pp}, {label: cost_se}, title="Fidelity cost of factoring per position");

# %% [markdown]
# The **reference curves**: the cumulative explained variance of the true beliefs themselves, concatenated
# (what a perfectly factored representation holds, "Factored") and as their outer product (a joint
# representation, "Joint"). Under noise each factor still carries its own belief (updated on the observed
# sub-token, as in the authors' generator), so the references barely move with eps; what changes is that the
# best predictor now needs more than these factor beliefs side by side.

# %%
refs = probing.reference_curves(process, acfg, seq_len)
plots.cev_references({"Factored (concatenated beliefs)": refs["factored_cev"], "Joint (outer product)":
                      refs["joint_cev"]});
print(f"reference dims@95 at {label}: factored beliefs {refs['factored_dims95']}, joint beliefs "
      f"{refs['joint_dims95']}; dimension counts: factored {factored_dim}, joint {joint_dim}")

# %% [markdown]
# ## Train, and the eps = 0 run beside it
#
# `get_or_train` loads a finished run, resumes an interrupted one, or trains it. Each eps has its own run
# folder (the config hash names it), so runs at different eps never share files.

# %%
run = train.get_or_train(cfg)
base = train.get_or_train(base_cfg)
for name, r in ((label, run), ("eps = 0", base))[: 2 if noise else 1]:
    print(f"{name}: {runs.relative(r.dir)}, {len(r.steps)} checkpoints (steps {r.steps[0]}..{r.steps[-1]})")

# %% [markdown]
# ## Loss against the optimum
#
# The gap is the held-out loss minus the optimal predictor's loss on the same held-out sequences (each run
# against its own process's optimum), which removes most of the sampling noise of a finite batch.

# %%
metrics, base_metrics = run.metrics(), base.metrics()
plots.gap_compare({label: metrics, "eps = 0": base_metrics} if noise else {label: metrics});

# %%
gap, base_gap = metrics[-1]["gap"], base_metrics[-1]["gap"]
print(f"final held-out loss {metrics[-1]['eval_loss']:.5f} (step {metrics[-1]['step']}); optimal loss "
      f"{pm(optimal, optimal_err, '.5f')}; gap to the optimal predictor on the same sequences {gap:+.4f} nats"
      + (f" (eps = 0 run: {base_gap:+.4f})" if noise else ""))
v_cost = verdicts.gap_against_cost(gap, cost)
if noise and cost > 0:
    print(f"the remaining gap is {v_cost.ratio:.3g} times the fidelity cost of factoring ({cost:.2g} nats/token): "
          + ("more is still to be gained by learning the factor beliefs than by giving up the factored form"
             if v_cost.above_cost else "what is left is no more than what factoring costs"))

# %% [markdown]
# ## Dimension over training
#
# dims@95 of the residual stream at every checkpoint, for this eps and for eps = 0. The paper's picture: both
# first collapse, then sit near the factored value (the factored phase); only later does the noisy run grow.

# %%
kinds = list(process.kinds)
names = process.names
conditions = {label: run, "eps = 0": base} if noise else {label: run}  # at eps = 0 the two runs are one
results = {name: run_analysis.analyze(r, acfg) for name, r in conditions.items()}
trajectory = results[label].trajectory
compare = {name: r.trajectory for name, r in results.items()}
plots.dims_compare(compare, factored_dim, joint_dim);

# %%
phases, base_phases = results[label].phases, results[list(results)[-1]].phases  # the same run at eps = 0
print(tables.phases_table({name: r.phases for name, r in results.items()}, factored_dim).to_string())

# %% [markdown]
# ## Is each factor's belief still linearly decodable?
#
# Held-out R² of one affine map from the activations to all five beliefs, per factor (the beliefs of the
# noisy process are the authors': each factor updated with its clean matrices on the observed sub-token).

# %%
plots.per_factor_compare(compare, names, key="r2", kinds=kinds);

# %% [markdown]
# ## The shape of the spectrum
#
# Cumulative explained variance at every checkpoint of the noisy run (dark: early, bright: late), against
# the reference curves of this eps.

# %%
plots.cev_over_training(trajectory, refs["factored_cev"], refs["joint_cev"]);

# %% [markdown]
# ## Are the factor subspaces still orthogonal at the end?
#
# Vary-one subspaces at the final checkpoint (as in notebook 03), overlap against rank k; the grey band is
# randomly initialised networks.

# %%
curves = {f"{name}, step {r.final}": r.vary[r.final]["mean_overlap"] for name, r in results.items()}
plots.overlap_vs_k(curves, analysis.baseline_band(results[label].random_overlaps), cfg.model.d_model);

# %% [markdown]
# ## Does the representation grow beyond the factor beliefs?
#
# dims@95 counts directions; it cannot tell a network that adds joint features (what an expansion that recovers
# fidelity would add) from one whose geometry is simply not settled yet. Three dimension-free measures at a
# few checkpoints of each run, on the same held-out sequences: the share of the activations' variance the
# factor beliefs explain linearly; what every cross-factor product of belief coordinates (the joint belief)
# explains on top of beliefs, position and tokens; and the total correlation of the network's own next-token
# law (0: it predicts the factors independently; the true law's is the fidelity cost above).

# %%
growth_steps = sorted({results[label].phases["min_step"], *[s for s in (1000, 2500) if s in run.steps],
                       run.steps[-1]})  # fmt: skip
growth = pd.concat({name: run_analysis.beyond_factored_at(r, [s for s in growth_steps if s in r.steps], acfg)
                    for name, r in conditions.items()}, names=["run"])  # fmt: skip
growth["dims@95"] = [results[name].trajectory[step].dims95 for name, step in growth.index]
print(growth.round(4).to_string())
print(f"true law's total correlation (the fidelity cost) at {label}: {cost:.2g} nats/token")

# %% [markdown]
# ## Results
#
# Measured on this run and the eps = 0 run; the paper's values are read off its figures (one seed, 500k steps
# x 25,000 sequences). Also saved in the run folder as `summaries/04_noise-<settings>.json`.

# %%
result = results[label].summary
theory_rows = {
    label: {"fidelity cost of factoring (nats/token)": pm(cost, cost_err, ".3g"),
            "optimal loss (nats/token)": pm(optimal, optimal_err, ".5f")},
    "eps = 0": {"fidelity cost of factoring (nats/token)": "0 (exact)",
                "optimal loss (nats/token)": f"{clean:.5f} (exact)"},
}
table = pd.concat([pd.DataFrame({k: theory_rows[k] for k in results}),
                   tables.comparison_text(tables.comparison_table(results, kinds), factored_dim)])
paper_final = paper.noise_final_dims95(noise).value
table[f"paper ({label})"] = table.index.map({
    "dims@95 at init": paper.INIT_DIMS95.value, "min dims@95 (step)": paper.NOISE_COLLAPSE_DIMS95.value,
    f"factored phase (dims@95 within {TOL} of {factored_dim})": paper.FACTORED_PHASE.value,
    "final dims@95 (step)": (paper_final + " (500k steps)" if not n_mess3 else "not in the paper (another process)"),
    "mean overlap k = 1, 2 (final)": f"{paper.OVERLAP.value} at eps = 0",
    "random-init overlap k = 1, 2": paper.RANDOM_INIT_OVERLAP.value,
}).fillna("-")
table.index.name = "quantity"
print(table.to_string())
saved = {"noise": noise, "fidelity_cost": cost, "fidelity_cost_stderr": cost_err, "optimal_loss": optimal,
         "optimal_loss_stderr": optimal_err, "phases": phases, **result,
         "growth": {name: {str(step): {k: float(v) for k, v in row.items()}
                           for step, row in growth.loc[name].iterrows()} for name in conditions}}  # fmt: skip
summary_file = runs.save_summary(run, "04_noise", saved, settings=dataclasses.asdict(acfg))
print(f"saved {runs.relative(summary_file)}")

# %% [markdown]
# ## What this budget shows
#
# The conclusions below are computed from the table. The factored phase is there when, after the collapse,
# dims@95 stays within 2 of the factored value over consecutive checkpoints spanning at least a doubling of
# the training step (a plateau, not a pass through on the way up). Expansion has begun when the final dims@95
# lies above that band *and* above the eps = 0 run's by more than 2: the eps = 0 run shows how far this budget
# is from convergence, noise or not.

# %%
authors = config.make_config("paper").train
tokens = cfg.train.steps * cfg.train.batch_size * seq_len
paper_tokens = paper.EXPANSION_STEP * authors.batch_size * seq_len  # dims@95 grows with eps after these
v = verdicts.noise_phases(phases, base_phases, factored_dim, tokens, paper_tokens)
low, high = v.band
print(f"Factored phase at {label}: {'yes' if v.phase_seen else 'no'}. After the collapse to {v.min_dims95} "
      f"dims@95 (step {v.min_step}), dims@95 "
      + (f"is within {TOL} of {factored_dim} at {len(v.phase_steps)} consecutive checkpoints (steps "
         f"{v.phase_steps[0]}-{v.phase_steps[-1]}, a span of x{v.phase_span:.3g}; dims "
         f"{min(v.phase_dims)}-{max(v.phase_dims)})." if v.phase_steps
         else f"never comes within {TOL} of {factored_dim}."))
if noise:
    print(f"Expansion at {label}: {'begun' if v.expansion_begun else 'not begun'} by step {v.final_step}: final "
          f"dims@95 {v.final_dims95} against {v.base_final_dims95} at eps = 0 ({v.excess:+d}) and the "
          f"factored band {low}-{high}.")
else:
    print(f"Expansion at eps = 0: none is needed, the factored form is lossless; final dims@95 "
          f"{v.final_dims95} at step {v.final_step} is {'above' if v.above_band else 'within or below'} the factored "
          f"band {low}-{high}.")
if cfg.data.n_mess3 == 0 and v.budget_share < 1:  # the paper's tokens are a yardstick on the paper's process only
    print(f"This run's budget, {cfg.train.steps:,} steps x {cfg.train.batch_size:,} sequences = {tokens:.2g} "
          f"tokens, is {100 * v.budget_share:.2g}% of the ~{paper_tokens:.0g} tokens of sampled-token training "
          f"after which the paper's dims@95 grows with eps (the `paper` profile, -p profile paper: "
          f"{authors.steps:,} steps x {authors.batch_size:,} sequences, a GPU job). Whether the growth needs that "
          f"scale or that target is the question of benchmarks/target_study.md, which trains this recipe 4x longer, "
          f"below every eps's fidelity cost.")
elif cfg.data.n_mess3 == 0:
    print(f"This run's budget ({tokens:.2g} tokens) reaches past the ~{paper_tokens:.0g} tokens after which the "
          f"paper's dims@95 grows with eps.")

# %% [markdown]
# ## Sampled tokens over a longer budget
#
# This notebook's runs learn from the exact next-token law. The `long` profile trains the authors' init on their
# target, sampled next tokens, 13x longer (20,000 steps; `python -m factored.train --profile long --noise EPS
# --seed S`, about an hour a run on one core; benchmarks/target_study.md trains and scores them, and the same run
# at 4x the batch over the same sequences). Does that path reach another geometry, and has it learned every
# factor's belief when it gets there? Every such run found here at eps 0 and 0.5, seeds 0-2, beside this
# notebook's eps = 0 run (each analysed with its own profile's settings):

# %%
long_cfgs = [parameters.run_config({"profile": "long", "noise": e, "seed": s}) for e in (0.0, 0.5) for s in range(3)]
long_runs = [r for r in map(runs.finished_run, long_cfgs) if r is not None]
if long_runs:
    law_steps, law_final = across_runs.run_frames([base], base_cfg, acfg)
    token_steps, token_final = across_runs.run_frames(long_runs, long_cfgs[0], probing.analysis_config("long"))
    recipe = {r.dir.name: f"{r.config.train.target}, {r.config.train.steps:,} steps, eps {r.config.data.noise:g}"
              for r in (base, *long_runs)}  # fmt: skip
    per_step = pd.concat([law_steps, token_steps]).assign(recipe=lambda f: f["run"].map(recipe))
    finals = pd.concat([law_final, token_final]).assign(recipe=lambda f: f["run"].map(recipe))
    legend = "target, budget, eps\n(band: range over seeds)"
    plots.dims_over_training_by(per_step, "recipe", factored_dim, "dims@95: the exact law against sampled tokens",
                                legend_title=legend, legend_outside=True)  # fmt: skip
    print(finals[["recipe", "seed", "gap", "worst_r2", "learned", "min_dims95", "final_dims95"]].to_string(index=False))
    for eps, group in token_final.groupby("noise"):
        print(f"Sampled tokens at eps {eps:g}: {group['learned'].sum()} of {len(group)} runs learned; final dims@95 "
              f"{', '.join(map(str, group['final_dims95']))} (the paper: {paper.NOISE_FINAL_DIMS95[eps].value}) "
              f"against {law_final['final_dims95'].iloc[0]} for this notebook's eps = 0 run"
              + ("." if group["learned"].all() else "; by the library's rule an unlearned network's geometry "
                 "answers no question about factored against joint representations."))  # fmt: skip
else:
    print("No `long` run here yet: `python -m factored.train --profile long --noise 0.5 --seed 0` trains one "
          "(about an hour on one core).")  # fmt: skip

# %% [markdown]
# ## Where factoring costs more: the expansion test over eps and seeds
#
# On the paper's process the fidelity cost is too small for an expansion to pay at this scale (notebook 01's
# planning table). `params/sweeps/expansion.yaml` runs this notebook where it pays: three sharp Mess3(0.05, 0.9)
# factors, a transformer of width 64, eps 0, 0.1, 0.3, 0.5, seeds 0-2; notebook 07 draws it. Its conclusion,
# computed from every such run found here:

# %%
exp_ref = across_runs.sweep_configs(across_runs.EXPANSION_SWEEP, profile)[0]
exp_runs = across_runs.sweep_runs(across_runs.EXPANSION_SWEEP, profile)
_, expansion = across_runs.noise_expansion(exp_runs, exp_ref, acfg, n_mc)
if len(expansion):
    print(seeds.intervals_by(expansion, "eps", across_runs.EXPANSION_COLUMNS).T.to_string())
    exp_factored = products.dimension_counts(products.process_of(exp_ref.data).state_dims)[1]
    print("\n".join(f.sentence() for f in verdicts.expansion_findings(expansion, exp_factored)))
else:
    print("no run of the expansion sweep here yet: make sweep SWEEP=params/sweeps/expansion.yaml")
