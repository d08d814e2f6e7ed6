"""Checks against a known answer: synthetic activations with stated subspaces, and the scores of found ones."""

import numpy as np
import pytest
from test_discovery import N_SEQ, SEQ_LEN, beliefs  # noqa: F401  (the fixture: the five factors' true beliefs)

from factored import analysis, discovery, discovery_eval


def test_synthetic_activations_have_the_stated_subspaces(beliefs):  # noqa: F811
    acts, subspaces = discovery_eval.synthetic_activations(beliefs[:2], d=20, noise_std=0.0)
    assert acts.shape == (N_SEQ, SEQ_LEN - 1, 20) and [s.shape for s in subspaces] == [(2, 20), (2, 20)]
    centred = discovery.centre_positions(acts).reshape(-1, 20)
    inside = sum(analysis.project(centred, s, k=2, mean=np.zeros(20)) @ s for s in subspaces)
    np.testing.assert_allclose(inside, centred, atol=1e-6)  # all the variance lies in the two planes (float32)
    assert analysis.subspace_overlap(subspaces[0], subspaces[1], 2) < 1e-20  # orthogonal by construction


def test_match_subspaces_pairs_by_overlap():
    basis = np.eye(6)
    reference = [basis[0:2], basis[2:4], basis[4:6]]
    found = [basis[[4, 5]], basis[[0, 1]]]
    pairs, overlap = discovery_eval.match_subspaces(found, reference)
    assert pairs.tolist() == [[0, 2], [1, 0]] and overlap.shape == (2, 3)
    np.testing.assert_allclose(overlap[pairs[:, 0], pairs[:, 1]], 1)
    empty_pairs, empty = discovery_eval.match_subspaces([], reference)
    assert empty_pairs.shape == (0, 2) and empty.shape == (0, 3)


def test_subspace_r2_agrees_with_analysis():
    rng = np.random.default_rng(0)
    acts, V = rng.normal(size=(30, 6)), np.linalg.qr(rng.normal(size=(6, 2)))[0].T
    target = acts @ V.T @ rng.normal(size=(2, 3))
    r2 = analysis.belief_regression(acts, [target]).r2[0]
    assert discovery_eval.subspace_r2(acts, target, V) == pytest.approx(r2)


def test_the_true_subspaces_score_as_found_and_readouts_score_like_subspaces(beliefs):  # noqa: F811
    acts, truth = discovery_eval.synthetic_activations(beliefs[:2], seed=9)
    stray = np.linalg.qr(np.random.default_rng(0).normal(size=(acts.shape[-1], 2)))[0].T  # a plane of noise
    score = discovery_eval.score_against_truth([*truth, stray], acts, beliefs[:2], truth)
    assert score["n_found"] == 3 and score["n_recovered"] == 2 and score["n_spurious"] == 1
    assert score["table"]["found"] == [0, 1] and min(score["table"]["overlap"]) == pytest.approx(1)
    assert min(score["table"]["ratio"]) > 0.99 and "r2_readout" not in score["table"]
    # readouts are scored like subspaces: the same directions give the same numbers, crossed ones read nothing
    read = discovery_eval.score_against_truth(truth, acts, beliefs[:2], truth, readouts=truth)
    assert read["table"]["ratio_readout"] == read["table"]["ratio"]
    crossed = discovery_eval.score_against_truth(truth, acts, beliefs[:2], truth, readouts=truth[::-1])
    assert max(crossed["table"]["ratio_readout"]) < 0.5
    nothing = discovery_eval.score_against_truth([], acts, beliefs[:2], truth, readouts=[])
    assert nothing["n_recovered"] == 0 and np.isnan(nothing["table"]["r2_subspace"]).all()
    assert np.isnan(nothing["table"]["ratio_readout"]).all()  # nothing found: the column is there, all NaN
