"""Factored processes (products, sampling, theory): codec, equivalence with explicit joint GHMMs, the torch
sampler, optimal loss and the fidelity cost of factoring."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from factored import products
from factored.analysis import joint_belief
from factored.ghmm import all_sequences, position_entropies, sequence_probability, update
from factored.processes import bloch_walk, mess3, rrxor, zero_one_random
from factored.products import (
    FactoredProcess,
    add_bos,
    chain,
    decode,
    encode,
    independent,
    joint_ghmm,
    paper_process,
)
from factored.sampling import filter_beliefs, next_token_law, sample
from factored.structures import CHAIN, INDEPENDENT, structure_named
from factored.theory import fidelity_cost, optimal_loss, total_correlation

PAPER_OPTIMAL_LOSS = [6.06843, 5.97951, 5.93642, 5.90973, 5.89239, 5.88032, 5.87192, 5.86589]


def small_chain(noise: float = 0.0):
    """Mess3 driving a Bloch walk whose beta follows Mess3's token: 12 joint tokens, 9 joint states."""
    return chain([mess3(), tuple(bloch_walk(1.0, b) for b in (2.0, 3.0, 4.0))], noise=noise)


def factored_sequence_probability(process, seqs: np.ndarray) -> np.ndarray:
    """P(seq) = prod_t law_t(x_t) from the per-factor beliefs (float64): seqs [n, L] joint tokens -> [n]."""
    seqs = torch.as_tensor(seqs)
    beliefs = filter_beliefs(process, decode(process, seqs), dtype=torch.float64)
    p = torch.ones(len(seqs), dtype=torch.float64)
    for t in range(seqs.shape[1]):
        law = next_token_law(process, [b[:, t] for b in beliefs])
        p = p * law.gather(1, seqs[:, t : t + 1]).squeeze(1)
    return p.numpy()


# --------------------------------------------------------------------------------- layout and codec


def test_paper_process_layout():
    p = paper_process()
    assert p.n_factors == 5
    assert p.factor_vocab_sizes == (3, 3, 3, 4, 4)
    assert p.state_dims == (3, 3, 3, 3, 3)
    assert (p.vocab_size, p.bos_token, p.model_vocab_size) == (432, 432, 433)
    assert p.radix == (144, 48, 16, 4, 1)
    c = paper_process("chain", noise=0.1)
    assert [len(v) for v in c.variants] == [1, 3, 3, 3, 4]
    assert c.structure is CHAIN and c.noise == 0.1
    assert [g.n_tokens for g in c.factors] == [3, 3, 3, 4, 4]


def test_codec_round_trip():
    p = paper_process()
    assert int(encode(p, np.array([1, 2, 0, 3, 1]))) == 144 + 2 * 48 + 3 * 4 + 1
    tokens = torch.arange(432).view(12, 36)
    ft = decode(p, tokens)
    assert ft.shape == (12, 36, 5)
    assert torch.equal(encode(p, ft), tokens)
    for n, v in enumerate(p.factor_vocab_sizes):
        assert int(ft[..., n].min()) == 0 and int(ft[..., n].max()) == v - 1
    np.testing.assert_array_equal(encode(p, decode(p, np.arange(432))), np.arange(432))
    # Factor 0 is the most significant digit.
    assert torch.equal(decode(p, torch.tensor([144])), torch.tensor([[1, 0, 0, 0, 0]]))


def test_add_bos_puts_bos_first():
    p = paper_process()
    tokens, _ = sample(p, 4, 5, seed=0)
    with_bos = add_bos(p, tokens)
    assert with_bos.shape == (4, 6)
    assert torch.all(with_bos[:, 0] == 432)
    assert torch.equal(with_bos[:, 1:], tokens)


def test_joint_belief_is_the_kronecker_product():
    rng = np.random.default_rng(0)
    parts = [rng.random((2, s)) for s in (3, 2, 4)]
    expected = np.stack([np.kron(np.kron(parts[0][i], parts[1][i]), parts[2][i]) for i in range(2)])
    np.testing.assert_allclose(joint_belief(parts), expected)
    out = joint_belief([torch.as_tensor(x) for x in parts])
    np.testing.assert_allclose(out.numpy(), expected)
    _, beliefs = sample(paper_process(), 3, 2, seed=0)
    assert joint_belief(beliefs).shape == (3, 3, 243)


# ------------------------------------------------------------------- factored == explicit joint GHMM

MIXES = {
    "mess3_x_bloch": lambda: [mess3(), bloch_walk()],
    "rrxor_x_z1r": lambda: [rrxor(0.3, 0.8), zero_one_random(0.4)],
    "three": lambda: [mess3(0.05, 0.85), zero_one_random(0.5), bloch_walk(2.0, -1.0)],
}


@pytest.mark.parametrize("name", list(MIXES))
@pytest.mark.parametrize("seq_len", [2, 3])
def test_factored_process_equals_kronecker_product_ghmm(name, seq_len):
    factors = MIXES[name]()
    p = independent(factors)
    seqs = all_sequences(p.vocab_size, seq_len)
    via_factors = factored_sequence_probability(p, seqs)
    via_kron = sequence_probability(joint_ghmm(p), seqs)
    np.testing.assert_allclose(via_factors, via_kron, atol=1e-13)
    assert via_kron.sum() == pytest.approx(1.0, abs=1e-12)
    # And each factor's own marginal (digit n of the joint token) is that factor's sequence law.
    digits = decode(p, seqs)
    product = np.prod([sequence_probability(g, digits[..., n]) for n, g in enumerate(factors)], axis=0)
    np.testing.assert_allclose(via_kron, product, atol=1e-13)


def test_chain_equals_its_explicit_joint_ghmm():
    p = small_chain()
    seqs = all_sequences(p.vocab_size, 3)
    via_factors = factored_sequence_probability(p, seqs)
    via_joint = sequence_probability(joint_ghmm(p), seqs)
    np.testing.assert_allclose(via_factors, via_joint, atol=1e-13)
    assert via_joint.sum() == pytest.approx(1.0, abs=1e-12)
    # The dependence is real: the chain is not the product of its variant-0 factors.
    unchained = sequence_probability(joint_ghmm(independent(p.factors)), seqs)
    assert np.abs(via_joint - unchained).max() > 1e-3


def test_joint_ghmm_rejects_noise():
    with pytest.raises(ValueError, match="noise must be 0"):
        joint_ghmm(independent([mess3(), bloch_walk()], noise=0.1))


# ------------------------------------------------------------------------------------------ sampler


def _numpy_filter(process, factor_tokens: np.ndarray) -> list[np.ndarray]:
    """Reference beliefs with ghmm.update in float64 (chain variant = parent's sub-token, same step)."""
    B, L, N = factor_tokens.shape
    out = []
    for n, variants in enumerate(process.variants):
        eta = np.broadcast_to(variants[0].pi, (B, variants[0].n_states)).copy()
        etas = [eta]
        for t in range(L):
            v = factor_tokens[:, t, n - 1] if (process.structure is CHAIN and n > 0) else np.zeros(B, int)
            new = np.empty_like(eta)
            for k, g in enumerate(variants):
                rows = v == k
                new[rows] = update(g, eta[rows], factor_tokens[rows, t, n])
            eta = new
            etas.append(eta)
        out.append(np.stack(etas, 1))
    return out


@pytest.mark.parametrize("structure", ["independent", "chain"])
def test_sampler_shapes_and_belief_alignment(structure):
    p = paper_process(structure)
    tokens, beliefs = sample(p, 64, 6, seed=3)
    assert tokens.dtype == torch.long and tokens.shape == (64, 6)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 432
    assert len(beliefs) == 5
    for n, b in enumerate(beliefs):
        assert b.dtype == torch.float32 and b.shape == (64, 7, 3)
        # beliefs[n][:, 0] is pi; beliefs[n][:, t + 1] is the update of beliefs[n][:, t] on token t.
        np.testing.assert_allclose(b[:, 0].numpy(), np.broadcast_to(p.factors[n].pi, (64, 3)), atol=1e-7)
    reference = _numpy_filter(p, decode(p, tokens).numpy())
    for b, ref in zip(beliefs, reference, strict=True):
        np.testing.assert_allclose(b.numpy(), ref, atol=2e-6)


def test_sampler_is_reproducible():
    p = paper_process("chain", noise=0.2)
    a = sample(p, 50, 4, seed=7)
    b = sample(p, 50, 4, seed=7)
    assert torch.equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    assert torch.equal(sample(p, 50, 4, generator=g1)[0], sample(p, 50, 4, generator=g2)[0])
    assert not torch.equal(sample(p, 50, 4, generator=g1)[0], sample(p, 50, 4, seed=11)[0])  # state moved
    assert not torch.equal(a[0], sample(p, 50, 4, seed=8)[0])


CHI2_PROCESSES = {
    "mess3_x_bloch": lambda: independent([mess3(), bloch_walk()]),
    "chain": small_chain,
    "noisy_mess3_x_rrxor": lambda: independent([mess3(), rrxor(0.3, 0.8)], noise=0.3),
}


@pytest.mark.parametrize("name", list(CHI2_PROCESSES))
def test_sampler_pair_frequencies_match_exact_probabilities(name):
    p = CHI2_PROCESSES[name]()
    tokens, _ = sample(p, 60_000, 2, seed=2024)
    counts = np.bincount((tokens[:, 0] * p.vocab_size + tokens[:, 1]).numpy(), minlength=p.vocab_size**2)
    seqs = all_sequences(p.vocab_size, 2)
    exact = factored_sequence_probability(p, seqs) if p.noise else sequence_probability(joint_ghmm(p), seqs)
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    assert counts[exact < 1e-15].sum() == 0  # impossible pairs never appear
    expected = exact * counts.sum()
    big = expected >= 5  # pool sparse cells so the chi-square approximation holds
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    result = stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum())
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("process", [paper_process("chain"), paper_process(noise=0.3), small_chain(0.2)])
def test_filter_beliefs_reproduces_the_sampler(process):
    tokens, beliefs = sample(process, 256, 7, seed=5)
    filtered = filter_beliefs(process, decode(process, tokens))
    for b, f in zip(beliefs, filtered, strict=True):
        torch.testing.assert_close(f, b, rtol=0, atol=1e-7)
    # Under noise, the rule is the clean update on the observed sub-token (reference: numpy ghmm.update).
    for b, ref in zip(beliefs, _numpy_filter(process, decode(process, tokens).numpy()), strict=True):
        np.testing.assert_allclose(b.numpy(), ref, atol=2e-6)


def test_noise_law_and_its_marginals():
    p = independent([mess3(), bloch_walk()], noise=0.2)
    _, beliefs = sample(p, 16, 3, seed=1)
    b = [x[:, 2].double() for x in beliefs]
    law = next_token_law(p, b)
    clean = [x @ torch.as_tensor(g.emissions.T) for x, g in zip(b, p.factors, strict=True)]
    product = (clean[0][:, :, None] * clean[1][:, None, :]).reshape(16, 12)
    torch.testing.assert_close(law, 0.8 * product + 0.2 / 12)
    j = law.view(16, 3, 4)
    torch.testing.assert_close(j.sum(2), 0.8 * clean[0] + 0.2 / 3)
    torch.testing.assert_close(j.sum(1), 0.8 * clean[1] + 0.2 / 4)
    q = (j.sum(2)[:, :, None] * j.sum(1)[:, None, :]).reshape(16, 12)
    torch.testing.assert_close(total_correlation(p, law), (law * (law / q).log()).sum(-1))


# -------------------------------------------------------------------------------------- optimal loss


def test_paper_optimal_loss_golden():
    per_position, stderr = optimal_loss(paper_process(), 8)
    np.testing.assert_allclose(per_position, PAPER_OPTIMAL_LOSS, atol=1e-5)
    assert per_position.mean() == pytest.approx(5.92558, abs=1e-5)
    assert np.all(stderr == 0)


def test_monte_carlo_optimal_loss_agrees_with_exact():
    p = independent([mess3(0.05, 0.85), rrxor(0.3, 0.8)])
    exact, _ = optimal_loss(p, 5)
    mc, se = optimal_loss(p, 5, exact=False, n_samples=4000, seed=1)
    assert np.all(se[1:] > 0)
    assert np.all(np.abs(mc - exact) <= 5 * se + 1e-9), (mc, exact, se)


def test_chain_optimal_loss_agrees_with_joint_enumeration():
    p = small_chain()
    exact = position_entropies(joint_ghmm(p), 4)
    mc, se = optimal_loss(p, 4, n_samples=4000, seed=2)
    assert np.all(np.abs(mc - exact) <= 5 * se + 1e-9), (mc, exact, se)


def test_full_noise_gives_uniform_tokens():
    per_position, _ = optimal_loss(paper_process(noise=1.0), 3, n_samples=200)
    np.testing.assert_allclose(per_position, math.log(432), atol=1e-10)


# ------------------------------------------------------------------------------------- fidelity cost


def _exact_fidelity(process, seq_len: int) -> np.ndarray:
    """E over prefixes of KL(law || product of marginals), by enumerating the joint GHMM's prefixes."""
    J = joint_ghmm(process)
    V = process.vocab_size
    out = []
    for t in range(seq_len):
        prefixes = all_sequences(V, t)
        p_prefix = sequence_probability(J, prefixes)
        extended = np.concatenate([np.repeat(prefixes, V, 0), np.tile(np.arange(V), len(prefixes))[:, None]], 1)
        law = sequence_probability(J, extended).reshape(-1, V) / p_prefix[:, None]
        tc = total_correlation(process, torch.as_tensor(law)).numpy()
        out.append((p_prefix * tc).sum())
    return np.array(out)


def test_fidelity_cost_zero_for_independent():
    p = paper_process()
    cost, se = fidelity_cost(p, 8)
    assert np.all(cost == 0) and np.all(se == 0)
    mc, _ = fidelity_cost(independent([mess3(), bloch_walk()]), 4, exact=False, n_samples=500)
    assert np.all(np.abs(mc) < 1e-12)


def test_chain_fidelity_cost_positive_and_matches_enumeration():
    p = small_chain()
    exact = _exact_fidelity(p, 3)
    mc, se = fidelity_cost(p, 3, n_samples=4000, seed=3)
    assert np.all(np.abs(mc - exact) <= 5 * se + 1e-9), (mc, exact, se)
    assert np.all(exact[1:] > 1e-3)
    paper, paper_se = fidelity_cost(paper_process("chain"), 3, n_samples=1000)
    assert np.all(paper[1:] > 10 * paper_se[1:])


def test_fidelity_cost_increases_with_noise():
    means = [fidelity_cost(paper_process(noise=e), 3, n_samples=400)[0].mean() for e in (0.01, 0.05, 0.2, 0.5)]
    assert means[0] > 0
    assert np.all(np.diff(means) > 0), means


# ------------------------------------------------------------------------------------ bad parameters


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: independent([mess3()], noise=-0.1), r"noise must be in \[0, 1\]"),
        (lambda: independent([mess3()], noise=1.5), r"noise must be in \[0, 1\]"),
        (lambda: independent([mess3()], noise=float("nan")), r"noise must be in \[0, 1\]"),
        (lambda: paper_process("tree"), "structure must be one of"),
        (lambda: FactoredProcess(variants=((mess3(),),), structure="tree"), "structure must be one of"),
        (lambda: independent([]), "variants must hold at least one factor"),
        (lambda: independent([mess3(), "mess3"]), r"variants\[1\] must be a non-empty sequence of GHMMs"),
        (lambda: chain([mess3(), (bloch_walk(), bloch_walk())]), r"variants\[1\] must have 3 variant"),
        (lambda: chain([mess3(), (mess3(), bloch_walk(), mess3())]), r"variants\[1\]\[1\] must match"),
        (lambda: FactoredProcess(variants=((mess3(), mess3()),)), r"variants\[0\] must have 1 variant"),
    ],
)
def test_bad_process_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_call_parameters_raise():
    p = paper_process()
    with pytest.raises(ValueError, match="batch_size"):
        sample(p, 0, 4)
    with pytest.raises(ValueError, match="seq_len"):
        sample(p, 2, -1)
    with pytest.raises(ValueError, match="either generator or seed"):
        sample(p, 2, 2, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="factor_tokens"):
        encode(p, np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="factor_tokens"):
        filter_beliefs(p, torch.zeros((2, 3), dtype=torch.long))
    with pytest.raises(ValueError, match="exact=True"):
        optimal_loss(paper_process("chain"), 2, exact=True)
    with pytest.raises(ValueError, match="seq_len"):
        optimal_loss(p, 0)
    with pytest.raises(ValueError, match="n_samples"):
        fidelity_cost(paper_process(noise=0.1), 2, n_samples=1)


def test_dimension_counts_joint_vs_factored():
    assert products.dimension_counts([3, 3, 3, 3, 3]) == (242, 10)
    assert products.dimension_counts([3]) == (2, 2)
    assert [products.dimension_counts([3] * n)[0] for n in (1, 2, 3)] == [2, 8, 26]
    with pytest.raises(ValueError, match="state_dims"):
        products.dimension_counts([])


# ------------------------------------------------------------------------- N independent Mess3 factors


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_mess3_factors_layout(n):
    process = products.mess3_factors(n)
    assert process.n_factors == n and process.structure is INDEPENDENT and process.noise == 0
    assert process.vocab_size == 3**n and process.bos_token == 3**n and process.model_vocab_size == 3**n + 1
    assert products.dimension_counts(process.state_dims) == (3**n - 1, 2 * n)  # joint, factored
    tokens, beliefs = sample(process, 64, 5, seed=n)
    assert tokens.max() < 3**n and len(beliefs) == n and all(b.shape == (64, 6, 3) for b in beliefs)


def test_mess3_factors_optimal_loss_is_n_times_one_mess3():
    one = position_entropies(mess3(0.15, 0.6), 8)
    for n in (1, 2, 4):
        per_position, stderr = optimal_loss(products.mess3_factors(n), 8)
        np.testing.assert_allclose(per_position, n * one, rtol=0, atol=1e-12)
        assert (stderr == 0).all()
    # against an enumeration of the explicit Kronecker-product GHMM on 9 joint tokens
    two = products.mess3_factors(2)
    np.testing.assert_allclose(optimal_loss(two, 5)[0], position_entropies(joint_ghmm(two), 5), atol=1e-10)
    assert one[0] == pytest.approx(math.log(3))  # the first token is uniform


def test_mess3_factors_rejects_a_bad_count():
    for n in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            products.mess3_factors(n)


def test_run_config_selects_the_process():
    from factored.config import make_config
    from factored.products import process_of

    def same(a, b):
        return (a.structure, a.noise, a.state_dims) == (b.structure, b.noise, b.state_dims) and all(
            np.array_equal(g.T, h.T) for g, h in zip(a.factors, b.factors, strict=True)
        )

    assert same(process_of(make_config("smoke").data), paper_process())
    assert same(process_of(make_config("smoke", structure="chain").data), paper_process("chain"))
    noisy = process_of(make_config("smoke", n_mess3=4, noise=0.05).data)
    assert same(noisy, products.mess3_factors(4, noise=0.05)) and noisy.vocab_size == 81


def test_single_factor_run_goes_through_every_analysis(tmp_path):
    """N = 1: one factor, so no pair for the overlap (NaN), but every other analysis is defined."""
    from factored import probing, run_analysis
    from factored.config import make_config
    from factored.train import get_or_train

    cfg = make_config("smoke", n_mess3=1, steps=3, d_model=8, n_heads=1, d_mlp=8, batch_size=16, eval_batch_size=32)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    assert run.process.n_factors == 1 and run.load_model().vocab_size == 4
    acfg = probing.analysis_config("smoke", n_random_models=2)
    refs = probing.reference_curves(run.process, acfg, cfg.data.seq_len)
    assert refs["factored_dims95"] <= 2 and refs["joint_dims95"] <= 2  # one factor: joint = factored
    out = run_analysis.analyze(run, acfg, progress=False)
    assert sorted(out.trajectory) == [0, 1, 2, 3] and set(out.stages) == {"init", "collapse", "final"}
    final = out.vary[out.final]
    assert len(final["dims95"]) == 1 and final["overlap_matrix"].shape == (1, 1, acfg.k_max)
    assert np.isnan(final["mean_overlap"]).all() and out.random_overlaps.shape == (2, acfg.k_max)
    s = out.summary
    assert math.isnan(s["overlap_k1"]) and math.isnan(s["random_init_overlap_k2"])
    assert list(s["r2"]) == ["Mess3 F0"] and s["union_dims95"] >= 1
    again = run_analysis.analyze(run, acfg, progress=False)  # from the caches, NaN included
    assert again.summary["final_dims95"] == s["final_dims95"] and math.isnan(again.summary["overlap_k1"])


def test_a_structure_is_an_object_the_process_asks():
    assert structure_named("chain") is CHAIN and structure_named(INDEPENDENT) is INDEPENDENT
    assert paper_process("chain").structure is CHAIN and not paper_process("chain").law_is_product
    assert paper_process().law_is_product and not paper_process(noise=0.1).law_is_product
    tokens = torch.tensor([[2, 0], [1, 1], [0, 2]])  # [N=3 factors, B=2]
    assert CHAIN.variant_index(tokens).tolist() == [[0, 0], [2, 0], [1, 1]]  # each factor's parent's token
    assert INDEPENDENT.variant_index(tokens) is None and tokens.tolist() == [[2, 0], [1, 1], [0, 2]]
    assert [CHAIN.n_variants(n, 4) for n in range(3)] == [1, 4, 4] and INDEPENDENT.n_variants(2, 4) == 1
