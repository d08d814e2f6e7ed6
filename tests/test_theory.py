"""Noise theory (factored.theory): the noisy law's decomposition, the best factored readout and its cost, the joint
feature that recovers the law, and the planning table, each against brute force or Monte Carlo."""

import numpy as np
import pytest
import torch

from factored import theory
from factored.ghmm import next_token_probs
from factored.processes import bloch_walk, mess3
from factored.products import chain, decode, independent, paper_process
from factored.sampling import filter_beliefs, next_token_law, sample


def small(noise: float):
    """Mess3 x Bloch walk: 12 joint tokens, one factor of each kind."""
    return independent([mess3(0.05, 0.9), bloch_walk(1.0, 3.0)], noise=noise)


def contexts(process, n: int = 200, seq_len: int = 6, seed: int = 0) -> list[torch.Tensor]:
    """float64 beliefs before every token of n sampled sequences: list[N] of [n, L, S_n]."""
    tokens, _ = sample(process, n, seq_len, seed=seed)
    return [b[:, :seq_len] for b in filter_beliefs(process, decode(process, tokens), dtype=torch.float64)]


def brute_marginals_product(process, law: torch.Tensor) -> torch.Tensor:
    """The product of the law's per-factor marginals, by summing the joint table: [..., V] -> [..., V]."""
    Xs, N = process.factor_vocab_sizes, process.n_factors
    j = law.reshape(*law.shape[:-1], *Xs)
    lead = law.ndim - 1
    out = torch.ones_like(j)
    for n in range(N):
        out = out * j.sum(dim=tuple(lead + m for m in range(N) if m != n), keepdim=True)
    return out.reshape(law.shape)


@pytest.mark.parametrize("eps", [0.0, 0.2, 0.5, 1.0])
def test_the_decomposition_and_the_log_sum_exp_are_the_law(eps):
    process = small(eps)
    beliefs = contexts(process)
    laws, w = theory.mixture_parts(process, beliefs)
    assert w == pytest.approx(1 - eps)
    # each factor's law is the GHMM's own next-token probabilities
    for g, b, p in zip(process.factors, beliefs, laws, strict=True):
        np.testing.assert_allclose(p.numpy(), next_token_probs(g, b.numpy()), atol=1e-12)
    law = next_token_law(process, beliefs)
    product = torch.exp(theory.log_product(process, beliefs))
    np.testing.assert_allclose((w * product + (1 - w) / process.vocab_size).numpy(), law.numpy(), atol=1e-12)
    np.testing.assert_allclose(theory.noisy_log_law(process, beliefs).exp().numpy(), law.numpy(), atol=1e-12)


def test_joint_sum_follows_the_token_codec():
    process = small(0.0)
    terms = [torch.arange(3.0) * 10, torch.arange(4.0)]
    tokens = torch.arange(process.vocab_size)
    sub = decode(process, tokens)
    np.testing.assert_array_equal(theory.joint_sum(process, terms).numpy(), (sub[:, 0] * 10 + sub[:, 1]).numpy())


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_the_factored_readout_is_the_product_of_the_marginals_and_its_kl_the_fidelity_cost(eps):
    process = small(eps)
    beliefs = contexts(process)
    law = next_token_law(process, beliefs)
    readout = theory.factored_readout(process, beliefs)
    np.testing.assert_allclose(readout.numpy(), brute_marginals_product(process, law).numpy(), atol=1e-12)
    np.testing.assert_allclose(
        theory.kl(law, readout).numpy(), theory.total_correlation(process, law).numpy(), atol=1e-12
    )
    if eps == 0:
        assert theory.kl(law, readout).max() < 1e-12  # independent and noiseless: factoring is free


def test_one_joint_feature_recovers_the_law_exactly():
    process = small(0.3)
    beliefs = contexts(process)
    law = next_token_law(process, beliefs)
    c = theory.joint_correction(process, beliefs)
    assert (c >= 0).all()
    # factor-wise logits log p_n (+ a constant) plus the one joint feature c: a softmax gives the law exactly
    logits = theory.log_product(process, beliefs) + c
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), law.numpy(), atol=1e-12)
    assert theory.kl(law, torch.softmax(logits, -1)).max() < 1e-12
    # c is a decreasing function of the product probability alone
    p = torch.exp(theory.log_product(process, beliefs)).ravel()
    order = torch.argsort(p)
    assert (torch.diff(c.ravel()[order]) <= 1e-12).all()


def test_the_joint_token_correction_is_the_best_over_its_free_weights():
    """Closed form vs a numerical minimisation of KL(q || readout * exp(w on S)) over w, for k = 2."""
    process = small(0.4)
    beliefs = [b[:5, 3] for b in contexts(process)]  # 5 contexts
    law = next_token_law(process, beliefs)
    readout = theory.factored_readout(process, beliefs)
    k = 2
    w = torch.zeros(5, k, dtype=torch.float64, requires_grad=True)
    top = law.topk(k, -1).indices
    opt = torch.optim.LBFGS([w], max_iter=200, tolerance_grad=1e-14, tolerance_change=1e-16)

    def loss():
        opt.zero_grad()
        logits = torch.log(readout).scatter_add(-1, top, w)
        value = theory.kl(law, torch.softmax(logits, -1)).sum()
        value.backward()
        return value

    opt.step(loss)
    logits = torch.log(readout).scatter_add(-1, top, w.detach())
    brute = theory.kl(law, torch.softmax(logits, -1))
    np.testing.assert_allclose(theory.cost_with_joint_tokens(law, readout, k).numpy(), brute.numpy(), atol=1e-10)
    costs = torch.stack([theory.cost_with_joint_tokens(law, readout, j) for j in range(process.vocab_size)])
    np.testing.assert_allclose(costs[0].numpy(), theory.kl(law, readout).numpy())
    assert (torch.diff(costs, dim=0) <= 1e-12).all()  # more joint features never cost more
    assert costs[-1].max() == 0


def test_a_single_factor_costs_nothing_and_the_chain_is_refused():
    one = independent([mess3(0.05, 0.9)], noise=0.5)
    s = theory.noise_samples(one, 4, n_samples=100, seed=0)
    assert s["cost"].max() < 1e-12
    with pytest.raises(ValueError, match="independent"):
        theory.factor_laws(chain([mess3(), [mess3()] * 3], noise=0.1), [torch.ones(3) / 3] * 2)


def test_noise_samples_reproduce_optimal_loss_and_fidelity_cost():
    process = small(0.2)
    s = theory.noise_samples(process, 5, n_samples=300, seed=3, chunk=100)
    cost, _ = theory.fidelity_cost(process, 5, n_samples=300, seed=3, chunk=100)
    entropy, _ = theory.optimal_loss(process, 5, n_samples=300, seed=3, chunk=100)
    np.testing.assert_allclose(s["cost"].mean(0), cost, atol=1e-14)
    np.testing.assert_allclose(s["entropy"].mean(0), entropy, atol=1e-12)


def test_the_formulas_match_sampled_tokens():
    """Monte Carlo over the sampler's own tokens: E[-log q(x)] = E[H(q)] (q is the data's law) and
    E[log q(x) - log m(x)] = E[KL(q || m)] (the factored readout's excess loss), each within 4 standard errors."""
    process = small(0.3)
    tokens, _ = sample(process, 20_000, 4, seed=1)
    beliefs = [b[:, :4] for b in filter_beliefs(process, decode(process, tokens), dtype=torch.float64)]
    log_q = theory.noisy_log_law(process, beliefs)
    log_m = torch.log(theory.factored_readout(process, beliefs))
    law = log_q.exp()
    seen = tokens[..., None]
    for sampled, formula in (
        (-log_q.gather(-1, seen), -torch.special.xlogy(law, law).sum(-1)),
        ((log_q - log_m).gather(-1, seen), theory.kl(law, log_m.exp())),
    ):
        x = sampled.squeeze(-1).mean(-1).numpy()
        se = x.std(ddof=1) / np.sqrt(len(x))
        assert abs(x.mean() - formula.mean().item()) < 4 * se, (x.mean(), formula.mean().item(), se)


def test_the_first_token_follows_the_law_at_the_stationary_beliefs():
    """Position 0 has one context: the sampler's token counts match q(pi) (chi-square)."""
    from scipy import stats

    process = small(0.3)
    tokens, _ = sample(process, 40_000, 1, seed=2)
    law = theory.noisy_log_law(process, [torch.tensor(g.pi, dtype=torch.float64) for g in process.factors]).exp()
    counts = np.bincount(tokens[:, 0].numpy(), minlength=process.vocab_size)
    assert stats.chisquare(counts, law.numpy() * len(tokens)).pvalue > 1e-3


def test_the_cost_sits_where_the_product_law_is_peaked():
    process = independent([mess3(0.05, 0.9)] * 2, noise=0.2)
    s = theory.noise_samples(process, 6, n_samples=500, seed=0)
    table = theory.cost_by_peak(s["cost"], s["peak"], n_bins=4)
    assert table["share of cost"].sum() == pytest.approx(1.0)
    assert table["mean cost"].iloc[-1] > 3 * table["mean cost"].iloc[0]


def test_logit_dims_factored_bound_and_noise_adds_dimensions():
    process = independent([mess3(0.05, 0.9)] * 3, noise=0.0)
    bound = sum(x - 1 for x in process.factor_vocab_sizes)
    clean = theory.optimal_logit_dims(process, 6, n_samples=300, thresholds=(0.999999,))
    noisy = theory.optimal_logit_dims(independent(process.factors, noise=0.5), 6, n_samples=300)
    assert clean[0.999999] <= bound
    assert noisy[0.99] > bound


def test_the_planning_table():
    candidates = {"1 Mess3": [mess3(0.05, 0.9)], "2 Mess3": [mess3(0.05, 0.9)] * 2}
    table = theory.expansion_table(candidates, (0.1, 0.5), 4, n_samples=200, gap=0.005)
    assert len(table) == 4
    one = table[table["process"] == "1 Mess3"]
    assert (one["fidelity cost"] < 1e-12).all() and not one["cost >= 0.005"].any()
    two = table[table["process"] == "2 Mess3"]
    assert (two["fidelity cost"] > 10 * two["stderr"]).all()
    assert (two["left at k=1"] <= two["fidelity cost"]).all()
    assert list(two["V"]) == [9, 9] and list(two["factored logit dims"]) == [4, 4]


def test_paper_process_costs_match_the_known_values():
    """The paper's five factors: 4.5e-4 nats/token at eps 0.2 and 8.6e-4 at 0.5 (notebook 01's curve)."""
    for eps, want in ((0.2, 4.5e-4), (0.5, 8.6e-4)):
        s = theory.noise_samples(paper_process(noise=eps), 8, n_samples=400, seed=0)
        mean, se = theory.mean_and_stderr(s["cost"])
        assert abs(mean - want) < 0.05 * want + 4 * se
