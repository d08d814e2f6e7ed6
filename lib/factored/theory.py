"""The theory of a factored process: the Bayes-optimal loss per position and the fidelity cost of factoring
(the total correlation of the next-token law), exact where enumeration allows, else Monte Carlo (float64).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from factored.ghmm import position_entropies
from factored.products import FactoredProcess, decode, independent
from factored.sampling import filter_beliefs, next_token_law, sample


def total_correlation(process: FactoredProcess, law: torch.Tensor) -> torch.Tensor:
    """KL(law || product of its per-factor marginals), in nats: law [..., V] -> [...].

    The fidelity cost of factoring at one context: the extra loss of the best factor-wise predictor.
    """
    lead = law.shape[:-1]
    Xs = process.factor_vocab_sizes
    j = law.reshape(-1, *Xs)
    N = len(Xs)
    log_q = torch.zeros((), dtype=law.dtype, device=law.device)
    for n in range(N):
        marg = j.sum(dim=tuple(1 + m for m in range(N) if m != n))  # [M, X_n]
        shape = [j.shape[0]] + [Xs[m] if m == n else 1 for m in range(N)]
        log_q = log_q + torch.log(marg).view(shape)
    # 0 log 0 = 0; the marginals are >= the law, so log q is finite wherever law > 0.
    terms = torch.where(j > 0, j * (torch.log(j.clamp_min(1e-300)) - log_q), torch.zeros_like(j))
    # KL >= 0: clamp the last-ulp round-off of (near-)product laws.
    return terms.reshape(j.shape[0], -1).sum(-1).clamp_min(0.0).reshape(lead)


def _entropy(process: FactoredProcess, beliefs: list[torch.Tensor]) -> torch.Tensor:
    """Entropy of the next-token law at beliefs (list[N] of [M, S_n]) -> [M]."""
    if process.structure == "independent" and process.noise == 0 and process.n_factors > 1:
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
    ([L], [L]) float64. The contexts come from `sample`, their beliefs from a float64 `filter_beliefs`."""
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    gen = torch.Generator().manual_seed(int(seed))
    values = []
    for start in range(0, n_samples, chunk):
        b = min(chunk, n_samples - start)
        tokens, _ = sample(process, b, seq_len, generator=gen)
        beliefs = filter_beliefs(process, decode(process, tokens), dtype=torch.float64)
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
    can_exact = process.structure == "independent" and process.noise == 0
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
