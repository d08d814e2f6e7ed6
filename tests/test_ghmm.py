"""GHMM core: validation, next-token laws, belief updates, sequence probabilities, exact entropies."""

import numpy as np
import pytest

from factored.ghmm import (
    GHMM,
    all_sequences,
    kron,
    next_token_probs,
    position_entropies,
    sequence_probability,
    update,
)
from factored.processes import bloch_walk, mess3, rrxor, zero_one_random

PROCESSES = {
    "mess3": mess3(0.15, 0.6),
    "mess3_2024": mess3(0.05, 0.85),
    "bloch": bloch_walk(1.0, 3.0),
    "bloch_odd": bloch_walk(-0.7, 2.2),
    "z1r": zero_one_random(0.5),
    "rrxor": rrxor(0.3, 0.8),
    "mess3_x_bloch": kron(mess3(), bloch_walk()),
}


def _sample_paths(g: GHMM, batch: int, seq_len: int, seed: int):
    """Numpy sampler (independent of the torch one): beliefs [B, L+1, S] and laws [B, L, X] along paths."""
    rng = np.random.default_rng(seed)
    eta = np.broadcast_to(g.pi, (batch, g.n_states))
    etas, laws = [eta], []
    for _ in range(seq_len):
        p = next_token_probs(g, eta)
        x = (np.cumsum(np.clip(p, 0, None), -1) < rng.random((batch, 1))).sum(-1).clip(max=g.n_tokens - 1)
        eta = update(g, eta, x)
        etas.append(eta)
        laws.append(p)
    return np.stack(etas, 1), np.stack(laws, 1)


# ----------------------------------------------------------------------------------------- construction


def test_hmm_normalisation_tau_ones_pi_stationary():
    for name in ("mess3", "mess3_2024", "z1r", "rrxor"):
        g = PROCESSES[name]
        np.testing.assert_allclose(g.tau, np.ones(g.n_states), err_msg=name)
        np.testing.assert_allclose(g.pi @ g.T.sum(0), g.pi, atol=1e-12, err_msg=name)
        assert g.pi.sum() == pytest.approx(1.0)


def test_bloch_normalisation_matches_authors():
    g = PROCESSES["bloch"]
    np.testing.assert_allclose(g.tau, [3.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(g.pi, [1 / 3, 0.0, 0.0], atol=1e-12)


def test_from_transitions_rescale():
    T = mess3().T
    with pytest.raises(ValueError, match="eigenvalue 1"):
        GHMM.from_transitions(2 * T)
    g = GHMM.from_transitions(2 * T, rescale=True)
    np.testing.assert_allclose(g.T, T, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(T=np.ones((2, 3)), pi=np.ones(3), tau=np.ones(3)), "T must have shape"),
        (dict(T=np.full((1, 2, 2), 0.5), pi=np.ones(3), tau=np.ones(2)), "pi must have shape"),
        (dict(T=np.full((1, 2, 2), 0.5), pi=[0.5, 0.5], tau=np.ones(3)), "tau must have shape"),
        (dict(T=np.full((1, 2, 2), np.nan), pi=[0.5, 0.5], tau=np.ones(2)), "T must be finite"),
        (dict(T=np.full((1, 2, 2), 0.5), pi=[0.5, 0.5], tau=[1.0, 2.0]), "tau must be a right eigenvector"),
        (dict(T=np.full((1, 2, 2), 0.5), pi=[0.5, 0.6], tau=np.ones(2)), "pi @ tau"),
        # Net matrix fine (eigenvalue 1, tau = 1), but token 1 gets probability -0.2.
        (dict(T=[[[1.2]], [[-0.2]]], pi=[1.0], tau=[1.0]), "not a probability vector"),
    ],
)
def test_invalid_ghmm_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GHMM(**kwargs)


def test_invalid_ghmm_negative_only_after_a_prefix():
    # P = (0.5, 0.5) at pi = (1, 0); after token 1 the belief is (0, 1), where P(0) = -0.2.
    T = np.array([[[0.5, 0.0], [-0.2, 0.0]], [[0.0, 0.5], [0.6, 0.6]]])
    np.testing.assert_allclose(T.sum(0) @ np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="length-1 prefix"):
        GHMM(T=T, pi=[1.0, 0.0], tau=np.ones(2))


def test_non_unique_stationary_state_raises():
    T = np.stack([np.eye(2) * 0.5, np.eye(2) * 0.5])  # two disconnected states
    with pytest.raises(ValueError, match="not simple"):
        GHMM.from_transitions(T)


# ----------------------------------------------------------------------------------- laws and updates


@pytest.mark.parametrize("name", list(PROCESSES))
def test_next_token_laws_are_probabilities_along_sampled_paths(name):
    g = PROCESSES[name]
    etas, laws = _sample_paths(g, batch=300, seq_len=12, seed=1)
    assert laws.min() >= -1e-12
    np.testing.assert_allclose(laws.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(etas @ g.tau, 1.0, atol=1e-12)


def test_update_is_batched_over_leading_dims():
    g = PROCESSES["bloch"]
    etas, _ = _sample_paths(g, batch=6, seq_len=3, seed=2)
    eta = etas[:, -1].reshape(2, 3, g.n_states)
    x = np.array([[0, 1, 2], [3, 2, 1]])
    batched = update(g, eta, x)
    single = np.array([[update(g, eta[i, j], x[i, j]) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(batched, single, atol=1e-14)
    assert next_token_probs(g, eta).shape == (2, 3, 4)


def test_update_rejects_impossible_token_and_bad_shapes():
    g = PROCESSES["z1r"]
    start_a = np.array([1.0, 0.0, 0.0])  # state A emits 0 only
    with pytest.raises(ValueError, match="probability <= 0"):
        update(g, start_a, 1)
    with pytest.raises(ValueError, match="x must have shape"):
        update(g, start_a, np.array([0, 1]))
    with pytest.raises(ValueError, match="x must be tokens"):
        update(g, start_a, 5)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_sequence_probabilities_sum_to_one_and_follow_the_chain_rule(name):
    g = PROCESSES[name]
    seqs = all_sequences(g.n_tokens, 3)
    probs = sequence_probability(g, seqs)
    assert probs.min() >= -1e-12
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    # P(x0 x1 x2) = P(x0) P(x1 | x0) P(x2 | x0 x1) along possible paths.
    possible = seqs[probs > 1e-12][:20]
    for seq in possible:
        eta, p = g.pi, 1.0
        for x in seq:
            p *= next_token_probs(g, eta)[x]
            eta = update(g, eta, x)
        assert p == pytest.approx(sequence_probability(g, seq), rel=1e-10)


def test_kron_is_the_product_process():
    g1, g2 = PROCESSES["rrxor"], PROCESSES["bloch_odd"]
    k = kron(g1, g2)
    assert (k.n_tokens, k.n_states) == (8, 15)
    seqs = all_sequences(k.n_tokens, 2)
    joint = sequence_probability(k, seqs)
    product = sequence_probability(g1, seqs // 4) * sequence_probability(g2, seqs % 4)
    np.testing.assert_allclose(joint, product, atol=1e-14)


# ----------------------------------------------------------------------------------------- entropies


@pytest.mark.parametrize("name", list(PROCESSES))
def test_position_entropy_is_non_increasing(name):
    g = PROCESSES[name]
    h = position_entropies(g, 7 if g.n_tokens <= 4 else 4)
    assert np.all(np.diff(h) <= 1e-12), h


@pytest.mark.parametrize("name", ["mess3", "bloch_odd", "rrxor"])
def test_position_entropies_equal_block_entropy_differences(name):
    # Independent route: H(X_t | X_<t) = H(X_<=t) - H(X_<t), block entropies from sequence probabilities.
    g = PROCESSES[name]
    L = 4
    blocks = [0.0]
    for n in range(1, L + 1):
        p = sequence_probability(g, all_sequences(g.n_tokens, n))
        p = p[p > 0]
        blocks.append(-(p * np.log(p)).sum())
    np.testing.assert_allclose(position_entropies(g, L), np.diff(blocks), atol=1e-10)


def test_position_entropies_enumeration_limit():
    with pytest.raises(ValueError, match="max_prefixes"):
        position_entropies(PROCESSES["bloch"], 6, max_prefixes=100)


# ------------------------------------------------------------------------------------------- goldens


def test_golden_mess3_paper_parameters():
    g = mess3(0.15, 0.6)
    np.testing.assert_allclose(g.pi, [1 / 3] * 3, atol=1e-12)
    np.testing.assert_allclose(g.T.sum(0), [[0.7, 0.15, 0.15], [0.15, 0.7, 0.15], [0.15, 0.15, 0.7]])
    # By hand: after token 0 the belief is (a, b, b) = (0.6, 0.2, 0.2); one move gives (0.48, 0.26, 0.26);
    # emitting then gives P(0) = 0.48 a + 0.52 b = 0.392 and P(1) = P(2) = 0.304.
    eta0 = update(g, g.pi, 0)
    np.testing.assert_allclose(eta0, [0.6, 0.2, 0.2], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(g, eta0), [0.392, 0.304, 0.304], atol=1e-12)
    np.testing.assert_allclose(
        next_token_probs(g, update(g, eta0, 1)), [0.329473684211, 0.372894736842, 0.297631578947], atol=1e-11
    )
    # H_0 = ln 3, H_1 = H(0.392, 0.304, 0.304) (same after every first token), later ones from enumeration.
    golden = [np.log(3), 1.091067795329, 1.08939149347, 1.089003771358, 1.088914760485, 1.088894307448]
    np.testing.assert_allclose(position_entropies(g, 6), golden, atol=1e-11)


def test_golden_bloch_walk_paper_parameters():
    g = bloch_walk(1.0, 3.0)
    np.testing.assert_allclose(g.T.sum(0), np.diag([1.0, 0.1, 0.1]), atol=1e-15)
    # By hand (o = 0.15): after token 0 the Bloch vector is (r_x, r_z) = (0, 4 o) = (0, 0.6), so
    # P = (1/4 + o r_z, 1/4 - o r_z, 1/4 + o r_x, 1/4 - o r_x) = (0.34, 0.16, 0.25, 0.25); then token 2
    # gives r = (0.15, -0.12) / 0.25 = (0.6, -0.48) and P = (0.178, 0.322, 0.34, 0.16).
    eta = update(g, g.pi, 0)
    np.testing.assert_allclose(eta, [1 / 3, 0.0, 0.2], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(g, eta), [0.34, 0.16, 0.25, 0.25], atol=1e-12)
    eta = update(g, eta, 2)
    np.testing.assert_allclose(eta, [1 / 3, 0.2, -0.16], atol=1e-12)
    np.testing.assert_allclose(next_token_probs(g, eta), [0.178, 0.322, 0.34, 0.16], atol=1e-12)
    golden = [np.log(4), 1.353155499626, 1.334124681909, 1.321358399135, 1.312821941462, 1.306818313932]
    np.testing.assert_allclose(position_entropies(g, 6), golden, atol=1e-11)


def test_all_sequences_order():
    np.testing.assert_array_equal(all_sequences(2, 2), [[0, 0], [0, 1], [1, 0], [1, 1]])
    assert all_sequences(3, 0).shape == (1, 0)
