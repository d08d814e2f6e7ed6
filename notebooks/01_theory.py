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
profile: str = ""  # smoke | laptop | long | paper (sets Monte-Carlo sample sizes); "": $FACTORED_PROFILE or laptop
seed: int = 0

# %%
from factored import parameters, profiles

parameters.prologue(globals());  # checks, converts and resolves the parameters: a bad one stops here

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from factored import analysis, ghmm, plots, processes, products, sampling, theory

n_mc = profiles.profile_record(profile).mc_samples_curves  # Monte-Carlo contexts per point of the eps curves
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
    product = analysis.joint_belief([b[:, t + 1].double().numpy() for b in beliefs])
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
plots.dimension_count_curves(n, table["joint"].to_numpy(), table["factored"].to_numpy());

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
plots.fidelity_cost_curve(eps_grid, np.array(cost), np.array(cost_se), float(chain_pp.mean()),
                    float(np.sqrt((chain_se**2).mean() / len(chain_se))));

# %% [markdown]
# The cost grows with eps from zero, and the chain's dependencies cost a fixed amount per token: in both
# cases the factored representation is lossy, and the experiments of notebooks 04 and 06 ask whether a
# network still prefers it.

# %% [markdown]
# ## Noise: what a factored readout loses, and what would recover it
#
# Under noise each factor's belief is still updated with its clean matrices on the observed sub-token, so the
# factor beliefs remain everything the data let one know; what changes is the readout. With the clean factor
# laws `p_n(t_n | eta_n)` and their product `P(t) = prod_n p_n(t_n)`, the next joint token has the law
#
# `q(t) = (1 - eps) P(t) + eps / V`,  so  `log q(t) = logaddexp(log(1 - eps) + sum_n log p_n(t_n), log(eps / V))`:
#
# the log of a sum of two terms, not a sum of per-factor terms. The best **factored readout** (a product of
# per-factor laws) is the product of q's marginals, `m(t) = prod_n ((1 - eps) p_n(t_n) + eps / V_n)`, and the
# **fidelity cost** is its extra loss, `KL(q || m)` per context. A single **joint feature**,
#
# `c(t) = log q(t) - log(1 - eps) - sum_n log p_n(t_n) = log(1 + eps / (V (1 - eps) P(t)))`,
#
# added to factor-wise logits recovers q exactly. It is a function of the product probability alone, but one
# value per joint token: to produce it through a linear unembedding, the residual stream must span the
# dimensions of the optimal logits beyond the at most `sum_n (V_n - 1)` of factor-wise ones. That is an
# expansion a network could make, and the fidelity cost is what it would gain.
#
# First a check of the formulas against the sampler's own tokens: the mean of `-log q(x)` over sampled tokens
# must equal the mean entropy of q (q is the law of the data), and the mean of `log q(x) - log m(x)` the mean
# KL (the factored readout's excess loss), within their standard errors.

# %%
n_noise = min(n_mc, 20_000)  # contexts per noise estimate (capped: the joint tables are 432 wide)
peaked = [processes.mess3(0.05, 0.9)] * 3  # 27 joint tokens, sharper emissions, slower states
noise_cases = {"paper, eps 0.2": products.paper_process(noise=0.2),
               "3 x Mess3(0.05, 0.9), eps 0.2": products.independent(peaked, noise=0.2)}
rows = []
for name, proc in noise_cases.items():
    toks, bel = sampling.sample_exact(proc, n_noise // 4, 8, seed=seed)
    bel = [b[:, :8] for b in bel]  # the belief before each of the 8 tokens
    log_q = theory.noisy_log_law(proc, bel)
    log_m = torch.log(theory.factored_readout(proc, bel))
    q = log_q.exp()
    for what, sampled, formula in (
        ("loss -log q(x)", -log_q.gather(-1, toks[..., None]), -torch.special.xlogy(q, q).sum(-1)),
        ("excess log q(x) - log m(x)", (log_q - log_m).gather(-1, toks[..., None]), theory.kl(q, log_m.exp())),
    ):
        mc, mc_se = theory.mean_and_stderr(sampled.squeeze(-1).numpy())
        fm, fm_se = theory.mean_and_stderr(formula.numpy())
        rows.append({"process": name, "quantity": what, "formula": fm, "formula se": fm_se, "sampled tokens": mc,
                     "sampled se": mc_se, "|diff| / se": abs(mc - fm) / np.hypot(mc_se, fm_se)})
print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.6g}"))

# %% [markdown]
# ### The fidelity cost against eps, position by position
#
# The cost per position for the paper's process and for the peaked three-Mess3 process. At position 0 every
# sequence has the same context (the stationary beliefs), which are the least informative, so the product law
# is flattest there; the cost then grows as the beliefs sharpen along the sequence.

# %%
eps_noise = (0.05, 0.1, 0.2, 0.3, 0.5)
curves = {}
for name, factors in (("paper: 3 Mess3 + 2 Bloch", list(process.factors)), ("3 x Mess3(0.05, 0.9)", peaked)):
    curves[name] = {eps: theory.noise_samples(products.independent(factors, noise=eps), 8, n_samples=n_noise // 4,
                                              seed=seed, ks=(1, 10)) for eps in eps_noise}

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (name, by_eps) in zip(axes, curves.items(), strict=True):
    for eps, s in by_eps.items():
        se = s["cost"].std(0, ddof=1) / np.sqrt(len(s["cost"]))
        ax.errorbar(np.arange(8), s["cost"].mean(0), yerr=se, marker="o", ms=3, capsize=2, label=f"eps {eps:g}")
    ax.set(title=name, xlabel="position", ylabel="fidelity cost (nats/token)", yscale="log")
    ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ### Where the cost sits, and how much a few joint features buy back
#
# Contexts binned by how peaked the clean product law is (`KL(P || uniform)`, nats): the cost concentrates in
# the most peaked contexts, where the noise floor `eps / V` and the product differ most. Then the cost left
# when the factored readout gets a free logit for its k most likely joint tokens (k = 1, 10), next to the one
# joint feature `c(t)` (cost 0 by construction), and the linear dimension of the optimal logits.

# %%
for name, by_eps in curves.items():
    print(f"{name}, eps 0.5: cost by peakedness of the product law")
    print(theory.cost_by_peak(by_eps[0.5]["cost"], by_eps[0.5]["peak"]).to_string(index=False,
                                                                                  float_format=lambda v: f"{v:.3g}"))
recovery = []
for name, by_eps in curves.items():
    for eps, s in by_eps.items():
        cost = theory.mean_and_stderr(s["cost"])[0]
        recovery.append({"process": name, "eps": eps, "fidelity cost": cost,
                         "left, 1 joint token": theory.mean_and_stderr(s["cost_k1"])[0] / cost,
                         "left, 10 joint tokens": theory.mean_and_stderr(s["cost_k10"])[0] / cost,
                         "left, feature c(t)": 0.0})
print(pd.DataFrame(recovery).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
check_proc = products.independent(peaked, noise=0.5)
bel = [b[:, :8] for b in sampling.sample_exact(check_proc, 200, 8, seed=seed)[1]]
exact = torch.softmax(theory.log_product(check_proc, bel) + theory.joint_correction(check_proc, bel), -1)
print(f"factor-wise logits + c(t) vs the law: max |diff| = "
      f"{(exact - sampling.next_token_law(check_proc, bel)).abs().max():.1e}")

# %% [markdown]
# ### Where could an expansion pay? A planning table
#
# For products of the paper's factors (N = 1..5), the paper's process, and Mess3 with sharper emissions, at each
# eps: the optimal loss, what the context tells at all (`log V - H`), the fidelity cost (± se), the cost left
# after one joint-token feature, and the linear dimension of factor-wise logits (at most `sum_n (V_n - 1)`) next
# to that of the optimal logits. A CPU-scale network ends a few thousand steps with a held-out gap of
# 0.01-0.02 nats on the paper's process; an expansion can only show where the cost is comparable.

# %%
gap = 0.01  # nats/token: the order of what a CPU-scale network has left to learn (README: 0.019 at 5,000 steps)
n_plan = min(max(n_mc // 40, 200), 1_000)  # contexts per row (errors of a few %: enough to plan): 1,000 at laptop
plan = theory.expansion_table(theory.candidate_processes(), eps_noise, 8, n_samples=n_plan, seed=seed, gap=gap)
with pd.option_context("display.width", 250, "display.max_columns", 20):
    print(plan.to_string(index=False, float_format=lambda v: f"{v:.3g}"))

# %%
fig, ax = plt.subplots(figsize=(8, 4.5))
for name, rows_ in plan.groupby("process", sort=False):
    ax.plot(rows_["eps"], rows_["fidelity cost"].clip(lower=1e-9), marker="o", ms=3, label=name)
ax.axhline(gap, color="k", ls="--", lw=1, label=f"gap {gap:g} nats")
ax.set(xlabel="eps", ylabel="fidelity cost (nats/token)", yscale="log", title="Fidelity cost per token")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()

# %%
paper_rows = plan[plan["process"].str.startswith("paper")]
pays = plan[plan[f"cost >= {gap:g}"]]
worst = paper_rows.loc[paper_rows["fidelity cost"].idxmax()]
print(f"The paper's process: the fidelity cost is at most {worst['fidelity cost']:.2g} nats/token "
      f"(eps {worst['eps']:g}), {gap / worst['fidelity cost']:.0f}x below a {gap:g}-nat gap; its optimal logits "
      f"span {worst['logit dims@99']} dimensions at 99% of their variance, factor-wise ones at most "
      f"{worst['factored logit dims']}.")
print(f"Processes whose cost reaches {gap:g} nats/token: "
      + (", ".join(sorted({f"{p} (eps >= {pays[pays['process'] == p]['eps'].min():g})" for p in pays['process']}))
         or "none"))
