"""Named processes: matrices, stationary states, parameter validation, the Bloch walk as a qubit walk."""

import numpy as np
import pytest

from factored.ghmm import all_sequences, next_token_probs, sequence_probability, update
from factored.processes import bloch_walk, mess3, rrxor, tom_quantum, zero_one_random

# --------------------------------------------------------------------------------------------- Mess3


@pytest.mark.parametrize("x, a", [(0.15, 0.6), (0.05, 0.85), (0.5, 0.0), (0.01, 1.0)])
def test_mess3_matches_the_authors_explicit_matrices(x, a):
    b, y = (1 - a) / 2, 1 - 2 * x
    ay, bx, by, ax = a * y, b * x, b * y, a * x
    expected = [
        [[ay, bx, bx], [ax, by, bx], [ax, bx, by]],
        [[by, ax, bx], [bx, ay, bx], [bx, ax, by]],
        [[by, bx, ax], [bx, by, ax], [bx, bx, ay]],
    ]
    g = mess3(x, a)
    np.testing.assert_allclose(g.T, expected, atol=1e-15)
    np.testing.assert_allclose(g.T.sum((0, 2)), 1.0)  # an HMM: rows of the net matrix are stochastic
    np.testing.assert_allclose(g.pi, [1 / 3] * 3, atol=1e-12)


# ------------------------------------------------------------------------------------- Bloch walk


def test_tom_quantum_is_bloch_walk():
    assert tom_quantum is bloch_walk
    np.testing.assert_array_equal(tom_quantum(1.0, 3.0).T, bloch_walk().T)


def _kraus(alpha: float, beta: float) -> np.ndarray:
    """Qubit Kraus operators of the Bloch walk: K_{0,1} = gamma (alpha I +- beta Z), K_{2,3} = gamma (alpha I
    +- beta X), gamma = 1 / (2 sqrt(alpha^2 + beta^2)), so that sum_k K_k^T K_k = I.

    Derivation: for K = a I + b Z and rho = (I + r_x X + r_z Z) / 2,
    K rho K = ((a^2+b^2 + 2ab r_z) I + (a^2-b^2) r_x X + (2ab + (a^2+b^2) r_z) Z) / 2,
    which is T[0] acting on (1, r_x, r_z) with a = gamma alpha, b = gamma beta; likewise X for tokens 2/3.
    """
    gamma = 1 / (2 * np.sqrt(alpha**2 + beta**2))
    eye, X, Z = np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]]), np.diag([1.0, -1.0])
    return gamma * np.stack(
        [alpha * eye + beta * Z, alpha * eye - beta * Z, alpha * eye + beta * X, alpha * eye - beta * X]
    )


@pytest.mark.parametrize("alpha, beta", [(1.0, 3.0), (1.0, 2.0), (2.5, -0.4), (0.0, 1.0), (1.3, 0.0)])
def test_bloch_walk_is_the_qubit_kraus_walk(alpha, beta):
    K = _kraus(alpha, beta)
    np.testing.assert_allclose(np.einsum("kji,kjl->il", K, K), np.eye(2), atol=1e-14)  # trace preserving
    g = bloch_walk(alpha, beta)
    X, Z = np.array([[0.0, 1.0], [1.0, 0.0]]), np.diag([1.0, -1.0])
    rng = np.random.default_rng(0)
    for seq in rng.integers(0, 4, size=(40, 6)):
        rho, eta, p_seq = np.eye(2) / 2, g.pi, 1.0
        for x in seq:
            q = np.array([np.trace(k @ rho @ k.T) for k in K])  # Born rule
            np.testing.assert_allclose(next_token_probs(g, eta), q, atol=1e-12)
            p_seq *= q[x]
            rho = K[x] @ rho @ K[x].T / q[x]
            eta = update(g, eta, x)
            # The GHMM belief is (1, r_x, r_z) / 3 for the qubit's Bloch vector r.
            np.testing.assert_allclose(eta, np.array([1, np.trace(rho @ X), np.trace(rho @ Z)]) / 3, atol=1e-12)
        assert sequence_probability(g, seq) == pytest.approx(p_seq, rel=1e-10)


def test_bloch_beliefs_stay_in_the_disk():
    g = bloch_walk()
    rng = np.random.default_rng(1)
    eta = np.broadcast_to(g.pi, (500, 3))
    for _ in range(20):
        p = next_token_probs(g, eta)
        x = (np.cumsum(p, -1) < rng.random((500, 1))).sum(-1).clip(max=3)
        eta = update(g, eta, x)
        assert np.all(np.hypot(3 * eta[:, 1], 3 * eta[:, 2]) <= 1 + 1e-12)


# -------------------------------------------------------------------------------------- Z1R, RRXOR


def test_zero_one_random_structure():
    g = zero_one_random(0.3)
    np.testing.assert_allclose(g.pi, [1 / 3] * 3, atol=1e-12)
    # From state A: 0, then 1, then 1 w.p. p (0 w.p. 1-p).
    start = np.array([1.0, 0.0, 0.0])
    assert next_token_probs(g, start) == pytest.approx([1.0, 0.0])
    eta = update(g, update(g, start, 0), 1)
    assert next_token_probs(g, eta) == pytest.approx([0.7, 0.3])


def test_rrxor_stationary_state_and_xor():
    np.testing.assert_allclose(rrxor(0.5, 0.5).pi, np.array([2, 1, 1, 1, 1]) / 6, atol=1e-12)
    g = rrxor(0.3, 0.8)
    start = np.eye(5)[0]  # at S: two random bits, then their XOR, then again
    seqs = all_sequences(2, 6)
    probs = np.array([start @ _product(g, s) @ g.tau for s in seqs])
    possible = seqs[probs > 1e-15]
    np.testing.assert_array_equal(possible[:, 2], possible[:, 0] ^ possible[:, 1])
    np.testing.assert_array_equal(possible[:, 5], possible[:, 3] ^ possible[:, 4])
    assert probs.sum() == pytest.approx(1.0)


def _product(g, seq):
    out = np.eye(g.n_states)
    for x in seq:
        out = out @ g.T[x]
    return out


# ------------------------------------------------------------------------------------ bad parameters


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: mess3(x=0.0), r"x must be in \(0, 0.5\]"),
        (lambda: mess3(x=0.51), r"x must be in \(0, 0.5\]"),
        (lambda: mess3(x=float("nan")), "x must be in"),
        (lambda: mess3(a=-0.1), r"a must be in \[0, 1\]"),
        (lambda: mess3(a=1.5), r"a must be in \[0, 1\]"),
        (lambda: bloch_walk(0.0, 0.0), "alpha and beta must not both be 0"),
        (lambda: bloch_walk(float("inf"), 1.0), "alpha must be a finite"),
        (lambda: bloch_walk(1.0, float("nan")), "beta must be a finite"),
        (lambda: zero_one_random(1.5), r"p must be in \[0, 1\]"),
        (lambda: zero_one_random(-0.01), r"p must be in \[0, 1\]"),
        (lambda: rrxor(pR1=-0.1), r"pR1 must be in \[0, 1\]"),
        (lambda: rrxor(pR2=2.0), r"pR2 must be in \[0, 1\]"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: mess3(0.5, 1 / 3),
        lambda: zero_one_random(0.0),
        lambda: zero_one_random(1.0),
        lambda: rrxor(0.0, 0.0),
        lambda: rrxor(1.0, 1.0),
        lambda: bloch_walk(0.0, 5.0),
        lambda: bloch_walk(-2.0, 0.0),
    ],
)
def test_boundary_parameters_are_valid(make):
    g = make()
    assert g.pi @ g.tau == pytest.approx(1.0)
