"""The sparse-autoencoder baseline: the TopK SAE's invariants, the same SAE trained by SAELens, and one quick scored
run of each on known factors."""

import numpy as np
import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig

from factored import discovery_eval, ghmm, processes, sae


@pytest.fixture(scope="module")
def data():
    """Rows of a small known answer: a Mess3 and a Bloch factor's true beliefs in 16 dims, [400 * 7, 16] after
    `sae.prepare`, with the beliefs and the true subspaces."""
    rng = np.random.default_rng(0)
    beliefs = []
    for g in (processes.mess3(0.15, 0.6), processes.bloch_walk(1.0, 3.0)):
        eta, out = np.tile(g.pi, (400, 1)), []
        for _ in range(7):
            cdf = np.cumsum(np.clip(ghmm.next_token_probs(g, eta), 0, None), axis=1)
            x = np.minimum((rng.uniform(size=(400, 1)) * cdf[:, -1:] > cdf).sum(axis=1), cdf.shape[1] - 1)
            eta = ghmm.update(g, eta, x)
            out.append(eta)
        beliefs.append(np.stack(out, axis=1))
    acts, truth = discovery_eval.synthetic_activations(beliefs, d=16)
    return acts, beliefs, truth


@pytest.fixture(scope="module")
def trained(data):
    x, _ = sae.prepare(data[0])
    return x, sae.train_sae(x, n_latents=32, k=3, steps=400, seed=1)


def test_prepare_centres_positions_and_scales_to_unit_norm(data):
    x, scale = sae.prepare(data[0])
    assert x.shape == (400 * 7, 16) and scale > 0
    assert np.mean((x**2).sum(axis=1)) == pytest.approx(1.0)
    np.testing.assert_allclose(x.reshape(400, 7, 16).mean(axis=0), 0, atol=1e-10)


def test_training_reduces_the_reconstruction_error(trained):
    x, model = trained
    assert model.losses[-50:].mean() < 0.2 * model.losses[:10].mean()
    recon = sae.decode(model, sae.encode(model, x))
    assert ((recon - x) ** 2).sum() < 0.2 * ((x - x.mean(axis=0)) ** 2).sum()


def test_topk_keeps_exactly_k_latents_and_decoder_rows_are_unit(trained):
    x, model = trained
    codes = sae.encode(model, x)
    assert codes.shape == (len(x), 32) and (codes >= 0).all()
    assert ((codes > 0).sum(axis=1) <= 3).all() and ((codes > 0).sum(axis=1) == 3).mean() > 0.99
    np.testing.assert_allclose(np.linalg.norm(model.W_dec, axis=1), 1, atol=1e-5)
    pre = np.array([[0.5, -1.0, 2.0, 0.1]], dtype=np.float32)  # the top 2 kept, in place
    np.testing.assert_array_equal(sae._topk(torch.from_numpy(pre), 2).numpy(), [[0.5, 0, 2.0, 0]])


def test_the_same_seed_trains_the_same_sae(trained):
    x, model = trained
    again = sae.train_sae(x, n_latents=32, k=3, steps=400, seed=1)
    np.testing.assert_array_equal(again.W_dec, model.W_dec)
    np.testing.assert_array_equal(again.losses, model.losses)
    with pytest.raises(ValueError, match="k must be"):
        sae.train_sae(x, n_latents=4, k=5)


def test_sae_subspaces_are_scored_like_discovery(data):
    acts, beliefs, truth = data
    found = sae.sae_factors(acts, n_clusters=2, n_latents=32, k=3, steps=400)
    assert found.n_factors == len(found.clusters) <= 2 and found.fvu < 0.2
    for s in found.subspaces:
        np.testing.assert_allclose(s @ s.T, np.eye(len(s)), atol=1e-8)  # orthonormal, as discovery's
    score = discovery_eval.score_against_truth(found.subspaces, acts, beliefs, truth)
    assert score["n_true"] == 2 and score["n_found"] == found.n_factors
    assert set(score["table"]) == {"factor", "found", "overlap", "r2_subspace", "r2_full", "ratio"}
    assert min(score["table"]["r2_full"]) > 0.95


@pytest.fixture(scope="module")
def trained_by_saelens(data):
    x, _ = sae.prepare(data[0])
    return x, sae.train_saelens(x, n_latents=32, k=3, steps=400, seed=1)


def test_saelens_trains_a_topk_sae_that_reconstructs_as_saelens_computes(trained_by_saelens):
    x, model = trained_by_saelens
    assert model.W_enc.shape == (16, 32) and model.W_dec.shape == (32, 16) and model.k == 3
    assert len(model.losses) == 400 and model.losses[-50:].mean() < 0.2 * model.losses[:10].mean()
    np.testing.assert_allclose(np.linalg.norm(model.W_dec, axis=1), 1, atol=1e-5)  # norms folded into the encoder
    codes = sae.encode(model, x)
    assert ((codes > 0).sum(axis=1) <= 3).all() and ((codes > 0).sum(axis=1) == 3).mean() > 0.99
    recon = sae.decode(model, codes)
    assert ((recon - x) ** 2).sum() < 0.2 * ((x - x.mean(axis=0)) ** 2).sum()
    # SAELens' own inference SAE with these weights gives the same reconstruction as our encode/decode
    theirs = TopKSAE(TopKSAEConfig(d_in=16, d_sae=32, k=3))
    theirs.load_state_dict({name: torch.from_numpy(getattr(model, name)) for name in sae.SAE_WEIGHTS})
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(), recon, atol=1e-5)


def test_saelens_training_is_seeded_and_leaves_the_global_rng_alone(trained_by_saelens):
    x, model = trained_by_saelens
    state = torch.random.get_rng_state()
    again = sae.train_saelens(x, n_latents=32, k=3, steps=400, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(again.W_dec, model.W_dec)
    np.testing.assert_array_equal(again.losses, model.losses)
    other = sae.train_saelens(x, n_latents=32, k=3, steps=20, seed=2)
    assert not np.array_equal(other.W_dec, model.W_dec) and len(other.losses) == 20
    with pytest.raises(ValueError, match="k must be"):
        sae.train_saelens(x, n_latents=4, k=5)


def test_saelens_subspaces_recover_the_known_factors(data):
    acts, beliefs, truth = data
    found = sae.sae_factors(acts, n_clusters=2, trainer="saelens", n_latents=32, k=3, steps=400)
    assert isinstance(found, sae.SAEFactors) and found.n_factors == 2 and found.fvu < 0.2
    for s in found.subspaces:
        np.testing.assert_allclose(s @ s.T, np.eye(len(s)), atol=1e-8)
    score = discovery_eval.score_against_truth(found.subspaces, acts, beliefs, truth)
    assert score["n_recovered"] == 2 and score["n_spurious"] == 0
    assert min(score["table"]["ratio"]) > 0.5  # each factor's belief read from its found subspace
