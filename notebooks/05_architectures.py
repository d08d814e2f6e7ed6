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
# # 05 · Architectures: do recurrent networks factor too?
#
# The paper's RQ5: the pull towards factored representations is not a quirk of attention. RNNs and LSTMs
# trained on the same five-factor process also lean towards one small subspace per factor. This notebook
# trains one architecture (parameter `arch`: transformer, rnn, lstm or gru) on the data and budget of the
# canonical transformer of notebook 02, runs the analyses of notebook 03 on it, and puts the two side by side:
# dims@95 over training, R² per factor, overlap of the factor subspaces.
#
# * **Site**: each model's natural one. For a transformer, the residual stream after the last block
#   (`blocks.{L-1}.hook_resid_post`); for a recurrent net, the hidden state of the top layer (`rnn.{L-1}.hidden`).
# * **Data**: the same sequences. A transformer reads `[BOS, x1..x7]` and predicts `[x1..x8]`. A recurrent net
#   has no BOS (as in the authors' code): it reads `[x1..x7]` and predicts `[x2..x8]`. Both are probed after
#   each of x1..x7, paired with the factor beliefs after the same tokens.
# * **Sizes**: 0 means the default. For a transformer that is the profile's model; for a recurrent net it is
#   the authors' depth of 2 layers and width 32 (their LSTM and their smallest RNN). A transformer of another
#   width keeps the profile's heads (3 at `laptop`, so d_model 480 has 3 heads of 160) and an MLP 4 x d_model
#   wide, the ratio of the canonical 120/480. `n_ctx` is the length of a sequence with its BOS (9 in the
#   paper), so the data have n_ctx - 1 tokens; recurrent nets get those same sequences without the BOS.
# * `params/05_architectures/` holds the authors' variants (transformer d_model 480, n_ctx 33 and 101; RNN 32,
#   64, 256; LSTM 32) and a GRU 32, which the paper does not have:
#   `papermill -f params/05_architectures/rnn_64.yaml 05_architectures.ipynb out.ipynb`.

# %% tags=["parameters"]
profile: str = ""  # smoke | laptop | long | paper; "": $FACTORED_PROFILE, else laptop
seed: int = 0
target: str = ""  # tokens (sampled next tokens) | law (their exact law); "": the profile's
arch: str = "lstm"  # transformer | rnn | lstm | gru
d_model: int = 0  # width; 0: the profile's transformer, or 32 for a recurrent net
n_layers: int = 0  # 0: the profile's transformer, or 2 for a recurrent net
n_heads: int = 0  # transformer only; 0: the profile's
d_mlp: int = 0  # transformer only; 0: the profile's, or 4 x d_model when d_model is set
n_ctx: int = 0  # length of a sequence with its BOS (seq_len + 1); 0: the profile's (9)
steps: int = 0  # 0: the profile's training budget

# %%
from factored import parameters

cfg, acfg = parameters.prologue(globals())  # checks, converts, builds the run and analysis: a bad value stops here
canonical_cfg = parameters.run_config(dict(profile=profile, seed=seed, target=target, steps=steps))  # 02-03's run
# the canonical transformer itself shares its run folder with notebooks 02 and 03; any other model gets its own
# (`config.condition_name`: lstm32x2, transformer480x4-ctx9)
print(f"this run:\n{cfg.describe()}\ncanonical:\n{canonical_cfg.describe()}")

# %%
import dataclasses
import math

import pandas as pd

from factored import analysis, models, paper, plots, probing, products, run_analysis, runs, train, verdicts
from factored.across_runs import model_label  # notebook 07's names for the same models

label = model_label(cfg, canonical_cfg) + (" (canonical)" if cfg == canonical_cfg else "")
canonical_label = model_label(canonical_cfg, canonical_cfg) + " (canonical)"
configs = {label: cfg, canonical_label: canonical_cfg}  # one entry when this run is the canonical one
# acfg: notebook 03's settings, so its caches are shared
print(acfg)

# %% [markdown]
# ## The two runs
#
# `get_or_train` loads each run if it is already in `outputs/runs/` (the canonical one after notebook 02),
# resumes it if it was interrupted, or trains it. Each trains with its architecture's recipe in the profile (a
# recurrent net's optimiser and learning rate come from its own study, benchmarks/recipe.md; the parameter `steps`
# changes this run's budget only).

# %%
all_runs = {lab: train.get_or_train(c) for lab, c in configs.items()}
for lab, run in all_runs.items():
    model = run.load_model()
    print(
        f"{lab}: {models.n_params(model):,} parameters, site {model.default_site}; "
        f"{len(run.steps)} checkpoints (steps {run.steps[0]}..{run.steps[-1]}) in {runs.relative(run.dir)}"
    )

# %% [markdown]
# ## How well each learns the process
#
# The gap is the held-out loss minus the Bayes-optimal predictor's loss on the same sequences, at the
# positions each model predicts (x1..x8 for a transformer, x2..x8 for a recurrent net, which has no BOS to
# predict x1 from).

# %%
plots.gap_compare({lab: run.metrics() for lab, run in all_runs.items()});

# %%
for lab, run in all_runs.items():
    m = train.loss_milestones(run.metrics(), plateau=math.log(run.process.vocab_size))
    within = "never" if m["first_within_0.02"] is None else f"from step {m['first_within_0.02']}"
    print(f"{lab}: gap {m['final_gap']:+.4f} nats at step {m['final_step']}; within 0.02 nats: {within}")

# %% [markdown]
# ## The analyses of notebook 03 on both runs
#
# At every checkpoint: PCA of the activations at the site, and the held-out regression of every factor's
# belief on them. At init, at the collapse (the smallest dims@95) and at the end: vary-one subspaces of each
# factor, and the same for freshly initialised networks of each architecture (the baseline band). Each
# analysis is cached in its run's folder.

# %%
process = all_runs[label].process
kinds = list(process.kinds)
names = process.names
results = {lab: run_analysis.analyze(run, acfg) for lab, run in all_runs.items()}
refs = probing.reference_curves(process, acfg, cfg.data.seq_len)
joint_dim, factored_dim = products.dimension_counts(process.state_dims)
print(f"belief dimension of this process: factored {factored_dim}, joint {joint_dim}; dims@95 of the true "
      f"beliefs on the probe sequences: factored {refs['factored_dims95']}, joint {refs['joint_dims95']}")

# %% [markdown]
# ## Dimension over training
#
# First this run alone: the cumulative explained variance of its activations at each checkpoint (dark: early,
# bright: late), against the same curve for the true beliefs concatenated (dashed, a factored representation)
# and for their outer product (dotted, a joint one).

# %%
plots.cev_over_training(results[label].trajectory, refs["factored_cev"], refs["joint_cev"]);

# %% [markdown]
# Then dims@95 of both runs against the factored and joint counts (for a recurrent net the curve is the
# dimension of its top hidden state, not of a residual stream).

# %%
plots.dims_compare({lab: r.trajectory for lab, r in results.items()}, factored_dim, joint_dim);

# %%
for lab, r in results.items():
    s = r.summary
    print(f"{lab}: dims@95 at init {r.trajectory[r.stages['init']].dims95}, minimum "
          f"{s['min_dims95']} at step {s['min_dims95_step']}, final {s['final_dims95']} at step {s['final_step']} "
          f"(factored {factored_dim}, joint {joint_dim})")

# %% [markdown]
# ## Each factor's belief is linearly decodable
#
# Held-out R² of the regression per factor, over training, one panel per run.

# %%
plots.per_factor_compare({lab: r.trajectory for lab, r in results.items()}, names, key="r2", kinds=kinds);

# %% [markdown]
# ## Projections redraw each factor's geometry
#
# As in notebook 03, for this run: top, each factor's true beliefs on held-out sequences; bottom, the final
# activations projected on that factor's top-2 vary-one directions, coloured by the true belief.

# %%
final = results[label].final
data = probing.few_probe_data(process, acfg, cfg.data.seq_len)
model = all_runs[label].load_model(final)
site = acfg.site_for(model)
probed = probing.probe(model, process, data, site)
projections = [analysis.project(probed.flat_acts, V, k=2) for V in results[label].vary[final]["directions"]]
plots.projection_grid(probed.flat_beliefs, projections, kinds, names);

# %% [markdown]
# ## Are the factor subspaces orthogonal?
#
# Mean pairwise overlap ||V_i[:k] V_j[:k]^T||²_F / k of the factors' vary-one subspaces at the end of
# training (0: orthogonal, 1: the same subspace), each run over the band its own architecture gives at random
# initialisation (5th-95th percentile).

# %%
plots.overlap_compare(
    {lab: r.vary[r.final]["mean_overlap"] for lab, r in results.items()},
    {lab: analysis.baseline_band(r.random_overlaps) for lab, r in results.items()},
);

# %% [markdown]
# ## Side by side
#
# Paper (one seed, the authors' budget of 500k steps x 25,000 sequences), final dims@95: canonical
# transformer 10-11, transformer d_model 480 and n_ctx 101 about 10-12, LSTM-32 about 14-17, RNN-256 still
# about 35 at 30k steps; the other variants are not reported in the text, and the GRU is not in the paper.
# This run's summary is also saved in its run folder (`summaries/05_architectures-<settings>.json`).

# %%
def column(lab: str) -> dict[str, object]:
    s, c = results[lab].summary, configs[lab]
    return {
        "parameters": f"{models.n_params(all_runs[lab].load_model()):,}",
        "training steps": s["final_step"],
        "final dims@95": s["final_dims95"],
        "min dims@95 (step)": f"{s['min_dims95']} ({s['min_dims95_step']})",
        **{f"held-out R², {n}": f"{v:.3f}" for n, v in s["r2"].items()},
        "union dims@95 (vary-one)": s["union_dims95"],
        "mean overlap k=1, 2": f"{s['overlap_k1']:.1e}, {s['overlap_k2']:.1e}",
        "random-init overlap k=1, 2": f"{s['random_init_overlap_k1']:.2f}, {s['random_init_overlap_k2']:.2f}",
        "gap to optimal loss (nats)": f"{s['optimal_loss_gap']:.4f}",
        "paper: final dims@95": paper.architecture_final_dims95(c).value,
    }


comparison = pd.DataFrame({lab: column(lab) for lab in results})
comparison.index.name = f"quantity (factored {factored_dim}, joint {joint_dim})"
print(comparison.to_string())
if label != canonical_label:  # the canonical run's summary is notebook 03's
    summary = {"label": label, "site": site, **results[label].summary}
    saved = runs.save_summary(all_runs[label], "05_architectures", summary, settings=dataclasses.asdict(acfg))
    print(f"saved {runs.relative(saved)}")

# %%
s, c = results[label].summary, results[canonical_label].summary
nearer = verdicts.nearer_count(s["final_dims95"], factored_dim, joint_dim)
print(f"{label}: final dims@95 {s['final_dims95']}, nearer the {nearer.nearer} count (factored {factored_dim}, joint "
      f"{joint_dim}); mean overlap at k = 1 {s['overlap_k1']:.2g} against {s['random_init_overlap_k1']:.2g} at "
      "random init.")
if label != canonical_label:
    print(f"canonical transformer: final dims@95 {c['final_dims95']}; mean overlap at k = 1 {c['overlap_k1']:.2g} "
          f"against {c['random_init_overlap_k1']:.2g} at random init.")
