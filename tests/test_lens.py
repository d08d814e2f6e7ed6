"""TransformerLens interop: our transformer -> HookedTransformer -> ours computes the same logits and sites."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer, HookedTransformerConfig

from factored import lens, probing, products, sampling
from factored.models import build_model

# TransformerLens 3.x deprecates HookedTransformer for 4.0, which removes it (the requirements pin 3.x)
pytestmark = [
    pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("one_thread"),  # tiny models
]
TOL = 1e-5  # float32: the two implementations order their sums differently


def randomised(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Every parameter redrawn (biases and LayerNorms too), so that a weight mapped to the wrong place shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def ours(vocab: int = 11, n_ctx: int = 6, **kw) -> torch.nn.Module:
    args = dict(d_model=12, n_layers=2, n_heads=3, d_mlp=24, act="relu") | kw
    return randomised(build_model(vocab_size=vocab, n_ctx=n_ctx, **args)).eval()


def inputs(vocab: int, n_ctx: int, b: int = 5, seed: int = 0) -> torch.Tensor:
    """[b, n_ctx] tokens with BOS (the last id) first, as our transformers read them."""
    x = torch.randint(0, vocab - 1, (b, n_ctx), generator=torch.Generator().manual_seed(seed))
    x[:, 0] = vocab - 1
    return x


SHAPES = {
    "tiny relu": dict(),
    "wider, deeper, gelu": dict(d_model=16, n_layers=3, n_heads=2, d_mlp=40, act="gelu"),
    "the paper's": dict(vocab=433, n_ctx=9, d_model=120, n_layers=4, n_heads=3, d_mlp=480, act="relu"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_export_computes_the_same_logits_and_sites(shape):
    kw = dict(SHAPES[shape])
    vocab, n_ctx = kw.pop("vocab", 11), kw.pop("n_ctx", 6)
    model = ours(vocab, n_ctx, **kw)
    hooked = lens.to_hooked(model)
    c = hooked.cfg
    assert (c.d_model, c.n_layers, c.n_heads, c.d_head, c.d_vocab, c.n_ctx) == (
        model.config.d_model, model.config.n_layers, model.config.n_heads,
        model.config.d_model // model.config.n_heads, vocab, n_ctx,
    )  # fmt: skip
    assert c.normalization_type == "LN" and c.positional_embedding_type == "standard" and not c.default_prepend_bos
    expected = ["hook_embed", "hook_pos_embed", "ln_final.hook_normalized"]
    expected += [f"blocks.{i}.hook_resid_{s}" for i in range(c.n_layers) for s in ("pre", "mid", "post")]
    assert sorted(lens.shared_sites(model, hooked)) == sorted(expected) == sorted(model.sites)
    diffs = lens.site_differences(model, hooked, inputs(vocab, n_ctx))
    assert set(diffs) == {"logits", *expected}
    assert max(diffs.values()) <= TOL, diffs
    # the same logits as TransformerLens' plain forward, BOS included, and the sequence shortened
    x = inputs(vocab, n_ctx, seed=1)[:, : n_ctx - 2]
    with torch.no_grad():
        torch.testing.assert_close(hooked(x), model(x)[0], atol=TOL, rtol=0)


def test_hook_normalized_is_before_the_affine_map_in_both():
    model = ours()
    hooked = lens.to_hooked(model)
    x = inputs(11, 6)
    with torch.no_grad():
        _, cache = hooked.run_with_cache(x)
        normalized = model(x, capture=["ln_final.hook_normalized"])[1]["ln_final.hook_normalized"]
    resid = cache["blocks.1.hook_resid_post"]
    centred = resid - resid.mean(-1, keepdim=True)
    scale = cache["ln_final.hook_scale"]
    torch.testing.assert_close(cache["ln_final.hook_normalized"], centred / scale)
    torch.testing.assert_close(normalized, centred / scale, atol=TOL, rtol=0)
    assert (model.ln_final.weight - 1).abs().max() > 0.1  # a LayerNorm whose affine map is not the identity


def test_round_trip_gives_back_the_same_weights_exactly():
    model = ours(d_model=16, n_layers=3, n_heads=4, d_mlp=20, act="gelu")
    back = lens.from_hooked(lens.to_hooked(model))
    assert back.config == model.config and (back.vocab_size, back.n_ctx) == (model.vocab_size, model.n_ctx)
    a, b = model.state_dict(), back.state_dict()
    assert list(a) == list(b)
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=0, rtol=0, msg=name)


def hooked_model(**kw) -> HookedTransformer:
    args = dict(d_model=12, n_layers=2, n_heads=3, d_head=4, d_mlp=24, d_vocab=11, n_ctx=6, act_fn="relu")
    cfg = HookedTransformerConfig(**(args | kw), default_prepend_bos=False, seed=0, device="cpu")
    return randomised(HookedTransformer(cfg), seed=1).eval()


@pytest.mark.parametrize("kw", [{}, dict(d_model=20, n_layers=3, n_heads=5, d_head=4, d_mlp=32, act_fn="gelu")])
def test_import_computes_the_same_logits_and_sites(kw):
    hooked = hooked_model(**kw)
    model = lens.from_hooked(hooked)
    assert model.config.d_model == hooked.cfg.d_model and model.config.act == hooked.cfg.act_fn
    diffs = lens.site_differences(model, hooked, inputs(11, 6))
    assert len(diffs) == 1 + 3 + 3 * hooked.cfg.n_layers and max(diffs.values()) <= TOL, diffs


def test_transformer_lens_gelu_is_torchs_exact_gelu():
    mlp = hooked_model(act_fn="gelu").blocks[0].mlp
    x = torch.linspace(-4, 4, 101)
    torch.testing.assert_close(mlp.act_fn(x), F.gelu(x), atol=0, rtol=0)
    assert (mlp.act_fn(x) - F.gelu(x, approximate="tanh")).abs().max() > 1e-4  # the tanh one would differ


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(normalization_type="RMS"), "normalization_type"),
        (dict(positional_embedding_type="rotary"), "positional_embedding_type"),
        (dict(act_fn="gelu_new"), "act_fn"),
        (dict(attn_only=True), "attn_only"),
        (dict(d_vocab_out=7), "d_vocab_out"),
        (dict(eps=1e-6), "eps"),
        (dict(d_head=3), "d_head"),
    ],
)
def test_import_refuses_what_our_transformer_cannot_compute(kw, field):
    cfg = HookedTransformerConfig(
        **(dict(d_model=12, n_layers=1, n_heads=3, d_head=4, d_mlp=24, d_vocab=11, n_ctx=6, act_fn="relu") | kw)
    )
    with pytest.raises(ValueError, match=field):
        lens.from_hooked(HookedTransformer(cfg))


def test_recurrent_nets_are_refused_in_one_line():
    for arch in ("rnn", "lstm", "gru"):
        with pytest.raises(ValueError, match="only the transformer") as e:
            lens.to_hooked(build_model(arch=arch, d_model=8, n_layers=1, vocab_size=11, n_ctx=6))
        assert "\n" not in str(e.value)


def test_activations_through_run_with_cache_match_probing_activations():
    process = products.paper_process()
    model = ours(process.model_vocab_size, 9, d_model=24, n_layers=2, n_heads=2, d_mlp=32)
    hooked = lens.to_hooked(model)
    tokens, _ = sampling.sample(process, 32, 8, seed=0)
    for site in ("blocks.1.hook_resid_post", "ln_final.hook_normalized"):
        mine = probing.activations(model, process, tokens, site)
        theirs = lens.activations(hooked, process, tokens, site, batch_size=10)
        assert theirs.shape == mine.shape == (32, 7, 24) and theirs.dtype == np.float32
        np.testing.assert_allclose(theirs, mine, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="site"):
        lens.activations(hooked, process, tokens, "blocks.9.hook_resid_post")
