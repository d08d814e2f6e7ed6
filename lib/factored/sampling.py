"""Batched torch sampling of a factored process's tokens with every factor's belief, belief filtering along
given sequences, and the true next-token law given the beliefs.

The sampler draws each clean sub-token from the belief it carries (there is no hidden state), so
`next_token_law` is exactly the law of the data `sample` produces given the observed past.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from factored.products import FactoredProcess, decode, encode

# ------------------------------------------------------------------------------------- torch belief engine
# All factors are stacked into one tensor each (padded with zeros to the largest state count S and vocabulary
# X; padded tokens get probability 0 and padded states weight 0), so that one position costs a fixed handful
# of batched torch ops whatever the number of factors: the batch is large, the matrices tiny, and per-op
# overhead is what limits throughput on a CPU.


# float32: plenty for beliefs renormalised every step; ~1.3x faster than float64 on CPU, and MPS-safe.
COMPUTE_DTYPE = torch.float32


@dataclass(frozen=True)
class _Tables:
    """Stacked per-factor tensors on one device (V: variants, X: tokens, S: states, all padded to the max).

    W: [N, S, 2 V X], two column blocks so that one batched matmul ``eta @ W`` gives, for every variant v
    and token x (k = v X + x), at column k the CDF  sum_{x' <= x} eta @ T_v[x'] @ tau  (for inverse-CDF
    draws) and at column VX + k the law P(x | eta) = eta @ T_v[x] @ tau (the normaliser of the update).
    T: [N V X, S S], row (n V + v) X + x = T_{n,v}[x] flattened. E: [N, S, VX] the law block alone.
    tau, pi: [N, S] (pi of variant 0); top: [N, 1] the last real token of each factor; X, S, V: padded sizes.
    """

    W: torch.Tensor
    T: torch.Tensor
    E: torch.Tensor
    tau: torch.Tensor
    pi: torch.Tensor
    top: torch.Tensor
    X: int
    S: int
    V: int


def _tables(process: FactoredProcess, device: torch.device, dtype: torch.dtype) -> _Tables:
    N = process.n_factors
    V = max(len(vs) for vs in process.variants)
    X, S = max(process.factor_vocab_sizes), max(process.state_dims)
    E, T = np.zeros((N, S, V, X)), np.zeros((N, V, X, S, S))
    tau, pi = np.zeros((N, S)), np.zeros((N, S))
    for n, vs in enumerate(process.variants):
        Xn, Sn = vs[0].n_tokens, vs[0].n_states
        for v, g in enumerate(vs):
            E[n, :Sn, v, :Xn] = g.emissions.T
            T[n, v, :Xn, :Sn, :Sn] = g.T
        tau[n, :Sn], pi[n, :Sn] = vs[0].tau, vs[0].pi
    W = np.concatenate([E.cumsum(-1).reshape(N, S, -1), E.reshape(N, S, -1)], axis=-1)

    def t(a: np.ndarray, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.tensor(a, dtype=dt, device=device)

    return _Tables(
        W=t(W),
        T=t(T.reshape(N * V * X, S * S)),
        E=t(E.reshape(N, S, V * X)),
        tau=t(tau),
        pi=t(pi),
        top=t(np.array(process.factor_vocab_sizes)[:, None] - 1, torch.long),
        X=X,
        S=S,
        V=V,
    )


def _draw(cdf: torch.Tensor, u: torch.Tensor, X: int) -> torch.Tensor:
    """Inverse-CDF draws: cdf [..., K X] holds K blocks of X cumulated probabilities, u [...] in [0, 1)
    -> [..., K], the token x with cdf[x-1] <= u < cdf[x] in each block.

    `<=` skips zero-probability tokens, even when u == 0. Beliefs are renormalised every step, so a block
    sums to 1 up to round-off; a u above that total (or landing on padding) counts past the last real token,
    and callers clamp to it: a bias of order 1e-7, far below what any sample can resolve.
    """
    hits = cdf <= u[..., None]
    return hits.view(*hits.shape[:-1], -1, X).sum(-1)


def _advance(
    tab: _Tables,
    eta: torch.Tensor,
    out: torch.Tensor,
    variant: torch.Tensor | None,
    x: torch.Tensor,
    guard: bool,
) -> torch.Tensor:
    """Every factor's belief after its sub-token: eta' = eta @ T_v[x] / (eta @ T_v[x] @ tau).

    eta [N, B, S]; out = eta @ tab.W [N, B, 2VX]; x and variant [N, B] (variant None: all 0) -> [N, B, S].
    guard: a sub-token with probability <= 0 under its belief (possible only under noise, or in given
    sequences) leaves that belief unchanged, since the clean update is undefined there; the noiseless
    sampler never draws one.
    """
    N, B, S = eta.shape
    VX = tab.V * tab.X
    k = x if variant is None else variant * tab.X + x  # [N, B]
    norm = out.gather(2, (k + VX).unsqueeze(-1))  # P(x | eta), clamped below at 0
    rows = k + torch.arange(N, device=x.device)[:, None] * VX
    M = tab.T.index_select(0, rows.reshape(-1)).view(N, B, S, S)
    # eta @ M for B tiny matrices: an explicit sum over the few states beats batched matmul kernels.
    if S <= 8:
        new = eta[..., 0, None] * M[:, :, 0]
        for i in range(1, S):
            new = new + eta[..., i, None] * M[:, :, i]
    else:
        new = torch.matmul(eta.unsqueeze(-2), M).squeeze(-2)
    if not guard:
        return new / norm
    return torch.where(norm > 0, new / norm, eta)


def _generator(generator: torch.Generator | None, seed: int | None, device: torch.device):
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is not None:
        return torch.Generator(device=device).manual_seed(int(seed))
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device}, but device is {device}")
    return generator


def _split(process: FactoredProcess, stacked: torch.Tensor) -> list[torch.Tensor]:
    """[N, B, L+1, S_max] -> list[N] of [B, L+1, S_n] (views; contiguous when S_n == S_max)."""
    return [stacked[n, ..., :s] for n, s in enumerate(process.state_dims)]


def sample(
    process: FactoredProcess,
    batch_size: int,
    seq_len: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Draw batch_size sequences of seq_len joint tokens from the stationary start, with all factor beliefs.

    Returns tokens: LongTensor [B, L] (no BOS) and beliefs: list[N] of float32 [B, L+1, S_n] with
    beliefs[n][:, t] the belief BEFORE token t (beliefs[n][:, 0] = pi_n). Vectorised over the batch and the
    factors; loops over positions (and, for the chain's same-step dependence, factors). Each sub-token is
    drawn by inverse CDF from P(x | eta) = eta @ T[x] @ tau with torch.rand from `generator` (or a fresh one
    seeded with `seed`): same seed and device -> same output.

    Computed in float32 (`COMPUTE_DTYPE`). HMMs are exact in that (zero probabilities stay zero); a GHMM
    whose tokens can have probability exactly 0 at a reachable belief (not the paper's processes, where every
    token keeps probability >= 0.05) may, rarely, draw such a token from float32 round-off.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    device = torch.device(device)
    gen = _generator(generator, seed, device)
    dtype = COMPUTE_DTYPE
    tab = _tables(process, device, dtype)
    B, L, N, X = batch_size, seq_len, process.n_factors, tab.X
    eps = process.noise

    # All randomness up front: u[t, n] drives factor n's draw at position t.
    u = torch.rand((L, N, B), generator=gen, device=device, dtype=dtype)
    if eps > 0:
        flip = torch.rand((L, 1, B), generator=gen, device=device, dtype=dtype) < eps
        # A uniform joint token = uniform sub-tokens: one randint per position, decoded to [L, N, B].
        noisy = decode(process, torch.randint(process.vocab_size, (L, B), generator=gen, device=device))
        noisy = noisy.permute(0, 2, 1)

    eta = tab.pi[:, None, :].expand(N, B, tab.S).contiguous()
    stacked = torch.empty((N, B, L + 1, tab.S), dtype=torch.float32, device=device)
    stacked[:, :, 0] = eta
    factor_tokens = torch.empty((L, N, B), dtype=torch.long, device=device)
    VX = tab.V * X
    for t in range(L):
        out = torch.bmm(eta, tab.W)  # [N, B, 2VX]: CDFs and laws of every (variant, token)
        # Every factor's token under every variant, from the same u[t, n] (one batched op): [N, B, V].
        every = torch.minimum(_draw(out[..., :VX], u[t], X), tab.top[..., None])
        if process.structure.parent_picks_variant:
            # Keep the variant the parent's token selects: only this selection is sequential.
            clean = [every[0, :, 0]]
            for n in range(1, N):
                clean.append(every[n].gather(1, clean[-1][:, None]).squeeze(1))
            obs = torch.stack(clean)
        else:
            obs = every[..., 0]  # [N, B]
        if eps > 0:
            obs = torch.where(flip[t], noisy[t], obs)
        out[..., VX : 2 * VX].clamp_min_(0.0)  # GHMM round-off
        eta = _advance(tab, eta, out, process.structure.variant_index(obs), obs, guard=eps > 0)
        stacked[:, :, t + 1] = eta
        factor_tokens[t] = obs
    tokens = encode(process, factor_tokens.permute(2, 0, 1))
    return tokens, _split(process, stacked)


def sample_exact(
    process: FactoredProcess,
    batch_size: int,
    seq_len: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`sample` on the CPU, with the beliefs recomputed in float64 along the drawn tokens (for theory, where the
    sampler's float32 beliefs would limit the precision): tokens [B, L], beliefs list[N] of float64 [B, L+1, S_n]."""
    tokens, _ = sample(process, batch_size, seq_len, generator=generator, seed=seed)
    return tokens, filter_beliefs(process, decode(process, tokens), dtype=torch.float64)


def filter_beliefs(
    process: FactoredProcess, factor_tokens: torch.Tensor, *, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Each factor's belief along given sequences: factor_tokens LongTensor [B, L, N] -> list[N] of
    [B, L+1, S_n] in `dtype` (beliefs[n][:, t] before token t), with the sampler's update rule (chain variant
    from the observed parent sub-token; under noise the clean update on the observed sub-token).

    Computed in `dtype` when it is float64 (for theory), else in the sampler's compute dtype, so that it
    reproduces `sample`'s beliefs exactly.
    """
    if factor_tokens.ndim != 3 or factor_tokens.shape[-1] != process.n_factors:
        raise ValueError(
            f"factor_tokens must have shape [B, L, N={process.n_factors}], got {tuple(factor_tokens.shape)}"
        )
    device = factor_tokens.device
    compute = torch.float64 if dtype == torch.float64 else COMPUTE_DTYPE
    tab = _tables(process, device, compute)
    B, L, N = factor_tokens.shape
    eta = tab.pi[:, None, :].expand(N, B, tab.S).contiguous()
    stacked = torch.empty((N, B, L + 1, tab.S), dtype=dtype, device=device)
    stacked[:, :, 0] = eta
    VX = tab.V * tab.X
    for t in range(L):
        obs = factor_tokens[:, t].T  # [N, B]
        out = torch.bmm(eta, tab.W)
        out[..., VX : 2 * VX].clamp_min_(0.0)
        eta = _advance(tab, eta, out, process.structure.variant_index(obs), obs, guard=True)
        stacked[:, :, t + 1] = eta
    return _split(process, stacked)


def next_token_law(process: FactoredProcess, beliefs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The true next-token law of the joint token given the factors' beliefs: list[N] [..., S_n] -> [..., V].

    independent: prod_n p_n; chain: p_0(t_0) prod_{n>0} p_n^{(t_{n-1})}(t_n); noise: (1-eps) * that + eps/V.
    Under noise the beliefs are the authors' (clean update on the observed sub-token): this is then the exact
    law of the data `sample` generates, not the Bayes posterior of a generator with hidden states.
    """
    tab = _tables(process, beliefs[0].device, beliefs[0].dtype)
    lead = beliefs[0].shape[:-1]
    Xs = process.factor_vocab_sizes
    joint = None
    for n, b in enumerate(beliefs):
        S, V, X = process.state_dims[n], len(process.variants[n]), Xs[n]
        allp = b.reshape(-1, S) @ tab.E[n, :S]  # [M, V_max * X_max]
        M = allp.shape[0]
        p = allp.view(M, -1, tab.X)[:, :V, :X].clamp_min(0.0)  # [M, V, X]
        if n == 0:
            joint = p[:, 0]
        elif V == 1:
            joint = (joint[:, :, None] * p[:, 0, None, :]).reshape(M, -1)
        else:  # chain: the variant index is the last (previous factor's) sub-token of `joint`
            joint = (joint.view(M, -1, Xs[n - 1], 1) * p[:, None]).reshape(M, -1)
    if process.noise > 0:
        joint = (1 - process.noise) * joint + process.noise / process.vocab_size
    return joint.reshape(*lead, process.vocab_size)
