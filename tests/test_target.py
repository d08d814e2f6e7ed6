"""The `law` target: the exact next-token law as the training target, against the sampled tokens it replaces."""

import pytest
import torch

from factored import products, runs, sampling
from factored import train as train_mod
from factored.config import make_config
from factored.models import build_model
from factored.products import inputs_and_targets
from factored.runs import open_run
from factored.train import get_or_train, law_targets, per_position_loss

PROCESSES = {
    "independent": products.paper_process(),
    "chain": products.paper_process("chain"),
    "independent eps 0.2": products.paper_process(noise=0.2),
    "chain eps 0.5": products.paper_process("chain", noise=0.5),
}


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("uses_bos", [True, False], ids=["bos", "no-bos"])
def test_the_law_target_is_a_distribution_with_no_mass_on_bos(name, uses_bos):
    process = PROCESSES[name]
    tokens, beliefs = sampling.sample(process, 64, 8, seed=1)
    law = law_targets(process, beliefs, uses_bos)
    assert law.shape == (64, 8 if uses_bos else 7, process.model_vocab_size)
    assert (law >= 0).all() and torch.allclose(law.sum(-1), torch.ones(law.shape[:2]), atol=1e-5)
    assert (law[..., process.bos_token] == 0).all()
    # every observed next token has positive probability under its law (the target covers the data)
    _, targets = inputs_and_targets(process, tokens, uses_bos)
    assert (law.gather(-1, targets[..., None]) > 0).all()


def resampled_targets(law: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n one-hot targets per position drawn from `law` [B, T, V]: [n, B, T]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.multinomial(law.flatten(0, 1), n, replacement=True, generator=gen).T.reshape(n, *law.shape[:2])


@pytest.mark.parametrize("uses_bos", [True, False], ids=["transformer", "rnn"])
def test_the_law_loss_and_gradient_are_the_mean_of_the_token_ones_over_resampled_targets(uses_bos):
    # The law is E[one-hot target | context]: the token loss averaged over targets resampled from it converges to the
    # law loss, value and gradient, within the Monte-Carlo error.
    process = products.paper_process(noise=0.1)
    torch.manual_seed(0)
    sizes = dict(arch="transformer", n_heads=1, d_mlp=16) if uses_bos else dict(arch="gru")
    model = build_model(d_model=8, n_layers=1, vocab_size=process.model_vocab_size, n_ctx=9, **sizes)
    tokens, beliefs = sampling.sample(process, 8, 8, seed=2)
    inputs, _ = inputs_and_targets(process, tokens, model.uses_bos)
    law = law_targets(process, beliefs, model.uses_bos)

    def loss_and_grad(targets):
        model.zero_grad()
        loss = per_position_loss(model, inputs, targets).mean()
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    exact_loss, exact_grad = loss_and_grad(law)
    n = 400
    draws = [loss_and_grad(t) for t in resampled_targets(law, n, seed=3)]
    losses = torch.tensor([d[0] for d in draws])
    grads = torch.stack([d[1] for d in draws])
    assert abs(losses.mean().item() - exact_loss) < 4 * losses.std().item() / n**0.5
    standard_error = grads.std(0) / n**0.5
    z = (grads.mean(0) - exact_grad) / standard_error.clamp_min(1e-12)
    assert (z.abs() < 5).float().mean() > 0.99  # each coordinate within 5 standard errors (a few tails at most)
    assert (z.abs() < 2).float().mean() > 0.85  # and distributed like a standard error, not a biased mean
    # the sampled target's noise is what the law removes: one draw's gradient is far from the exact one
    assert (grads[0] - exact_grad).norm() > 3 * (grads.mean(0) - exact_grad).norm()


def test_target_is_a_checked_hashed_run_field():
    assert make_config("smoke").train.target == "tokens"
    assert make_config("smoke").hash() == make_config("smoke", target="tokens").hash()  # old run folders kept
    assert make_config("smoke").hash() != make_config("smoke", target="law").hash()
    with pytest.raises(ValueError, match=r"target must be one of \('tokens', 'law'\), got 'soft'"):
        make_config("smoke", target="soft")
    assert make_config("paper").train.target == "tokens"  # the authors' one-hot targets


def tiny_law(arch: str = "transformer", **overrides):
    sizes = dict(n_heads=1, d_mlp=16, init="gpt2") if arch == "transformer" else {}
    base = dict(arch=arch, d_model=8, n_layers=1, steps=25, batch_size=32, eval_batch_size=64, plateau_window=5,
                lr=1e-2, device="cpu", target="law", **sizes)  # fmt: skip
    return make_config("smoke", **{**base, **overrides})


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_law_training_resumes_exactly_and_compares_with_token_training(tmp_path, arch):
    cfg = tiny_law(arch, noise=0.2)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False)
    cut = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    for step in cut.steps:
        if step > 12:
            runs.checkpoint_path(cut.dir, step).unlink()
    resumed = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    assert [m["eval_loss"] for m in resumed.metrics()] == [m["eval_loss"] for m in whole.metrics()]
    assert [m["train_loss"] for m in resumed.metrics()][1:] == [m["train_loss"] for m in whole.metrics()][1:]
    # a law run and a token run of one seed share their data stream and held-out batch, so their gaps compare
    tokens = get_or_train(tiny_law(arch, noise=0.2, target="tokens"), root=tmp_path / "tokens", progress=False)
    assert tokens.metrics()[-1]["eval_optimum"] == whole.metrics()[-1]["eval_optimum"]
    assert tokens.metrics()[-1]["eval_loss"] != whole.metrics()[-1]["eval_loss"]
    assert open_run(cfg, tmp_path / "whole").config.train.target == "law"


def test_a_law_step_equals_the_law_loss_of_the_batch(tmp_path):
    # the logged training loss of a law run is the cross-entropy against the law of that very batch
    cfg = tiny_law(steps=3)
    session = train_mod.setup(cfg, tmp_path)
    tokens, beliefs = sampling.sample(session.run.process, 32, 8, seed=5)
    inputs, _ = inputs_and_targets(session.run.process, tokens, True)
    with torch.no_grad():
        expected = per_position_loss(session.model, inputs, law_targets(session.run.process, beliefs, True)).mean()
    assert train_mod.train_step(session, tokens, beliefs) == pytest.approx(expected.item(), rel=1e-6)
