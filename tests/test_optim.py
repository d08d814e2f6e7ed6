"""The optimizer rule: which parameters Muon updates, at which lr, and one schedule for both optimizers."""

import pytest
import torch

from factored import optim
from factored.config import make_config
from factored.models import build_model


@pytest.mark.parametrize(
    "arch, muon_names",
    [
        ("transformer", {"attn.qkv.weight", "attn.proj.weight", "mlp.fc.weight", "mlp.proj.weight"}),
        ("lstm", {"cell.weight_ih_l0", "cell.weight_hh_l0"}),
        ("gru", {"cell.weight_ih_l0", "cell.weight_hh_l0"}),
    ],
)
def test_muon_gets_the_hidden_matrices_and_adamw_everything_else(arch, muon_names):
    model = build_model(
        arch=arch, d_model=16, n_layers=2, **({"n_heads": 2, "d_mlp": 32} if arch == "transformer" else {})
    )
    matrices, others = optim.muon_parameters(model)
    name_of = {id(p): n for n, p in model.named_parameters()}
    muon = [name_of[id(p)] for p in matrices]
    assert {n.split(".", 2)[2] for n in muon} == muon_names and len(muon) == 2 * len(muon_names)  # 2 layers
    assert all(p.ndim == 2 for p in matrices)
    adamw = {name_of[id(p)] for p in others}
    assert {"embed.weight", "unembed.weight", "unembed.bias"} <= adamw  # input and output layers stay on AdamW
    assert all(p.ndim == 1 for n, p in model.named_parameters() if n in adamw and "embed" not in n)
    assert len(matrices) + len(others) == len(list(model.parameters()))


def test_muon_and_adamw_learning_rates_follow_one_schedule():
    cfg = make_config("smoke", optimizer="muon", lr=1e-3, muon_lr=4e-3, schedule="cosine", warmup_steps=2, steps=10)
    model = build_model(cfg.model, 433, 9)
    adamw, muon = optim.make_optimizers(model, cfg.train)
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, torch.optim.Muon)
    assert muon.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw" and muon.param_groups[0]["weight_decay"] == 0
    schedulers = [optim.make_scheduler(o, cfg.train) for o in (adamw, muon)]
    ratios = []
    for _ in range(6):
        for o, s in zip((adamw, muon), schedulers, strict=True):
            o.step()  # no gradients: a step that changes nothing, in the order torch expects
            s.step()
        ratios.append(muon.param_groups[0]["lr"] / adamw.param_groups[0]["lr"])
    assert ratios == pytest.approx([4.0] * 6)
    assert [type(o) for o in optim.make_optimizers(model, make_config("smoke").train)] == [torch.optim.AdamW]


def test_muon_settings_need_the_muon_optimizer():
    with pytest.raises(ValueError, match=r"muon_lr must be left at None unless optimizer is 'muon', got 0.01"):
        make_config("smoke", muon_lr=0.01)
    with pytest.raises(ValueError, match=r"optimizer must be one of \('adamw', 'muon'\), got 'sgd'"):
        make_config("smoke", optimizer="sgd")
    assert make_config("smoke").hash() == make_config("smoke", optimizer="adamw").hash()  # old run folders kept
    assert make_config("smoke").hash() != make_config("smoke", optimizer="muon").hash()
