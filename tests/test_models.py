"""Tests for factored.models: shapes, named sites, causality, init, learning, validation."""

import math

import pytest
import torch
import torch.nn.functional as F

from factored.models import ModelConfig, build_model, model_config, n_params

ARCHS = ("transformer", "rnn", "lstm", "gru")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


V, T, B = 11, 6, 4


def tiny(arch: str, **kw):
    torch.manual_seed(0)
    args = dict(arch=arch, vocab_size=V, n_ctx=T, d_model=12, n_layers=2, n_heads=3, d_mlp=24, act="relu")
    return build_model(**(args | kw))


def tokens(b: int = B, t: int = T, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def test_paper_transformer_parameter_count():
    model = build_model(ModelConfig("transformer", 120, 4, 3, 480, "relu"), 433, 9)
    # per block: qkv 120*360+360, out 120*120+120, mlp 120*480+480 + 480*120+120, two LNs 4*120
    block = 120 * 360 + 360 + 120 * 120 + 120 + 120 * 480 + 480 + 480 * 120 + 120 + 4 * 120
    embed = 433 * 120 + 9 * 120 + 2 * 120 + 120 * 433 + 433  # tok, pos, ln_final, unembed
    assert n_params(model) == 4 * block + embed == 803_113
    assert model.default_site == "blocks.3.hook_resid_post" and model.uses_bos and model.n_ctx == 9


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_capture_every_site(arch):
    model = tiny(arch)
    x = tokens()
    logits, acts = model(x)
    assert logits.shape == (B, T, V) and acts == {}
    logits2, acts = model(x, capture=model.sites)
    torch.testing.assert_close(logits2, logits)  # capturing does not change the computation
    assert list(acts) == model.sites and model.default_site in model.sites
    for site, a in acts.items():
        assert a.shape == (B, T, 12), site
    assert model.uses_bos == (arch == "transformer")
    if arch != "transformer":
        assert model.sites == ["rnn.0.hidden", "rnn.1.hidden"] and model.default_site == "rnn.1.hidden"
        torch.testing.assert_close(model.unembed(acts["rnn.1.hidden"]), logits)


def test_transformer_site_names_and_values():
    model = tiny("transformer")
    with torch.no_grad():  # a final LayerNorm that is not the identity map, so before and after its affine map differ
        model.ln_final.weight.uniform_(0.5, 2.0)
        model.ln_final.bias.normal_()
    expected = ["hook_embed", "hook_pos_embed"]
    expected += [f"blocks.{i}.hook_resid_{s}" for i in range(2) for s in ("pre", "mid", "post")]
    assert model.sites == expected + ["ln_final.hook_normalized"]
    logits, a = model(tokens(), capture=model.sites)
    torch.testing.assert_close(a["hook_embed"] + a["hook_pos_embed"], a["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(a["blocks.0.hook_resid_post"], a["blocks.1.hook_resid_pre"])
    block = model.blocks[1]
    mid = a["blocks.1.hook_resid_pre"] + block.attn(block.ln1(a["blocks.1.hook_resid_pre"]))
    torch.testing.assert_close(mid, a["blocks.1.hook_resid_mid"])
    # ln_final.hook_normalized is TransformerLens' site: centred, divided by the scale, before the affine map
    resid = a["blocks.1.hook_resid_post"]
    centred = resid - resid.mean(-1, keepdim=True)
    by_hand = centred / (centred.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(a["ln_final.hook_normalized"], by_hand, atol=1e-6, rtol=0)
    final = model.ln_final.weight * a["ln_final.hook_normalized"] + model.ln_final.bias
    torch.testing.assert_close(final, F.layer_norm(resid, (12,), model.ln_final.weight, model.ln_final.bias))
    torch.testing.assert_close(model.unembed(final), logits)
    # a single site given as a string is one site, not its characters
    assert list(model(tokens(), capture="hook_embed")[1]) == ["hook_embed"]


@pytest.mark.parametrize("arch", ARCHS)
def test_causal(arch):
    model = tiny(arch)
    x = tokens()
    logits = model(x)[0]
    for t in range(T):
        y = x.clone()
        y[:, t] = (y[:, t] + 1) % V
        changed = model(y)[0]
        torch.testing.assert_close(changed[:, :t], logits[:, :t])
        assert not torch.allclose(changed[:, t], logits[:, t])


def test_shorter_sequences_allowed_longer_rejected():
    model = tiny("transformer")
    x = tokens()
    assert model(x[:, :3])[0].shape == (B, 3, V)
    torch.testing.assert_close(model(x[:, :3])[0], model(x)[0][:, :3])
    for arch in ARCHS:
        with pytest.raises(ValueError, match="n_ctx"):
            tiny(arch)(tokens(t=T + 1))


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_recurrent_init(arch):
    model = tiny(arch, d_model=16)
    n_gates = {"rnn": 1, "lstm": 4, "gru": 3}[arch]
    for layer in model.rnn:
        cell = layer.cell
        assert cell.num_layers == 1 and cell.batch_first
        assert cell.weight_hh_l0.shape == (n_gates * 16, 16)
        for w in cell.weight_hh_l0.detach().split(16):
            torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)
        bias = (cell.bias_ih_l0 + cell.bias_hh_l0).detach()
        expected = torch.zeros(n_gates * 16)
        if arch == "lstm":
            expected[16:32] = 1.0  # forget gate (torch order i, f, g, o)
        torch.testing.assert_close(bias, expected)
        bound = math.sqrt(6 / (16 + n_gates * 16))  # xavier uniform on [gates*H, H]
        assert cell.weight_ih_l0.abs().max() <= bound
        assert cell.weight_ih_l0.std() > bound / 3
    if arch == "rnn":
        assert model.rnn[0].cell.nonlinearity == "tanh"


@pytest.mark.parametrize(("init", "std"), [("tl", 0.8 / math.sqrt(120)), ("gpt2", 0.02)])
def test_transformer_normal_inits(init, std):
    model = build_model(ModelConfig("transformer", 120, 4, 3, 480, "relu", init), 433, 9)
    for name, p in model.named_parameters():
        if name.endswith("bias") or "ln" in name:
            continue
        assert abs(p.std().item() - std) < 0.1 * std, name  # every weight matrix and both embeddings
    assert all(p.abs().max() == 0 for n, p in model.named_parameters() if n.endswith("bias") and "ln" not in n)
    assert all(torch.equal(p, torch.ones_like(p)) for n, p in model.named_parameters() if "ln" in n and "weight" in n)


def test_transformer_torch_init_keeps_pytorch_defaults():
    model = build_model(ModelConfig("transformer", 120, 4, 3, 480, "relu", "torch"), 433, 9)
    for emb in (model.embed, model.pos_embed):
        assert abs(emb.weight.std().item() - 1.0) < 0.1  # nn.Embedding: N(0, 1)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):  # kaiming-uniform(a=sqrt 5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1 / math.sqrt(module.in_features)
            assert (
                module.weight.abs().max() <= bound
                and abs(module.weight.std().item() - bound / math.sqrt(3)) < 0.1 * bound
            ), name
            assert module.bias.abs().max() <= bound and module.bias.abs().max() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_embed_std_sets_the_embeddings_only(arch):
    model = build_model(ModelConfig(arch, 120, 2, 3, 480, "relu", "gpt2", 0.5), 433, 9)
    embeddings = [model.embed] + ([model.pos_embed] if arch == "transformer" else [])
    for emb in embeddings:
        assert abs(emb.weight.std().item() - 0.5) < 0.05
    if arch == "transformer":
        assert abs(model.blocks[0].mlp.fc.weight.std().item() - 0.02) < 0.002  # the rest keeps its scheme


@pytest.mark.parametrize(("arch", "act"), [("transformer", "relu"), ("transformer", "gelu"), ("lstm", "relu")])
def test_overfits_a_fixed_batch(arch, act):
    model = tiny(arch, act=act, d_model=24, d_mlp=48)
    x = torch.randint(0, V, (8, T + 1), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = F.cross_entropy(model(x[:, :-1])[0].flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * math.log(V)


def test_compiles_without_graph_breaks():
    model = tiny("transformer")
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = tokens()
    torch.testing.assert_close(compiled(x)[0], model(x)[0])
    logits, acts = compiled(x, capture=("blocks.1.hook_resid_post",))
    torch.testing.assert_close(acts["blocks.1.hook_resid_post"], model(x, ("blocks.1.hook_resid_post",))[1][
        "blocks.1.hook_resid_post"])  # fmt: skip


def test_config_round_trip():
    model = tiny("gru", d_model=10)
    config = model_config(model)
    assert config["arch"] == "gru" and config["d_model"] == 10
    assert config["vocab_size"] == V and config["n_ctx"] == T and config["init"] == "tl"
    rebuilt = build_model(**config)
    assert rebuilt.config == model.config and (rebuilt.vocab_size, rebuilt.n_ctx) == (V, T)
    assert model.config == ModelConfig(**{k: v for k, v in config.items() if k not in ("vocab_size", "n_ctx")})


def test_bad_site_lists_valid_ones():
    model = tiny("lstm")
    with pytest.raises(ValueError, match=r"capture.*rnn\.0\.hidden"):
        model(tokens(), capture=["blocks.0.hook_resid_post"])


@pytest.mark.parametrize(
    ("kw", "param"),
    [
        ({"arch": "mamba"}, "arch"),
        ({"act": "tanh"}, "act"),
        ({"d_model": 10}, "n_heads"),  # 10 % 3 != 0
        ({"d_model": 0}, "d_model"),
        ({"n_layers": -1}, "n_layers"),
        ({"vocab_size": 2.0}, "vocab_size"),
        ({"n_ctx": True}, "n_ctx"),
        ({"d_mlp": 0}, "d_mlp"),
        ({"init": "xavier"}, "init"),
        ({"embed_std": -1.0}, "embed_std"),
    ],
)
def test_bad_config_names_parameter(kw, param):
    kw = dict(kw)
    with pytest.raises(ValueError, match=f"^{param} "):
        tiny(kw.pop("arch", "transformer"), **kw)


def test_recurrent_ignores_heads_divisibility():
    assert tiny("rnn", d_model=10).config.n_heads == 3
