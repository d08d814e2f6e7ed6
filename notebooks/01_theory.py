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
# # 01 · Theory: beliefs, factors, and what a factored representation costs
#
# This notebook sets up everything the experiments measure against, with exact math where it exists.
#
# **Generalized hidden Markov models.** A GHMM is a set of matrices `T[x]`, one per token `x`, with
# `T[x][i, j]` the weight of moving from state `i` to state `j` while emitting `x`. The net matrix
# `T = sum_x T[x]` has eigenvalue 1 with right eigenvector `tau` and left eigenvector `pi` (`pi @ tau = 1`).
# An observer who has seen a prefix holds a **belief** (predictive vector) `eta`, starting at `pi`:
#
# `P(x | eta) = eta @ T[x] @ tau`, and after seeing `x`: `eta' = eta @ T[x] / P(x | eta)`.
#
# For an ordinary HMM the matrices are non-negative, `tau` is all ones and `eta` is a probability vector over
# hidden states. A GHMM may have negative entries; only the probabilities must be valid.
# The belief is everything an ideal predictor needs to know about the past: the paper's question is *how* a
# transformer stores it.

# %% tags=["parameters"]
profile: str = ""  # smoke | laptop | paper (sets Monte-Carlo sample sizes); "": $FACTORED_PROFILE or laptop
seed: int = 0

# %%
from factored import config

config.check_parameters(globals())  # an unknown, mistyped or out-of-range parameter stops here, before any work
profile = config.resolve_profile(profile)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from factored import ghmm, plots, processes, products, sampling, theory

n_mc = config.profile_record(profile).mc_samples_curves  # Monte-Carlo contexts per point of the eps curves
np.set_printoptions(precision=5, suppress=True)

# %% [markdown]
# ## The two kinds of factor
#
# **Mess3(x, a)** is a 3-state HMM with 3 tokens: stay with probability `1 - 2x`, jump to each other state
# with probability `x`, emit the destination's own token with probability `a`. The paper uses x = 0.15,
# a = 0.6. Its stationary belief is uniform, and one token already moves the belief towards that token's state.

# %%
# NBVAL_CHECK_OUTPUT
m3 = processes.mess3(0.15, 0.6)
print("T[0] =\n", m3.T[0])
print("pi =", m3.pi, " tau =", m3.tau)
print("P(x | pi)        =", ghmm.next_token_probs(m3, m3.pi))
eta = ghmm.update(m3, m3.pi, 0)
print("belief after 0   =", eta)
print("P(x | after 0)   =", ghmm.next_token_probs(m3, eta))

# %% [markdown]
# **The Bloch walk** (the authors' `tom_quantum(alpha, beta)`) is a 3-dimensional GHMM with 4 tokens whose
# matrices have negative entries. Its state coordinates are (trace, Bloch x, Bloch z) of a qubit: it is a
# measurement walk on a qubit, and its beliefs fill a disk. `tau = [3, 0, 0]` (the authors' scaling), so
# every belief has first coordinate 1/3.

# %%
# NBVAL_CHECK_OUTPUT
bw = processes.bloch_walk(1.0, 3.0)
print("T[0] =\n", bw.T[0])
print("net T = diag", np.diag(bw.T.sum(0)), " pi =", bw.pi, " tau =", bw.tau)
eta = ghmm.update(bw, bw.pi, 0)
print("belief after 0 =", eta, " P(x | after 0) =", ghmm.next_token_probs(bw, eta))

# %% [markdown]
# ## Belief geometry
#
# Sampling many sequences and collecting every belief along them draws each factor's belief geometry:
# Mess3 beliefs form a fractal inside the probability triangle, Bloch-walk beliefs fill the disk.
# Colours encode the belief itself (RGB = belief for Mess3; angle and radius for the disk), and the same
# colouring is used in notebook 03, where these pictures reappear inside the network's activations.

# %%
geometry = {}
for name, g, kind in (("Mess3(0.15, 0.6)", m3, "simplex"), ("Bloch walk(1, 3)", bw, "bloch")):
    _, beliefs = sampling.sample(products.independent([g]), 2_000, 12, seed=seed)
    geometry[name] = (beliefs[0][:, 1:].reshape(-1, 3).numpy().astype(np.float64), kind)

fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
for ax, (name, (b, kind)) in zip(axes, geometry.items(), strict=True):
    plots.belief_geometry(b, kind, ax=ax, title=name, s=0.6)

# %% [markdown]
# ## Five factors, conditionally independent
#
# The paper's data multiply five factors, three Mess3 and two Bloch walks, into one process with
# 3·3·3·4·4 = 432 joint tokens (factor 0 the most significant digit). Because the factors evolve independently,
# the belief about the joint hidden state is the Kronecker product of the factor beliefs: **conditional
# independence** given the past. We check it against the explicit 243-state product GHMM, filtering the same
# sequences in both.

# %%
process = products.paper_process()
joint = products.joint_ghmm(process)
tokens, beliefs = sampling.sample(process, 64, 8, seed=seed)
eta = np.broadcast_to(joint.pi, (64, joint.n_states)).copy()
errors = []
for t in range(8):
    eta = ghmm.update(joint, eta, tokens[:, t].numpy())
    product = products.joint_belief([b[:, t + 1].double().numpy() for b in beliefs])
    errors.append(np.abs(eta - product).max())
print(f"max |joint belief - Kronecker product of factor beliefs| = {max(errors):.2e} "
      f"(float32 sampler beliefs vs float64 filtering)")

# %%
# NBVAL_CHECK_OUTPUT
print("joint tokens:", process.vocab_size, " BOS token:", process.bos_token, " joint states:", joint.n_states)
print("Kronecker product == joint belief (to 1e-5):", max(errors) < 1e-5)

# %% [markdown]
# ## Joint vs factored dimension
#
# A joint representation needs one coordinate per joint state (less one, for normalisation): exponential in
# the number of factors N. A factored one needs each factor's belief dimension (less one) added up: linear.
# For the paper's five factors that is **242 vs 10**.

# %%
# NBVAL_CHECK_OUTPUT
n = np.arange(1, 9)
counts = [products.dimension_counts([3] * k) for k in n]
table = pd.DataFrame({"factors N": n, "joint": [c[0] for c in counts], "factored": [c[1] for c in counts]})
print(table.to_string(index=False))
print("paper process (joint, factored):", products.dimension_counts(process.state_dims))

# %%
plots.dimension_counts(n, table["joint"].to_numpy(), table["factored"].to_numpy());

# %% [markdown]
# ## The exact optimal loss
#
# With independent factors the joint next-token law is the product of the factor laws, so the Bayes-optimal
# loss (the entropy of the next token given the past) is the sum of the factors' own. Each factor's is exact
# by enumerating its prefixes (3^7 and 4^7 of them at most). This is the floor every trained model is
# measured against: **5.92558 nats** averaged over the 8 positions.

# %%
# NBVAL_CHECK_OUTPUT
optimal, _ = theory.optimal_loss(process, 8)
print("per position:", " ".join(f"{v:.5f}" for v in optimal))
print(f"mean: {optimal.mean():.5f} nats;  ln(432) = {np.log(432):.5f}")

# %%
per_factor = {f"F{i} {'Mess3' if g.n_tokens == 3 else 'Bloch'}": ghmm.position_entropies(g, 8)
              for i, g in enumerate(process.factors)}
plots.per_position(per_factor, title="Per-factor optimal loss (they add up to the total)");

# %% [markdown]
# ## The fidelity cost of factoring
#
# When factors are *not* conditionally independent, a predictor that keeps one separate prediction per factor
# and multiplies them loses something. The best such predictor uses the marginals of the true next-token law,
# and its extra loss per token is the KL divergence from the true law to the product of its marginals (the
# total correlation of the next-token law), averaged over contexts. It is exactly 0 for independent factors.
#
# * **Noise** (with probability eps the joint token is replaced by a uniform one) mixes the product law with a
#   uniform law: `(1-eps)·prod_n p_n + eps/432`, no longer a product.
# * **Chain** (hidden dependencies): factor i's parameters are picked by factor i-1's token at the same step.
#
# Both are estimated by Monte Carlo over contexts drawn from the process (error bars: one standard error).

# %%
eps_grid = np.array([0.0, 0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5])
cost, cost_se = [], []
for eps in eps_grid:
    pp, se = theory.fidelity_cost(products.paper_process(noise=float(eps)), 8, n_samples=n_mc, seed=seed)
    cost.append(pp.mean())
    cost_se.append(np.sqrt((se**2).mean() / len(se)))  # positions are averaged; errors taken as independent
chain_pp, chain_se = theory.fidelity_cost(products.paper_process("chain"), 8, n_samples=n_mc, seed=seed)
print(pd.DataFrame({"eps": eps_grid, "fidelity cost (nats/token)": cost, "std err": cost_se}).to_string(index=False))
print(f"chain: {chain_pp.mean():.5f} ± {np.sqrt((chain_se**2).mean() / len(chain_se)):.5f} nats/token")

# %%
plots.fidelity_cost(eps_grid, np.array(cost), np.array(cost_se), float(chain_pp.mean()),
                    float(np.sqrt((chain_se**2).mean() / len(chain_se))));

# %% [markdown]
# The cost grows with eps from zero, and the chain's dependencies cost a fixed amount per token: in both
# cases the factored representation is lossy, and the experiments of notebooks 04 and 06 ask whether a
# network still prefers it.
