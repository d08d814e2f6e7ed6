"""The torch side of the analysis: vary-one sequences, activation/belief pairing, caching across a run."""

import json

import numpy as np
import pytest
import torch

from factored import analysis, probing, products, sampling
from factored.config import make_config
from factored.models import build_model
from factored.train import get_or_train

PROCESS = products.paper_process()


def test_vary_one_freezes_every_other_factor_within_a_setting():
    tokens = probing.vary_one_tokens(PROCESS, factor=3, n_settings=4, n_sequences=50, seq_len=8, seed=0)
    assert tokens.shape == (4, 50, 8)
    parts = products.decode(PROCESS, tokens)  # [4, 50, 8, 5]
    others = [n for n in range(5) if n != 3]
    assert (parts[..., others] == parts[:, :1, :, others]).all()  # constant across sequences of a setting
    assert (parts[:, 0, :, others] != parts[:1, 0, :, others]).any()  # but differs between settings
    assert len(torch.unique(parts[0, :, :, 3], dim=0)) > 40  # the probed factor varies freely


def test_activations_drop_bos_and_pair_with_beliefs_after_the_same_tokens():
    torch.manual_seed(0)
    model = build_model(arch="transformer", d_model=16, n_layers=2, n_heads=2, d_mlp=32).eval()
    tokens, beliefs = sampling.sample(PROCESS, 10, 8, seed=1)
    acts = probing.activations(model, PROCESS, tokens, "blocks.1.hook_resid_post", batch_size=3)
    assert acts.shape == (10, 7, 16)  # BOS dropped; positions after x1..x7
    with torch.no_grad():
        inputs = products.add_bos(PROCESS, tokens)[:, :-1]
        full = model(inputs, capture=["blocks.1.hook_resid_post"])[1]["blocks.1.hook_resid_post"]
    np.testing.assert_allclose(acts, full[:, 1:].numpy(), rtol=1e-6)
    paired = probing.paired_beliefs(beliefs, 8)
    assert [b.shape for b in paired] == [(10, 7, 3)] * 5
    np.testing.assert_allclose(paired[0][:, 0], beliefs[0][:, 1].double().numpy())  # after exactly x1
    probed = probing.probe(model, PROCESS, probing.ProbeData(tokens, beliefs), "blocks.1.hook_resid_post")
    assert probed.flat_acts.shape == (70, 16) and [b.shape for b in probed.flat_beliefs] == [(70, 3)] * 5
    np.testing.assert_array_equal(probed.flat_acts[7], acts[1, 0])  # row = sequence x 7 + position
    np.testing.assert_array_equal(probed.flat_beliefs[4][8], paired[4][1, 1])

    rnn = build_model(arch="lstm", d_model=8, n_layers=1, n_ctx=9)
    assert probing.activations(rnn, PROCESS, tokens, "rnn.0.hidden").shape == (10, 7, 8)  # inputs x1..x7, no BOS


def test_run_analysis_is_cached_and_only_missing_steps_are_computed(tmp_path, monkeypatch):
    cfg = make_config("smoke", steps=3, d_model=8, n_heads=1, d_mlp=8, batch_size=16, eval_batch_size=32)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    acfg = probing.analysis_config("smoke")
    first = probing.analyze_run(run, acfg, steps=[0, 3], progress=False)
    assert set(first) == {0, 3} and first[3].dims95 >= 1 and len(first[3].rmse) == 5

    calls = []
    real = probing.trajectory_point
    monkeypatch.setattr(probing, "trajectory_point", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = probing.analyze_run(run, acfg, progress=False)  # steps 0..3: only 1 and 2 are new
    assert len(calls) == 2 and again[3] == first[3]
    cache = json.loads(next((run.dir / "analysis").glob("trajectory-*.json")).read_text())
    assert sorted(map(int, cache)) == [0, 1, 2, 3]


def test_token_features_mark_the_newest_and_previous_sub_tokens():
    tokens, _ = sampling.sample(PROCESS, 6, 8, seed=2)
    parts = products.decode(PROCESS, tokens).numpy()  # [6, 8, 5]
    newest = probing.token_features(PROCESS, tokens).reshape(6, 7, 17)
    previous = probing.token_features(PROCESS, tokens, lag=1).reshape(6, 7, 17)
    offsets = np.cumsum([0, 3, 3, 3, 4])

    def marked(hot, sub_tokens):
        return np.take_along_axis(hot, sub_tokens[..., None], axis=-1)[..., 0]

    for n, offset in enumerate(offsets):
        # position p has read x_1..x_{p+1}: its newest token is tokens[:, p]
        assert (marked(newest[..., offset:], parts[:, :7, n]) == 1).all()
        assert (marked(previous[:, 1:, offset:], parts[:, :6, n]) == 1).all()
    assert newest.sum(-1).tolist() == [[5] * 7] * 6
    assert (previous[:, 0] == 0).all()  # nothing before the first token


def test_variance_decomposition_runs_on_a_model():
    torch.manual_seed(0)
    model = build_model(arch="transformer", d_model=16, n_layers=1, n_heads=2, d_mlp=32).eval()
    data = probing.probe_data(PROCESS, 1000, 8, seed=3)
    rows = probing.variance_decomposition(probing.probe(model, PROCESS, data, model.default_site), PROCESS, data.tokens)
    assert [r["features"] for r in rows][0] == "beliefs (linear)" and len(rows) == 7
    r2 = [r["r2"] for r in rows]
    assert all(0 <= v <= 1 for v in r2)
    # an untrained network carries its newest token's random embedding: not additive over factors, so only the
    # joint token identity explains it
    assert r2[3] > r2[2] + 0.2


def test_the_joint_belief_gain_separates_factored_from_joint_activations():
    """Known answer, with the feature chain of `variance_decomposition` (token features before the joint belief):
    activations that are a linear map of the concatenated beliefs gain nothing from the joint belief; for a
    linear map of the joint belief (outer product) the joint token identity explains much, but not all of what
    the joint belief does (the belief depends on more than the newest token)."""
    from factored import analysis, products

    process = products.mess3_factors(2)
    data = probing.probe_data(process, 1500, 8, seed=1)
    beliefs = [b.reshape(-1, b.shape[-1]) for b in probing.paired_beliefs(data.beliefs, 8)]
    concat, joint = np.hstack(beliefs), analysis.joint_belief(beliefs)
    rng = np.random.default_rng(0)
    sets = {
        "beliefs": concat,
        "+ newest token, per factor": probing.token_features(process, data.tokens),
        "+ newest token, joint identity": analysis.one_hot(data.tokens[:, :7].reshape(-1).numpy(), 9),
        "+ previous token, per factor": probing.token_features(process, data.tokens, lag=1),
        "+ joint belief": joint,
    }
    for acts, expect_gain in ((concat @ rng.normal(size=(6, 12)), False), (joint @ rng.normal(size=(9, 12)), True)):
        rows = analysis.variance_explained(acts, sets)
        gain = rows[-1]["r2"] - rows[-2]["r2"]
        assert (gain > 0.05) if expect_gain else (abs(gain) < 1e-6 and rows[0]["r2"] > 1 - 1e-6)


def test_overlap_split_separates_orthogonal_beliefs_from_shared_extra_directions():
    eye = np.eye(12)
    shared = eye[10:12]  # both factors' 3rd and 4th directions are the same two directions
    a, b = np.vstack([eye[0:2], shared]), np.vstack([eye[2:4], shared])
    split = analysis.overlap_split([a, b], own=2, k=4)
    assert split == {"k": 4, "at_k": 0.5, "head": 0.0, "tail": 1.0}
    with pytest.raises(ValueError, match="own must be in 1..k-1"):
        analysis.overlap_split([a, b], own=4, k=4)


def test_variance_parts_are_the_increments_of_the_nested_models_and_sum_to_one():
    names = list(probing.VARIANCE_PARTS)
    r2 = [0.5, 0.7, 0.8, 0.79, 0.85, 0.9, 0.9]  # cumulative, as variance_decomposition gives them
    parts = probing.variance_parts([{"features": n, "r2": v} for n, v in zip(names, r2, strict=True)])
    expected = {"beliefs": 0.5, "position": 0.2, "tokens": 0.15, "within-factor": 0.05, "joint belief": 0.0,
                "unexplained": 0.1}  # fmt: skip
    assert list(parts) == list(expected) and parts == pytest.approx(expected)
    assert sum(parts.values()) == pytest.approx(1.0)
