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
# # 02 · Training the canonical transformer
#
# We train the paper's GPT-2-style transformer (4 layers, d_model 120, 3 heads, d_mlp 480, context 9) by
# next-token prediction on the five-factor process: every step draws a fresh batch of sequences
# `[BOS, x1..x8]` from the exact sampler, the model reads `[BOS, x1..x7]` and predicts `[x1..x8]`.
# The optimizer is part of the run config. At the `paper` profile it is the authors': AdamW with
# reduce-on-plateau. At `laptop` it is Muon on the blocks' weight matrices and AdamW on the embeddings,
# unembedding, biases and LayerNorms (`optim.py`), with a short warmup and a cosine decay: on this budget Muon
# reaches the held-out gap AdamW reaches in about half the steps, and decodes every factor's belief (the study in
# `benchmarks/recipe.md`). Checkpoints follow the authors' log-spaced schedule (and every 250 steps at `laptop`).
#
# How the network starts is part of the run config (`init`, `embed_std`). The authors' transformers start from
# TransformerLens' N(0, 0.8/sqrt(d_model)) (`tl`, the `paper` profile). For the `laptop` budget of a 2-core CPU
# a time-to-result study (`benchmarks/recipe.md`) chose small weights N(0, 0.02) with unit-scale embeddings
# N(0, 1) (`init=gpt2, embed_std=1`): with small embeddings the three Mess3 factors are barely decoded at this
# budget, with large ones they are, and small weights elsewhere learn faster than PyTorch's defaults.
#
# The parameter `n_mess3` swaps the process for N independent Mess3 factors (3^N joint tokens), the process of
# the scaling-with-N sweep in notebook 07 (`params/sweeps/factors.yaml`); 0 keeps the paper's five factors.
#
# The run lives in `outputs/runs/<name>-<hash>/`. If it is already there this notebook loads it; if it was
# interrupted it resumes; otherwise it trains (with a progress bar).

# %% tags=["parameters"]
profile: str = ""  # smoke | laptop | long | paper; "": $FACTORED_PROFILE, else laptop
seed: int = 0
target: str = ""  # tokens (sampled next tokens) | law (their exact law); "": the profile's
steps: int = 0  # 0: the profile's training budget
d_model: int = 0  # 0: the profile's model size
n_layers: int = 0
n_heads: int = 0
d_mlp: int = 0
n_mess3: int = 0  # 0: the paper's five factors; N in [1, 8]: N independent Mess3 factors (3^N tokens)

# %%
from factored import config, parameters

parameters.prologue(globals())  # checks, converts and resolves the parameters: a bad one stops here
cfg = config.from_parameters(
    profile,
    seed=seed, target=target, steps=steps, d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_mlp=d_mlp,
    n_mess3=n_mess3,
)
print(cfg.describe())

# %%
import math

import numpy as np

from factored import plots, runs, train

# %% [markdown]
# ## Train (or load)

# %%
run = train.get_or_train(cfg)
metrics = run.metrics()
print(f"run folder: {runs.relative(run.dir)}\ncheckpoints: {len(run.steps)} (steps {run.steps[0]}..{run.steps[-1]})")

# %% [markdown]
# ## Loss against the exact optimum
#
# The dashed line is the Bayes-optimal loss of this process (mean over the 8 positions, computed exactly in
# notebook 01). The *gap* reported below compares the model with the optimal predictor on the same held-out
# sequences, which removes most of the sampling noise of a finite held-out batch.
#
# The dotted line is ln(432) (ln of the number of joint tokens): the loss of predicting every joint token as
# equally likely, which is what a freshly initialised network does, and also exactly the optimal loss at the
# first position (the stationary token law is uniform). Learning shows as the held-out loss leaving that plateau.

# %%
uses_bos = cfg.model.arch == "transformer"
optimum_pp = train.expected_optimal_loss(cfg, run.process, uses_bos)
optimum, plateau = float(optimum_pp.mean()), math.log(run.process.vocab_size)
milestones = train.loss_milestones(metrics, plateau)
plots.loss_curves(metrics, optimum, run.process.vocab_size);

# %%
m = milestones
print(f"plateau ln({run.process.vocab_size}) = {plateau:.5f} nats; held-out loss leaves it (by 0.01 nats) at step "
      f"{m['escape_step']}")
print(f"first within 0.02 nats of the optimum: step {m['first_within_0.02']}")
print(f"final (step {m['final_step']}): held-out loss {m['final_eval_loss']:.5f}; the optimal predictor's loss on")
print(f"the same held-out batch {m['final_eval_optimum']:.5f} (expected {optimum:.5f}); gap {m['final_gap']:+.5f} nats")
print(f"throughput: {np.median([r['tokens_per_s'] for r in metrics[1:]]):,.0f} tokens/s (median over logs)")

# %% [markdown]
# ## Per-position loss
#
# Later positions have more context, so the optimal loss falls with position. A network that tracks the
# beliefs of all five factors follows the optimal curve at every position.

# %%
plots.per_position(
    {"optimal": optimum_pp, f"model, step {metrics[-1]['step']}": np.array(metrics[-1]["eval_loss_per_position"])},
    title="Held-out loss per position",
);
