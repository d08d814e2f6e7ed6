"""Generalized hidden Markov models (GHMMs): exact theory in numpy float64.

Convention (PAPER.md): ``T[x][i, j]`` is the weight of moving from state i to state j while emitting token x;
beliefs are row vectors. With the net matrix ``N = sum_x T[x]``, ``tau`` is its right eigenvector for
eigenvalue 1 and ``pi`` its left one, normalised so that ``pi @ tau == 1``. For a belief ``eta`` with
``eta @ tau == 1``:

    P(x | eta) = eta @ T[x] @ tau          eta' = eta @ T[x] / P(x | eta)

An HMM is the special case of non-negative matrices with ``tau = ones``. A GHMM may have negative entries;
only the probabilities it assigns must be valid, which is what `GHMM` checks (on all short prefixes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tolerances for the validity checks (float64 round-off on matrices of order-one entries).
_EIG_TOL = 1e-8
_PROB_TOL = 1e-9
# Validation enumerates every prefix of length <= _CHECK_DEPTH while there are at most this many of them.
_CHECK_DEPTH = 3
_CHECK_MAX_PREFIXES = 1024


@dataclass(frozen=True, eq=False)
class GHMM:
    """A generalized hidden Markov model.

    T: [X, S, S] token-labelled transition matrices; pi: [S] initial belief; tau: [S] normalising vector.
    Construct from matrices alone with `GHMM.from_transitions`; the constructor validates and raises
    ValueError naming the offending field. ``pi`` need not be stationary (it is when built from transitions).
    Equality and hashing are by identity (the fields are arrays).
    """

    T: np.ndarray
    pi: np.ndarray
    tau: np.ndarray

    def __post_init__(self) -> None:
        T = np.array(self.T, dtype=np.float64)
        pi = np.array(self.pi, dtype=np.float64)
        tau = np.array(self.tau, dtype=np.float64)
        if T.ndim != 3 or T.shape[1] != T.shape[2] or T.shape[0] < 1 or T.shape[1] < 1:
            raise ValueError(f"T must have shape [X, S, S] with X, S >= 1, got {T.shape}")
        S = T.shape[1]
        if pi.shape != (S,):
            raise ValueError(f"pi must have shape [S] = [{S}], got {pi.shape}")
        if tau.shape != (S,):
            raise ValueError(f"tau must have shape [S] = [{S}], got {tau.shape}")
        for name, arr in (("T", T), ("pi", pi), ("tau", tau)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite")
            arr.setflags(write=False)  # frozen means frozen: shared arrays must not change under us
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "pi", pi)
        object.__setattr__(self, "tau", tau)
        _validate(self)

    @classmethod
    def from_transitions(cls, T: np.ndarray, *, rescale: bool = False) -> GHMM:
        """Build a GHMM from T [X, S, S]: tau, pi from the net matrix's eigenvectors for eigenvalue 1.

        tau is scaled so that ``tau.sum() == S`` (ones for an HMM, [3, 0, 0] for the Bloch walk), pi so that
        ``pi @ tau == 1``. With ``rescale=True`` T is first divided by the net matrix's leading eigenvalue
        (as the authors' code does); otherwise a net matrix without eigenvalue 1 is an error.
        """
        T = np.asarray(T, dtype=np.float64)
        if T.ndim != 3 or T.shape[1] != T.shape[2] or T.shape[0] < 1 or T.shape[1] < 1:
            raise ValueError(f"T must have shape [X, S, S] with X, S >= 1, got {T.shape}")
        if not np.all(np.isfinite(T)):
            raise ValueError("T must be finite")
        S = T.shape[1]
        net = T.sum(axis=0)
        eigvals = np.linalg.eigvals(net)
        if rescale:
            lead = eigvals[np.argmax(np.abs(eigvals))]
            if abs(lead.imag) > _EIG_TOL or lead.real <= 0:
                raise ValueError(f"T: the net matrix's leading eigenvalue {lead} is not real and positive")
            T = T / lead.real
            net = T.sum(axis=0)
            eigvals = eigvals / lead.real
        close = np.abs(eigvals - 1.0) < 1e-6
        if not close.any():
            nearest = eigvals[np.argmin(np.abs(eigvals - 1.0))]
            raise ValueError(
                f"T: the net matrix sum_x T[x] has no eigenvalue 1 (nearest {nearest:.6g}); "
                "pass rescale=True to divide T by its leading eigenvalue"
            )
        if close.sum() > 1:
            raise ValueError("T: eigenvalue 1 of the net matrix is not simple, so pi and tau are not unique")
        tau = _null_vector(net - np.eye(S))
        if abs(tau.sum()) < 1e-12:
            raise ValueError("T: the right eigenvector tau sums to 0 and cannot be scaled to sum to S")
        tau = tau * (S / tau.sum())
        pi = _null_vector(net.T - np.eye(S))
        if abs(pi @ tau) < 1e-12:
            raise ValueError("T: the stationary left eigenvector pi is orthogonal to tau")
        pi = pi / (pi @ tau)
        return cls(T=T, pi=pi, tau=tau)

    @property
    def n_tokens(self) -> int:
        return self.T.shape[0]

    @property
    def n_states(self) -> int:
        return self.T.shape[1]

    @property
    def emissions(self) -> np.ndarray:
        """E: [X, S], ``E[x] = T[x] @ tau``, so that ``P(x | eta) = eta @ E[x]``."""
        return self.T @ self.tau


def _null_vector(A: np.ndarray) -> np.ndarray:
    """Real unit vector v with A @ v ~ 0 (the right singular vector of the smallest singular value)."""
    _, _, vh = np.linalg.svd(A)
    return vh[-1].real


def _validate(g: GHMM) -> None:
    """Raise ValueError unless g is a valid process (eigen-relations, probabilities on short prefixes)."""
    scale = max(1.0, float(np.abs(g.tau).max()))
    if not np.allclose(g.T.sum(axis=0) @ g.tau, g.tau, atol=_EIG_TOL * scale):
        raise ValueError("tau must be a right eigenvector of the net matrix sum_x T[x] for eigenvalue 1")
    if abs(g.pi @ g.tau - 1.0) > 1e-8:
        raise ValueError(f"pi must satisfy pi @ tau == 1, got {g.pi @ g.tau:.6g}")
    # Next-token laws on every reachable belief after a short prefix must be probabilities.
    etas, weights = g.pi[None], np.ones(1)
    for depth in range(_CHECK_DEPTH + 1):
        probs = etas @ g.emissions.T  # [n, X]
        if (probs < -_PROB_TOL).any() or not np.allclose(probs.sum(-1), 1.0, atol=1e-8):
            raise ValueError(
                f"T: the next-token law after a length-{depth} prefix is not a probability vector "
                f"(min {probs.min():.3g}, sum {probs.sum(-1).min():.6g}..{probs.sum(-1).max():.6g})"
            )
        if depth == _CHECK_DEPTH or len(etas) * g.n_tokens > _CHECK_MAX_PREFIXES:
            break
        etas, weights = _expand(g, etas, weights, probs)


def _expand(g: GHMM, etas: np.ndarray, weights: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All one-token extensions of prefixes with beliefs etas [n, S] and weights [n]; drops impossible ones.

    Returns (etas [m, S], weights [m]) ordered prefix-major (prefix k, token x) -> k * X + x.
    """
    unnorm = np.einsum("ns,xst->nxt", etas, g.T)  # [n, X, S]
    w = (weights[:, None] * np.clip(probs, 0.0, None)).reshape(-1)
    p = probs.reshape(-1)
    keep = p > _PROB_TOL
    new = unnorm.reshape(-1, g.n_states)[keep] / p[keep, None]
    return new, w[keep]


def next_token_probs(g: GHMM, eta: np.ndarray) -> np.ndarray:
    """P(x | eta) for all x. eta: [..., S] with eta @ tau == 1 -> [..., X]."""
    return np.asarray(eta, dtype=np.float64) @ g.emissions.T


def update(g: GHMM, eta: np.ndarray, x: np.ndarray | int) -> np.ndarray:
    """Belief after observing x. eta: [..., S], x: [...] ints -> [..., S].

    Raises ValueError when x has probability <= 0 under eta (the update is then undefined).
    """
    eta = np.asarray(eta, dtype=np.float64)
    x = np.asarray(x)
    if x.shape != eta.shape[:-1]:
        raise ValueError(f"x must have shape {eta.shape[:-1]} (eta's leading dims), got {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= g.n_tokens):
        raise ValueError(f"x must be tokens in [0, {g.n_tokens - 1}]")
    new = np.einsum("...s,...st->...t", eta, g.T[x])
    p = new @ g.tau
    if not np.all(p > 0):
        raise ValueError("x: a token has probability <= 0 under its belief; the update is undefined")
    return new / p[..., None]


def sequence_probability(g: GHMM, tokens: np.ndarray) -> np.ndarray:
    """P(x_0 .. x_{L-1}) from pi. tokens: [..., L] ints -> [...].

    Uses the unnormalised product pi @ T[x_0] @ ... @ T[x_{L-1}] @ tau, so impossible prefixes give 0.
    """
    tokens = np.asarray(tokens)
    v = np.broadcast_to(g.pi, tokens.shape[:-1] + (g.n_states,))
    for t in range(tokens.shape[-1]):
        v = np.einsum("...s,...st->...t", v, g.T[tokens[..., t]])
    return v @ g.tau


def kron(g1: GHMM, g2: GHMM) -> GHMM:
    """The product process of two independent GHMMs: joint token x1 * X2 + x2, states i1 * S2 + i2."""
    T = np.einsum("aij,bkl->abikjl", g1.T, g2.T).reshape(
        g1.n_tokens * g2.n_tokens, g1.n_states * g2.n_states, g1.n_states * g2.n_states
    )
    return GHMM(T=T, pi=np.kron(g1.pi, g2.pi), tau=np.kron(g1.tau, g2.tau))


def position_entropies(g: GHMM, seq_len: int, *, max_prefixes: int = 2**20) -> np.ndarray:
    """Exact H(X_t | X_<t) in nats for t = 0 .. seq_len-1 by enumerating all prefixes: [seq_len].

    This is the Bayes-optimal cross-entropy at each position. Impossible prefixes are dropped; raises
    ValueError when more than max_prefixes possible prefixes would be needed.
    """
    if seq_len < 0:
        raise ValueError(f"seq_len must be >= 0, got {seq_len}")
    out = np.zeros(seq_len)
    etas, weights = g.pi[None], np.ones(1)
    for t in range(seq_len):
        probs = np.clip(next_token_probs(g, etas), 0.0, None)  # [n, X]
        out[t] = -(weights[:, None] * _xlogx(probs)).sum()
        if t + 1 < seq_len:
            if len(etas) * g.n_tokens > max_prefixes:
                raise ValueError(
                    f"seq_len: exact enumeration needs more than max_prefixes={max_prefixes} prefixes "
                    f"at position {t + 1}; use a Monte-Carlo estimate instead"
                )
            etas, weights = _expand(g, etas, weights, probs)
    return out


def _xlogx(p: np.ndarray) -> np.ndarray:
    """p * log p with 0 log 0 = 0."""
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def all_sequences(n_tokens: int, seq_len: int) -> np.ndarray:
    """Every token sequence of the given length in lexicographic order: [n_tokens ** seq_len, seq_len]."""
    if seq_len == 0:
        return np.zeros((1, 0), dtype=np.int64)
    return np.indices((n_tokens,) * seq_len).reshape(seq_len, -1).T.astype(np.int64)
