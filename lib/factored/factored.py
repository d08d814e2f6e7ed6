"""Products of GHMM factors: token codec, independent / chain / noisy structures, batched torch sampling of
tokens with per-factor beliefs, the exact optimal loss and the fidelity cost of factoring.

Joint token (mixed radix, factor 0 most significant): ``tok = sum_n t_n * prod_{m>n} V_m``; with the paper's
vocabularies [3, 3, 3, 4, 4]: ``tok = 144 t0 + 48 t1 + 16 t2 + 4 t3 + t4``, and BOS = 432.

Structures (one step, beliefs eta_n carried per factor):
- independent: P(t) = prod_n p_n(t_n | eta_n).
- chain: factor n > 0 uses variant v = t_{n-1} (its parent's same-step token; identity control map):
  P(t) = p_0(t_0) prod_{n>0} p_n^{(t_{n-1})}(t_n).
- noise eps (on either): with probability eps the joint token is replaced by a uniform one (every sub-token
  uniform), so P_eps(t) = (1 - eps) P(t) + eps / V. As in the authors' generator, each factor's belief is
  then updated with its clean matrices on the observed sub-token (chain: variant chosen by the observed
  parent sub-token).
The sampler draws each clean sub-token from the belief it carries (there is no hidden state), so
`next_token_law` below is exactly the law of the data `sample` produces given the observed past.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np
import torch

from factored.ghmm import GHMM, kron, position_entropies
from factored.processes import bloch_walk, mess3

STRUCTURES = ("independent", "chain")


@dataclass(frozen=True)
class FactoredProcess:
    """A product of N GHMM factors.

    variants[n]: the parameter variants of factor n. independent: one each. chain: factor 0 has one,
    factor n > 0 one per token of factor n-1 (variant index = same-step token of factor n-1). Variants of a
    factor share token count, state count and tau; variant 0's pi is the factor's initial belief.
    structure: "independent" | "chain"; noise: eps in [0, 1].
    """

    variants: tuple[tuple[GHMM, ...], ...]
    structure: str = "independent"
    noise: float = 0.0

    def __post_init__(self) -> None:
        variants = tuple((v,) if isinstance(v, GHMM) else tuple(v) for v in self.variants)
        object.__setattr__(self, "variants", variants)
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}, got {self.structure!r}")
        noise = float(self.noise)
        if not (math.isfinite(noise) and 0.0 <= noise <= 1.0):
            raise ValueError(f"noise must be in [0, 1], got {self.noise!r}")
        object.__setattr__(self, "noise", noise)
        if len(variants) == 0:
            raise ValueError("variants must hold at least one factor")
        for n, vs in enumerate(variants):
            if len(vs) == 0 or not all(isinstance(g, GHMM) for g in vs):
                raise ValueError(f"variants[{n}] must be a non-empty sequence of GHMMs")
            if self.structure == "independent" or n == 0:
                want = 1
            else:
                want = variants[n - 1][0].n_tokens
            if len(vs) != want:
                raise ValueError(
                    f"variants[{n}] must have {want} variant(s) for structure {self.structure!r}, got {len(vs)}"
                )
            g0 = vs[0]
            for k, g in enumerate(vs[1:], start=1):
                if g.T.shape != g0.T.shape or not np.allclose(g.tau, g0.tau, atol=1e-10):
                    raise ValueError(f"variants[{n}][{k}] must match variants[{n}][0] in shape [X, S, S] and tau")

    @property
    def n_factors(self) -> int:
        return len(self.variants)

    @property
    def factors(self) -> tuple[GHMM, ...]:
        """Variant 0 of each factor."""
        return tuple(vs[0] for vs in self.variants)

    @property
    def factor_vocab_sizes(self) -> tuple[int, ...]:
        return tuple(g.n_tokens for g in self.factors)

    @property
    def state_dims(self) -> tuple[int, ...]:
        return tuple(g.n_states for g in self.factors)

    @property
    def vocab_size(self) -> int:
        return math.prod(self.factor_vocab_sizes)

    @property
    def bos_token(self) -> int:
        return self.vocab_size

    @property
    def model_vocab_size(self) -> int:
        return self.vocab_size + 1

    @property
    def radix(self) -> tuple[int, ...]:
        """Place value of each factor's sub-token in the joint token: (144, 48, 16, 4, 1) for the paper."""
        sizes = self.factor_vocab_sizes
        return tuple(math.prod(sizes[n + 1 :]) for n in range(len(sizes)))


def independent(factors: Sequence[GHMM], noise: float = 0.0) -> FactoredProcess:
    """Independent factors, optionally with joint-token noise eps."""
    return FactoredProcess(variants=tuple((g,) for g in factors), structure="independent", noise=noise)


def chain(variants: Sequence[GHMM | Sequence[GHMM]], noise: float = 0.0) -> FactoredProcess:
    """Chain: factor n > 0 picks its variant by the same-step token of factor n-1 (a GHMM = one variant)."""
    vs = tuple((v,) if isinstance(v, GHMM) else tuple(v) for v in variants)
    return FactoredProcess(variants=vs, structure="chain", noise=noise)


def paper_process(structure: str = "independent", noise: float = 0.0) -> FactoredProcess:
    """The paper's five factors: Mess3(0.15, 0.6) x3, Bloch walk(1, 3) x2; 432 joint tokens.

    chain: F1, F2 variants Mess3 (0.15, 0.6), (0.11, 0.79), (0.5, 0.6); F3 Bloch beta in (2.5, 3.0, 3.5);
    F4 Bloch beta in (2.0, 2.5, 3.0, 3.5); alpha = 1.
    """
    if structure == "independent":
        m, b = mess3(0.15, 0.6), bloch_walk(1.0, 3.0)
        return independent([m, m, m, b, b], noise=noise)
    if structure == "chain":
        m_vars = tuple(mess3(x, a) for x, a in ((0.15, 0.6), (0.11, 0.79), (0.5, 0.6)))
        return chain(
            [
                mess3(0.15, 0.6),
                m_vars,
                m_vars,
                tuple(bloch_walk(1.0, b) for b in (2.5, 3.0, 3.5)),
                tuple(bloch_walk(1.0, b) for b in (2.0, 2.5, 3.0, 3.5)),
            ],
            noise=noise,
        )
    raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")


def mess3_factors(n: int, noise: float = 0.0) -> FactoredProcess:
    """n independent Mess3(0.15, 0.6) factors, the paper's Mess3: 3^n joint tokens, beliefs of factored
    dimension 2n and joint dimension 3^n - 1 (the process of the scaling-with-N experiment)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return independent([mess3(0.15, 0.6)] * n, noise=noise)


# ---------------------------------------------------------------------------------------------- token codec


def encode(process: FactoredProcess, factor_tokens):
    """Per-factor sub-tokens [..., N] -> joint tokens [...] (numpy or torch, same type out)."""
    if factor_tokens.shape[-1] != process.n_factors:
        raise ValueError(f"factor_tokens must have last dim N={process.n_factors}, got {factor_tokens.shape}")
    if isinstance(factor_tokens, torch.Tensor):
        w = torch.tensor(process.radix, dtype=factor_tokens.dtype, device=factor_tokens.device)
    else:
        factor_tokens, w = np.asarray(factor_tokens), np.array(process.radix)
    return (factor_tokens * w).sum(-1)


def decode(process: FactoredProcess, tokens):
    """Joint tokens [...] -> per-factor sub-tokens [..., N] (numpy or torch, same type out)."""
    if isinstance(tokens, torch.Tensor):
        w = torch.tensor(process.radix, dtype=tokens.dtype, device=tokens.device)
        v = torch.tensor(process.factor_vocab_sizes, dtype=tokens.dtype, device=tokens.device)
    else:
        tokens, w, v = np.asarray(tokens), np.array(process.radix), np.array(process.factor_vocab_sizes)
    return tokens[..., None] // w % v


def add_bos(process: FactoredProcess, tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, L] -> [B, L+1] with the BOS token first."""
    bos = torch.full((tokens.shape[0], 1), process.bos_token, dtype=tokens.dtype, device=tokens.device)
    return torch.cat([bos, tokens], dim=1)


def joint_belief(beliefs):
    """Kronecker product of per-factor beliefs (list[N] of [..., S_n]) -> [..., prod S_n], factor 0 first."""

    def outer(a, b):
        return (a[..., :, None] * b[..., None, :]).reshape(*a.shape[:-1], a.shape[-1] * b.shape[-1])

    return reduce(outer, beliefs)


def dimension_counts(state_dims: Sequence[int]) -> tuple[int, int]:
    """(joint, factored) dimension of the belief representation for factors with these state counts:
    joint prod(d_n) - 1 (exponential in the number of factors), factored sum(d_n - 1) (linear)."""
    if len(state_dims) == 0 or any(int(d) < 1 for d in state_dims):
        raise ValueError(f"state_dims must be a non-empty list of positive state counts, got {list(state_dims)}")
    return math.prod(int(d) for d in state_dims) - 1, sum(int(d) - 1 for d in state_dims)


def joint_ghmm(process: FactoredProcess) -> GHMM:
    """The noiseless process as one explicit GHMM on the joint tokens (for tests and small processes).

    independent: the Kronecker product of the factors (`ghmm.kron`). chain: joint matrix for token
    (t_0..t_{N-1}) is kron_n T_n^{(t_{n-1})}[t_n]; pi = kron of the variant-0 pis, tau = kron of the taus.
    Sizes grow as prod V_n x (prod S_n)^2: keep it to small processes.
    """
    if process.noise != 0:
        raise ValueError("noise must be 0 for joint_ghmm: the noisy process is not a finite GHMM here")
    if process.structure == "independent":
        return reduce(kron, process.factors)
    T = process.factors[0].T[None]  # [K, X_prev, A, A]: K = tokens of factors before the previous one
    for n in range(1, process.n_factors):
        stack = np.stack([g.T for g in process.variants[n]])  # [X_{n-1} variants, X_n, S, S]
        K, V, A, _ = T.shape
        Xn, S = stack.shape[1], stack.shape[2]
        T = np.einsum("kvab,vxcd->kvxacbd", T, stack).reshape(K * V, Xn, A * S, A * S)
    K, V, A, _ = T.shape
    pi = reduce(np.kron, [g.pi for g in process.factors])
    tau = reduce(np.kron, [g.tau for g in process.factors])
    return GHMM(T=T.reshape(K * V, A, A), pi=pi, tau=tau)


# ------------------------------------------------------------------------------------- torch belief engine
# All factors are stacked into one tensor each (padded with zeros to the largest state count S and vocabulary
# X; padded tokens get probability 0 and padded states weight 0), so that one position costs a fixed handful
# of batched torch ops whatever the number of factors: the batch is large, the matrices tiny, and per-op
# overhead is what limits throughput on a CPU.


def _compute_dtype(device: torch.device) -> torch.dtype:
    """float32: plenty for beliefs renormalised every step; ~1.3x faster than float64 on CPU, and MPS-safe."""
    return torch.float32


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


def _variants(process: FactoredProcess, tokens: torch.Tensor) -> torch.Tensor | None:
    """Variant index [N, B] of each factor given this step's sub-tokens [N, B]; None: all use variant 0."""
    if process.structure != "chain":
        return None
    return torch.cat([torch.zeros_like(tokens[:1]), tokens[:-1]])


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

    Computed in float32 (see `_compute_dtype`). HMMs are exact in that (zero probabilities stay zero); a GHMM
    whose tokens can have probability exactly 0 at a reachable belief (not the paper's processes, where every
    token keeps probability >= 0.05) may, rarely, draw such a token from float32 round-off.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    device = torch.device(device)
    gen = _generator(generator, seed, device)
    dtype = _compute_dtype(device)
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
        if process.structure == "chain":
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
        eta = _advance(tab, eta, out, _variants(process, obs), obs, guard=eps > 0)
        stacked[:, :, t + 1] = eta
        factor_tokens[t] = obs
    tokens = encode(process, factor_tokens.permute(2, 0, 1))
    return tokens, _split(process, stacked)


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
    compute = torch.float64 if dtype == torch.float64 else _compute_dtype(device)
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
        eta = _advance(tab, eta, out, _variants(process, obs), obs, guard=True)
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
