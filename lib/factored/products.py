"""Products of GHMM factors: the process (independent, chain, noisy), its token codec and dimension counts.

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
Sampling and belief filtering live in `sampling`, the theory (optimal loss, fidelity cost) in `theory`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING

import numpy as np
import torch

from factored.ghmm import GHMM, kron
from factored.processes import bloch_walk, mess3
from factored.structures import CHAIN, INDEPENDENT, Structure, structure_named

if TYPE_CHECKING:
    from factored.config import DataConfig


@dataclass(frozen=True)
class FactoredProcess:
    """A product of N GHMM factors.

    variants[n]: the parameter variants of factor n. independent: one each. chain: factor 0 has one,
    factor n > 0 one per token of factor n-1 (variant index = same-step token of factor n-1). Variants of a
    factor share token count, state count and tau; variant 0's pi is the factor's initial belief.
    structure: a `structures.Structure` (or its name); noise: eps in [0, 1].
    """

    variants: tuple[tuple[GHMM, ...], ...]
    structure: Structure = INDEPENDENT
    noise: float = 0.0

    def __post_init__(self) -> None:
        variants = tuple((v,) if isinstance(v, GHMM) else tuple(v) for v in self.variants)
        object.__setattr__(self, "variants", variants)
        object.__setattr__(self, "structure", structure_named(self.structure))
        noise = float(self.noise)
        if not (math.isfinite(noise) and 0.0 <= noise <= 1.0):
            raise ValueError(f"noise must be in [0, 1], got {self.noise!r}")
        object.__setattr__(self, "noise", noise)
        if len(variants) == 0:
            raise ValueError("variants must hold at least one factor")
        for n, vs in enumerate(variants):
            if len(vs) == 0 or not all(isinstance(g, GHMM) for g in vs):
                raise ValueError(f"variants[{n}] must be a non-empty sequence of GHMMs")
            want = self.structure.n_variants(n, variants[n - 1][0].n_tokens if n else 0)
            if len(vs) != want:
                raise ValueError(
                    f"variants[{n}] must have {want} variant(s) for structure {self.structure.name!r}, got {len(vs)}"
                )
            g0 = vs[0]
            for k, g in enumerate(vs[1:], start=1):
                if g.T.shape != g0.T.shape or not np.allclose(g.tau, g0.tau, atol=1e-10):
                    raise ValueError(f"variants[{n}][{k}] must match variants[{n}][0] in shape [X, S, S] and tau")

    @property
    def law_is_product(self) -> bool:
        """Whether the next-token law is the product of the factors' own laws (an independent structure without
        noise): then the optimal loss is exact by enumeration and the fidelity cost of factoring is 0."""
        return self.structure.law_is_product and self.noise == 0

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
    def kinds(self) -> tuple[str, ...]:
        """What each factor's belief looks like: "simplex" for a 3-state, 3-token HMM (Mess3: a triangle), else
        "bloch" (the Bloch walk: a disk). Plots draw and tables group the factors by it."""
        pairs = zip(self.state_dims, self.factor_vocab_sizes, strict=True)
        return tuple("simplex" if d == 3 and v == 3 else "bloch" for d, v in pairs)

    @property
    def names(self) -> list[str]:
        """Each factor's name in tables and figures, by kind and index: "Mess3 F0", ..., "Bloch F4"."""
        return [f"{'Mess3' if k == 'simplex' else 'Bloch'} F{i}" for i, k in enumerate(self.kinds)]

    @property
    def radix(self) -> tuple[int, ...]:
        """Place value of each factor's sub-token in the joint token: (144, 48, 16, 4, 1) for the paper."""
        sizes = self.factor_vocab_sizes
        return tuple(math.prod(sizes[n + 1 :]) for n in range(len(sizes)))


def independent(factors: Sequence[GHMM], noise: float = 0.0) -> FactoredProcess:
    """Independent factors, optionally with joint-token noise eps."""
    return FactoredProcess(variants=tuple((g,) for g in factors), structure=INDEPENDENT, noise=noise)


def chain(variants: Sequence[GHMM | Sequence[GHMM]], noise: float = 0.0) -> FactoredProcess:
    """Chain: factor n > 0 picks its variant by the same-step token of factor n-1 (a GHMM = one variant)."""
    vs = tuple((v,) if isinstance(v, GHMM) else tuple(v) for v in variants)
    return FactoredProcess(variants=vs, structure=CHAIN, noise=noise)


def paper_process(structure: str | Structure = "independent", noise: float = 0.0) -> FactoredProcess:
    """The paper's five factors: Mess3(0.15, 0.6) x3, Bloch walk(1, 3) x2; 432 joint tokens.

    chain: F1, F2 variants Mess3 (0.15, 0.6), (0.11, 0.79), (0.5, 0.6); F3 Bloch beta in (2.5, 3.0, 3.5);
    F4 Bloch beta in (2.0, 2.5, 3.0, 3.5); alpha = 1.
    """
    if structure_named(structure) is INDEPENDENT:
        m, b = mess3(0.15, 0.6), bloch_walk(1.0, 3.0)
        return independent([m, m, m, b, b], noise=noise)
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


def process_of(data: DataConfig) -> FactoredProcess:
    """The process a run trains on (`config.DataConfig`): the paper's five factors, or n_mess3 independent Mess3
    factors if > 0; with its structure and noise."""
    if data.n_mess3:
        return mess3_factors(data.n_mess3, noise=data.noise, x=data.mess3_x, a=data.mess3_a)
    return paper_process(structure=data.structure, noise=data.noise)


def mess3_factors(n: int, noise: float = 0.0, x: float = 0.15, a: float = 0.6) -> FactoredProcess:
    """n independent Mess3(x, a) factors (default the paper's Mess3(0.15, 0.6)): 3^n joint tokens, beliefs of
    factored dimension 2n and joint dimension 3^n - 1 (the scaling-with-N and noise-expansion experiments)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return independent([mess3(x, a)] * n, noise=noise)


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


def inputs_and_targets(
    process: FactoredProcess, tokens: torch.Tensor, uses_bos: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, L] -> (inputs, targets): [BOS, x1..x_{L-1}] -> [x1..xL] with BOS, else [x1..x_{L-1}] -> [x2..xL]."""
    if uses_bos:
        return add_bos(process, tokens)[:, :-1], tokens
    return tokens[:, :-1], tokens[:, 1:]


def target_positions(seq_len: int, uses_bos: bool) -> slice:
    """Which of the L token positions the model is trained to predict (all with BOS, 2..L without)."""
    return slice(0, seq_len) if uses_bos else slice(1, seq_len)


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
    if not process.structure.parent_picks_variant:
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
