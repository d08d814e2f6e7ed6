"""Catalogue of named processes. Each is a pure function of its parameters returning a validated `GHMM`.

Matrices follow PAPER.md and the authors' `transition_matrices.py`: ``T[x][i, j]`` = weight of going from
state i to state j while emitting x.
"""

from __future__ import annotations

import math

import numpy as np

from factored.ghmm import GHMM


def _check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """float(value) if it lies in [lo, hi] ((lo, hi] when lo_open), else a ValueError naming it."""
    value = float(value)
    ok = math.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def mess3(x: float = 0.15, a: float = 0.6) -> GHMM:
    """Mess3(x, a): 3 states, 3 tokens; stay w.p. 1-2x, move to each other state w.p. x, emit the
    destination's own token w.p. a and each other token w.p. (1-a)/2. Paper: x=0.15, a=0.6.

    ``T[z][i, j] = (a if j == z else b) * (y if i == j else x)`` with b = (1-a)/2, y = 1-2x.
    x in (0, 1/2] (x = 0 would never mix the states), a in [0, 1]. Stationary belief: uniform.
    """
    x = _check_range("x", x, 0.0, 0.5, lo_open=True)
    a = _check_range("a", a, 0.0, 1.0)
    b, y = (1 - a) / 2, 1 - 2 * x
    eye = np.eye(3)
    move = np.where(eye == 1, y, x)  # [i, j]
    T = np.stack([move * np.where(np.arange(3) == z, a, b)[None, :] for z in range(3)])
    return GHMM.from_transitions(T)


def bloch_walk(alpha: float = 1.0, beta: float = 3.0) -> GHMM:
    """Bloch walk ("tom_quantum"): 3-dim GHMM with 4 tokens on the state basis (trace, Bloch-x, Bloch-z).

    g = 1/(4(alpha^2+beta^2)), c = 1/4, m = (alpha^2-beta^2) g, o = 2 alpha beta g. Tokens 0/1 push the
    Bloch vector along +z/-z, tokens 2/3 along +x/-x. It is the qubit walk with Kraus operators
    gamma (alpha I +- beta Z), gamma (alpha I +- beta X), gamma = 1/(2 sqrt(alpha^2+beta^2)).
    tau = [3, 0, 0], pi = [1/3, 0, 0]. Paper: alpha=1, beta=3. alpha, beta finite and not both 0.
    """
    alpha, beta = float(alpha), float(beta)
    for name, v in (("alpha", alpha), ("beta", beta)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be a finite real number, got {v!r}")
    if alpha == 0 and beta == 0:
        raise ValueError("alpha and beta must not both be 0 (alpha^2 + beta^2 must be > 0)")
    g = 1 / (4 * (alpha**2 + beta**2))
    c, m, o = 0.25, (alpha**2 - beta**2) * g, 2 * alpha * beta * g
    T = np.array(
        [
            [[c, 0, o], [0, m, 0], [o, 0, c]],
            [[c, 0, -o], [0, m, 0], [-o, 0, c]],
            [[c, o, 0], [o, c, 0], [0, 0, m]],
            [[c, -o, 0], [-o, c, 0], [0, 0, m]],
        ]
    )
    # Net matrix diag(1, l, l) with l = alpha^2 / (alpha^2 + beta^2): tau and pi are known in closed form,
    # and stay the maximally mixed state even at beta = 0 (every Kraus operator ~ I, beliefs never move).
    return GHMM(T=T, pi=np.array([1 / 3, 0.0, 0.0]), tau=np.array([3.0, 0.0, 0.0]))


tom_quantum = bloch_walk  # the authors' name


def zero_one_random(p: float = 0.5) -> GHMM:
    """Zero-one-random (Z1R): states A -0-> B -1-> C, then C emits 1 w.p. p, 0 w.p. 1-p, back to A.

    p in [0, 1] (authors' convention). Stationary belief: uniform.
    """
    p = _check_range("p", p, 0.0, 1.0)
    T = np.zeros((2, 3, 3))
    T[0, 0, 1] = 1.0
    T[1, 1, 2] = 1.0
    T[0, 2, 0] = 1 - p
    T[1, 2, 0] = p
    return GHMM.from_transitions(T)


def rrxor(pR1: float = 0.5, pR2: float = 0.5) -> GHMM:
    """Random-random-XOR: two random bits (0 w.p. pR1, then 0 w.p. pR2), then their XOR; 5 states.

    States S, 0, 1, T, F; pR1, pR2 in [0, 1]. Stationary belief [2, 1, 1, 1, 1] / 6 at pR1 = pR2 = 1/2.
    """
    pR1 = _check_range("pR1", pR1, 0.0, 1.0)
    pR2 = _check_range("pR2", pR2, 0.0, 1.0)
    S, B0, B1, Tr, F = range(5)  # start, first bit 0, first bit 1, XOR true, XOR false
    T = np.zeros((2, 5, 5))
    T[0, S, B0], T[1, S, B1] = pR1, 1 - pR1
    T[0, B0, F], T[1, B0, Tr] = pR2, 1 - pR2
    T[0, B1, Tr], T[1, B1, F] = pR2, 1 - pR2
    T[1, Tr, S] = 1.0
    T[0, F, S] = 1.0
    return GHMM.from_transitions(T)
