"""The theory of a factored process: the Bayes-optimal loss per position and the fidelity cost of factoring
(the total correlation of the next-token law), exact where enumeration allows, else Monte Carlo (float64);
under noise, what a factored readout loses, where, and which joint features would recover it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from factored.ghmm import GHMM, position_entropies
from factored.processes import bloch_walk, mess3
from factored.products import FactoredProcess, independent
from factored.sampling import next_token_law, sample_exact


def total_correlation(process: FactoredProcess, law: torch.Tensor) -> torch.Tensor:
    """KL(law || product of its per-factor marginals), in nats: law [..., V] -> [...].

    The fidelity cost of factoring at one context: the extra loss of the best factor-wise predictor. Computed as
    the marginals' entropies minus the law's (the KL's log of the product splits into one sum per factor, each
    over that factor's marginal): one pass over the joint law instead of a log-ratio at every token.
    """
    lead = law.shape[:-1]
    Xs = process.factor_vocab_sizes
    j = law.reshape(-1, *Xs)
    N = len(Xs)
    joint_entropy = -torch.special.xlogy(j, j).reshape(j.shape[0], -1).sum(-1)
    marginal_entropy = torch.zeros((), dtype=law.dtype, device=law.device)
    for n in range(N):
        marg = j.sum(dim=tuple(1 + m for m in range(N) if m != n))  # [M, X_n]
        marginal_entropy = marginal_entropy - torch.special.xlogy(marg, marg).sum(-1)
    # KL >= 0: clamp the last-ulp round-off of (near-)product laws.
    return (marginal_entropy - joint_entropy).clamp_min(0.0).reshape(lead)


def _entropy(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    """Entropy of the next-token law at beliefs (list[N] of [M, S_n]) -> [M]."""
    if process.law_is_product and process.n_factors > 1:
        # A sum over factors: skip the joint law.
        return sum(_entropy(independent([g]), [b]) for g, b in zip(process.factors, beliefs, strict=True))
    law = next_token_law(process, beliefs)
    return -torch.special.xlogy(law, law).sum(-1)


def _total_correlation(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    return total_correlation(process, next_token_law(process, beliefs))


def _monte_carlo(
    process: FactoredProcess,
    seq_len: int,
    stat: Callable[[FactoredProcess, list[torch.Tensor]], torch.Tensor],
    n_samples: int,
    seed: int,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over n_samples sampled contexts of stat(process, beliefs at position t):
    ([L], [L]) float64. The contexts come from `sample`, their beliefs in float64 (`sample_exact`)."""
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    gen = torch.Generator().manual_seed(int(seed))
    values = []
    for start in range(0, n_samples, chunk):
        b = min(chunk, n_samples - start)
        _, beliefs = sample_exact(process, b, seq_len, generator=gen)
        per_pos = [stat(process, [x[:, t] for x in beliefs]) for t in range(seq_len)]
        values.append(torch.stack(per_pos, dim=1).numpy())
    v = np.concatenate(values)  # [n_samples, L]
    return v.mean(0), v.std(0, ddof=1) / np.sqrt(len(v))


def _exact_or_monte_carlo(
    process: FactoredProcess,
    seq_len: int,
    exact: bool | None,
    exact_value: Callable[[], np.ndarray],
    stat: Callable,
    n_samples: int,
    seed: int,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The exact value for independent noiseless processes (unless exact=False), else the Monte-Carlo mean of
    stat over sampled contexts; exact=True on any other process is an error. Exact enumeration that would need
    too many prefixes falls back to Monte Carlo unless exact=True."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    can_exact = process.law_is_product
    if exact and not can_exact:
        raise ValueError("exact=True needs an independent process with noise 0")
    if can_exact and exact is not False:
        try:
            return exact_value(), np.zeros(seq_len)
        except ValueError:
            if exact:
                raise
    return _monte_carlo(process, seq_len, stat, n_samples, seed, chunk)


def optimal_loss(
    process: FactoredProcess,
    seq_len: int,
    *,
    n_samples: int = 20_000,
    seed: int = 0,
    exact: bool | None = None,
    chunk: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Bayes-optimal cross-entropy H(X_t | X_<t) in nats per position: (per_position [L], stderr [L]).

    exact (default when possible): independent noiseless processes, by enumerating every prefix of each
    factor (numpy float64) and summing over factors; stderr is 0. Otherwise Monte Carlo over n_samples
    sampled contexts of the entropy of the true next-token law (`next_token_law`, float64): its mean is
    E[-log P(x_t | past)] with less variance than averaging -log P of the sampled token. Under noise the law
    is computed from the authors' beliefs, i.e. it is the law of the data `sample` produces.
    """

    def exact_value() -> np.ndarray:
        return sum(position_entropies(g, seq_len) for g in process.factors)

    return _exact_or_monte_carlo(process, seq_len, exact, exact_value, _entropy, n_samples, seed, chunk)


def fidelity_cost(
    process: FactoredProcess,
    seq_len: int,
    *,
    n_samples: int = 20_000,
    seed: int = 0,
    exact: bool | None = None,
    chunk: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Fidelity cost of factoring per position: E_context[KL(true law || product of its marginals)] in nats.

    Returns (per_position [L], stderr [L]). Exactly 0 for independent noiseless processes (unless
    exact=False forces the Monte-Carlo estimate); otherwise Monte Carlo over n_samples contexts (float64).
    Under noise the marginals are (1-eps) p_n + eps/V_n; for the chain they come from summing the chain law.
    """
    return _exact_or_monte_carlo(
        process, seq_len, exact, lambda: np.zeros(seq_len), _total_correlation, n_samples, seed, chunk
    )


# ------------------------------------------------------------------------------------------------------------------
# Noise: what a factored readout loses, and what would recover it.
#
# Under joint-token noise eps the law of the next joint token t = (t_1..t_N) given the factor beliefs is
#   q(t) = (1-eps) P(t) + eps/V,   P(t) = prod_n p_n(t_n | eta_n),
# so  log q(t) = logaddexp(log(1-eps) + sum_n log p_n(t_n), log(eps/V)): the log of a sum, not a sum over factors.
# The best factored readout (a product of per-factor laws) is the product of q's marginals,
#   m(t) = prod_n m_n(t_n),   m_n = (1-eps) p_n + eps/V_n,
# and its extra loss per token is the fidelity cost KL(q || m). One scalar joint feature per token,
#   c(t) = log q(t) - log(1-eps) - sum_n log p_n(t_n) = log(1 + eps / (V (1-eps) P(t))),
# added to factor-wise logits, gives log q exactly. Everything below is for independent factors.


def _check_independent(process: FactoredProcess) -> None:
    if process.structure.parent_picks_variant:
        raise ValueError(f"needs an independent process, got structure {process.structure.name!r}")


def factor_laws(process: FactoredProcess, beliefs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each factor's clean next-sub-token law p_n(. | eta_n) = eta_n @ T_n[x] @ tau_n:
    list[N] of [..., S_n] -> list[N] of [..., X_n] (independent processes; the noise is not in them)."""
    _check_independent(process)
    out = []
    for g, b in zip(process.factors, beliefs, strict=True):
        emissions = torch.as_tensor(g.emissions.T, dtype=b.dtype, device=b.device)  # [S, X]
        out.append((b @ emissions).clamp_min(0.0))  # GHMM round-off
    return out


def mixture_parts(process: FactoredProcess, beliefs: list[torch.Tensor]) -> tuple[list[torch.Tensor], float]:
    """The noisy law's decomposition q = w prod_n p_n + (1 - w) / V:
    (per-factor laws list[N] of [..., X_n], w = 1 - eps)."""
    return factor_laws(process, beliefs), 1.0 - process.noise


def joint_sum(process: FactoredProcess, terms: list[torch.Tensor]) -> torch.Tensor:
    """sum_n terms[n][..., t_n] at every joint token t (factor 0 most significant): list[N] [..., X_n] -> [..., V]."""
    total = terms[0]
    for term in terms[1:]:
        total = (total[..., :, None] + term[..., None, :]).flatten(-2)
    return total


def log_product(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    """log P(t) = sum_n log p_n(t_n | eta_n), the clean product law's log-probability:
    list[N] [..., S_n] -> [..., V]."""
    return joint_sum(process, [torch.log(p) for p in factor_laws(process, beliefs)])


def noisy_log_law(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    """log q(t) = logaddexp(log(1-eps) + log P(t), log(eps/V)): list[N] [..., S_n] -> [..., V].

    Equal to log(next_token_law) but exact in the tails; the two terms are the clean prediction and the noise.
    """
    eps, V = process.noise, process.vocab_size
    lp = log_product(process, beliefs)
    clean = lp + np.log1p(-eps) if eps < 1 else torch.full_like(lp, -np.inf)
    return torch.logaddexp(clean, torch.full_like(lp, np.log(eps / V) if eps > 0 else -np.inf))


def factored_readout(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    """The best factored readout: the product of the noisy law's marginals m_n = (1-eps) p_n + eps/V_n.

    list[N] [..., S_n] -> [..., V]. Among products of per-factor laws it minimises KL(q || .), at KL(q || m)."""
    eps = process.noise
    marginals = [(1 - eps) * p + eps / p.shape[-1] for p in factor_laws(process, beliefs)]
    return torch.exp(joint_sum(process, [torch.log(m) for m in marginals]))


def joint_correction(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    """The one joint feature noise adds to the log-law, c(t) = log(1 + eps / (V (1-eps) P(t))) >= 0:
    list[N] [..., S_n] -> [..., V]. log q = log(1-eps) + sum_n log p_n(t_n) + c(t) exactly; c is a function of
    the product P(t) alone, largest at the joint tokens the clean law thinks unlikely (+inf at eps = 1)."""
    eps, V = process.noise, process.vocab_size
    if eps >= 1:
        return torch.full_like(log_product(process, beliefs), np.inf)
    # log(eps/V) - log(1-eps) - log P, through softplus for accuracy where P is large or tiny
    return torch.nn.functional.softplus(np.log(eps / V) - np.log1p(-eps) - log_product(process, beliefs))


def kl(law: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """KL(law || readout) in nats over the last axis: [..., V], [..., V] -> [...] (0 log 0 = 0, clamped >= 0)."""
    terms = torch.special.xlogy(law, law) - torch.special.xlogy(law, readout)
    return terms.sum(-1).clamp_min(0.0)


def peakedness(law: torch.Tensor) -> torch.Tensor:
    """How far a law is from uniform: KL(law || uniform) = log V - H(law), in nats: [..., V] -> [...]."""
    return np.log(law.shape[-1]) + torch.special.xlogy(law, law).sum(-1)


def cost_with_joint_tokens(law: torch.Tensor, readout: torch.Tensor, k: int) -> torch.Tensor:
    """The loss a factored readout still pays after k free joint-token features: [..., V] x2 -> [...] nats.

    The readout gets one free logit per joint token in S = the k tokens of highest law probability (the most
    peaked joint tokens; under noise the same as P's), readout fixed elsewhere: r_w ~ readout * exp(w 1[t in S]).
    The best w sets r = law on S and r = readout * (1 - law(S)) / (1 - readout(S)) off it, so the cost is
        KL = sum_{t not in S} law log(law / readout) - (1 - law(S)) log((1 - law(S)) / (1 - readout(S))).
    k = 0: KL(law || readout); k >= V - 1: 0. An upper bound on the cost left when the factor part is refit too.
    """
    V = law.shape[-1]
    if k <= 0:
        return kl(law, readout)
    if k >= V - 1:
        return torch.zeros(law.shape[:-1], dtype=law.dtype, device=law.device)
    top = law.topk(k, dim=-1).indices
    in_s = torch.zeros_like(law, dtype=torch.bool).scatter_(-1, top, True)
    q_rest = torch.where(in_s, 0.0, law)
    terms = torch.special.xlogy(q_rest, q_rest) - torch.special.xlogy(q_rest, readout)
    q_out = q_rest.sum(-1)  # 1 - law(S)
    r_out = torch.where(in_s, 0.0, readout).sum(-1)  # 1 - readout(S)
    return (terms.sum(-1) - torch.special.xlogy(q_out, q_out) + torch.special.xlogy(q_out, r_out)).clamp_min(0.0)


def noise_samples(
    process: FactoredProcess,
    seq_len: int,
    *,
    n_samples: int = 4_000,
    seed: int = 0,
    ks: tuple[int, ...] = (),
    chunk: int = 2_000,
) -> dict[str, np.ndarray]:
    """Per-context noise statistics over n_samples sampled sequences, each [n_samples, L] float64:

    entropy (H of q: the optimal loss), cost (KL(q || m): the fidelity cost), peak (KL(P || uniform) of the clean
    product law: how peaked it is), and cost_k<k> (`cost_with_joint_tokens` with k joint tokens) for k in ks.
    Contexts come from `sample`, their beliefs in float64 (`sample_exact`) (as in `fidelity_cost`)."""
    _check_independent(process)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    gen = torch.Generator().manual_seed(int(seed))
    out: dict[str, list] = {}
    for start in range(0, n_samples, chunk):
        _, beliefs = sample_exact(process, min(chunk, n_samples - start), seq_len, generator=gen)
        beliefs = [b[:, :seq_len] for b in beliefs]  # [B, L, S_n]: the belief before each token
        law = torch.exp(noisy_log_law(process, beliefs))
        readout = factored_readout(process, beliefs)
        stats = {
            "entropy": -torch.special.xlogy(law, law).sum(-1),
            "cost": kl(law, readout),
            "peak": peakedness(torch.exp(log_product(process, beliefs))),
        }
        stats |= {f"cost_k{k}": cost_with_joint_tokens(law, readout, k) for k in ks}
        for name, value in stats.items():
            out.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(v) for name, v in out.items()}


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    """Mean over contexts and positions of [n_samples, L] values, and its standard error (contexts independent;
    the positions of one context share it, so the per-context position mean is the unit)."""
    per_context = values.mean(-1)
    return float(per_context.mean()), float(per_context.std(ddof=1) / np.sqrt(len(per_context)))


def cost_by_peak(cost: np.ndarray, peak: np.ndarray, n_bins: int = 5) -> pd.DataFrame:
    """Where the fidelity cost sits: contexts (cost, peak [...] each) binned into quantiles of the product law's
    peakedness. One row per bin: peak range (nats), mean peak, mean cost, and the bin's share of the total cost."""
    c, p = np.ravel(cost), np.ravel(peak)
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    rows = []
    for i in range(n_bins):
        sel = which == i
        rows.append(
            {
                "peak from": edges[i],
                "peak to": edges[i + 1],
                "mean peak": p[sel].mean(),
                "mean cost": c[sel].mean(),
                "share of cost": c[sel].sum() / c.sum() if c.sum() > 0 else 0.0,
            }
        )
    return pd.DataFrame(rows)


def logit_dims(logits: torch.Tensor, threshold: float = 0.95) -> int:
    """Principal components that explain `threshold` of the variance of logits [M, V] over contexts, each row
    centred first (a softmax ignores a shift): the linear dimension a readout W_U h needs from its residual h."""
    x = logits - logits.mean(-1, keepdim=True)
    x = x - x.mean(0)
    s = torch.linalg.svdvals(x) ** 2
    return int((torch.cumsum(s, 0) / s.sum() < threshold).sum().item()) + 1


def optimal_logit_dims(
    process: FactoredProcess,
    seq_len: int,
    *,
    n_samples: int = 2_000,
    seed: int = 0,
    thresholds: tuple[float, ...] = (0.95, 0.99),
) -> dict[float, int]:
    """`logit_dims` of the optimal logits log q over the contexts of n_samples sequences (positions 1..L-1; position
    0 has one context), per threshold. Factor-wise logits span at most sum_n (X_n - 1) dimensions; noise adds
    the joint correction's, which a network must hold in its residual stream to predict optimally."""
    _, beliefs = sample_exact(process, n_samples, seq_len, seed=int(seed))
    beliefs = [b[:, 1:seq_len].reshape(-1, b.shape[-1]) for b in beliefs]  # [n_samples (L-1), S_n]
    logits = noisy_log_law(process, beliefs)
    return {th: logit_dims(logits, th) for th in thresholds}


def candidate_processes() -> dict[str, list[GHMM]]:
    """Independent products to plan an expansion experiment on: name -> factors. The paper's Mess3(0.15, 0.6)
    and Bloch walk(1, 3) for N = 1..5, the paper's five, and Mess3 with sharper emissions and slower states
    (whose laws are more peaked, which is where noise costs a factored readout most)."""
    m, b = mess3(0.15, 0.6), bloch_walk(1.0, 3.0)
    out: dict[str, list[GHMM]] = {f"{n} x Mess3(0.15, 0.6)": [m] * n for n in range(1, 6)}
    out |= {f"{n} x Bloch(1, 3)": [b] * n for n in (2, 3)}
    out["paper: 3 Mess3 + 2 Bloch"] = [m] * 3 + [b] * 2
    for x, a in ((0.05, 0.9), (0.05, 0.98)):
        out |= {f"{n} x Mess3({x:g}, {a:g})": [mess3(x, a)] * n for n in (2, 3)}
    return out


def expansion_table(
    candidates: dict[str, list[GHMM]],
    eps_grid: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5),
    seq_len: int = 8,
    *,
    n_samples: int = 2_000,
    seed: int = 0,
    gap: float = 0.01,
) -> pd.DataFrame:
    """Where an expansion could pay: one row per (candidate, eps) with N, V, the optimal loss H (nats/token),
    what the context tells at all (log V - H), the fidelity cost (± stderr), the cost as a share of log V - H,
    the cost left after one joint-token feature (k = 1), the linear dimension of factor-wise logits (at most
    sum_n (X_n - 1)) and of the optimal logits at 95% and 99% of their variance (`optimal_logit_dims`), and
    whether the cost reaches `gap` (nats/token: what a CPU-scale network typically has left to learn).
    Monte Carlo over n_samples contexts (`noise_samples`)."""
    rows = []
    for name, factors in candidates.items():
        for eps in eps_grid:
            process = independent(factors, noise=float(eps))
            s = noise_samples(process, seq_len, n_samples=n_samples, seed=seed, ks=(1,))
            entropy, _ = mean_and_stderr(s["entropy"])
            cost, cost_se = mean_and_stderr(s["cost"])
            info = np.log(process.vocab_size) - entropy
            dims = optimal_logit_dims(process, seq_len, n_samples=n_samples, seed=seed)
            rows.append(
                {
                    "process": name,
                    "N": process.n_factors,
                    "V": process.vocab_size,
                    "eps": float(eps),
                    "optimal loss": entropy,
                    "log V - H": info,
                    "fidelity cost": cost,
                    "stderr": cost_se,
                    "cost / (log V - H)": cost / info if info > 0 else np.nan,
                    "left at k=1": mean_and_stderr(s["cost_k1"])[0],
                    "factored logit dims": sum(x - 1 for x in process.factor_vocab_sizes),
                    "logit dims@95": dims[0.95],
                    "logit dims@99": dims[0.99],
                    f"cost >= {gap:g}": cost >= gap,
                }
            )
    return pd.DataFrame(rows)
