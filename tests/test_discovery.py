"""Factor discovery from activations alone: known answers built from true beliefs, and each step on its own."""

import functools
from types import SimpleNamespace

import numpy as np
import pytest

from factored import analysis, discovery, discovery_eval, ghmm, processes, products, sampling

D_MODEL, N_SEQ, SEQ_LEN = 120, 1500, 8  # the synthetic width is the paper's d_model


@pytest.fixture(scope="module")
def beliefs():
    """True beliefs of the paper's five factors after tokens 1..7: list[5] of [N_SEQ, 7, 3]."""
    _, b = sampling.sample(products.paper_process(), N_SEQ, SEQ_LEN, seed=0)
    return [x[:, 1:SEQ_LEN].double().numpy() for x in b]


# ------------------------------------------------------------------------------------------ known answers
def test_five_independent_factors_are_recovered_exactly(beliefs):
    acts, truth = discovery_eval.synthetic_activations(beliefs)
    assert discovery.n_components_at(acts) == 10  # 5 factors x 2 dims carry 95% of the variance; noise does not
    found = discovery.discover_factors(acts)
    assert found.n_factors == 5 and [len(g) for g in found.groups] == [2] * 5 and found.unassigned.size == 0
    pairs, overlap = discovery_eval.match_subspaces(found.subspaces, truth)
    assert sorted(pairs[:, 1]) == [0, 1, 2, 3, 4]
    assert overlap[pairs[:, 0], pairs[:, 1]].min() > 0.99  # the same planes, up to the noise
    off = overlap.copy()
    off[pairs[:, 0], pairs[:, 1]] = 0
    assert off.max() < 0.01  # and orthogonal to every other factor's
    assert found.contrast > 5


def test_one_factor_is_one_and_noise_components_stay_unassigned(beliefs):
    acts, truth = discovery_eval.synthetic_activations(beliefs[:1], seed=1)
    found = discovery.discover_factors(acts, n_components=8)  # 2 belief dims + 6 dims of pure noise
    assert found.n_factors == 1 and len(found.groups[0]) == 2 and len(found.unassigned) == 6
    assert discovery_eval.match_subspaces(found.subspaces, truth)[1][0, 0] > 0.999


def test_gaussian_noise_has_no_factors():
    acts = np.random.default_rng(2).normal(size=(N_SEQ, 7, 30))
    assert discovery.discover_factors(acts, n_components=8).n_factors == 0


def test_each_found_subspace_alone_decodes_its_factor(beliefs):
    acts, truth = discovery_eval.synthetic_activations(beliefs, seed=3)
    found = discovery.discover_factors(acts)
    flat = acts.reshape(-1, D_MODEL)
    for f, t in discovery_eval.match_subspaces(found.subspaces, truth)[0]:
        target = beliefs[t].reshape(-1, 3)
        full = discovery_eval.subspace_r2(flat, target)
        assert full > 0.95 and discovery_eval.subspace_r2(flat, target, found.subspaces[f]) > 0.99 * full
        assert discovery_eval.subspace_r2(flat, target, found.readouts[f]) > 0.99 * full
        assert analysis.subspace_overlap(found.readouts[f], found.subspaces[f], 2) > 0.99  # orthogonal factors


# ---------------------------------------------------------------------------------------------- the steps
def test_centre_positions_and_component_count_cap():
    acts = np.random.default_rng(0).normal(size=(50, 3, 40)) + np.arange(3)[None, :, None]
    centred = discovery.centre_positions(acts)
    np.testing.assert_allclose(centred.mean(axis=0), 0, atol=1e-12)
    assert discovery.n_components_at(acts, 0.95, cap=7) == 7
    with pytest.raises(ValueError, match="acts must be"):
        discovery.centre_positions(np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        discovery.centre_positions(np.full((4, 2), np.nan))


def test_components_read_out_and_rebuild_the_activations():
    rng = np.random.default_rng(0)
    acts = rng.laplace(size=(400, 2, 5)) @ rng.normal(size=(5, 12))  # rank 5 in 12 dims
    comps = discovery.independent_components(acts, 5)
    centred = discovery.centre_positions(acts)
    np.testing.assert_allclose(centred @ comps.filters.T, comps.sources, atol=1e-8)
    np.testing.assert_allclose(comps.sources @ comps.patterns, centred, atol=1e-8)  # k = rank: nothing left out
    np.testing.assert_allclose(np.cov(comps.sources.reshape(-1, 5).T), np.eye(5), atol=1e-2)
    with pytest.raises(ValueError, match="n_components"):
        discovery.independent_components(acts, 13)


def test_energy_dependence_sees_a_disk_but_not_independent_coordinates():
    rng = np.random.default_rng(0)
    r, theta = np.sqrt(rng.uniform(size=20_000)), rng.uniform(0, 2 * np.pi, 20_000)
    disk = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)  # uncorrelated, dependent
    square = rng.uniform(-1, 1, size=(20_000, 2))  # independent
    sources = np.concatenate([disk, square], axis=1).reshape(10_000, 2, 4)
    dep = discovery.energy_dependence(sources)
    assert dep.shape == (4, 4) and np.allclose(dep, dep.T) and np.all(np.diag(dep) == 0)
    assert dep[0, 1] > 0.2 and dep[2, 3] < 0.05 and dep[0, 2] < 0.05


def test_null_threshold_bounds_what_independent_sources_show():
    rng = np.random.default_rng(0)
    sources = rng.laplace(size=(2000, 4, 12))  # heavy-tailed energies
    sources[:, 1:] += 0.8 * sources[:, :-1]  # each source correlated over positions, still independent of others
    shuffled = discovery.shuffled_dependence(sources, n_shuffles=20)
    assert shuffled.shape == (20, 66)
    threshold = discovery.null_threshold(shuffled, n_pairs=66, alpha=0.01)
    assert shuffled.max() <= threshold < 2 * shuffled.max()
    fresh = discovery.shuffled_dependence(sources, n_shuffles=100, seed=1).max(axis=1)  # one max per matrix
    assert (fresh > threshold).mean() <= 0.05
    assert discovery.energy_dependence(sources).max() < threshold
    with pytest.raises(ValueError, match="alpha"):
        discovery.null_threshold(shuffled, 66, alpha=0)


def test_grouping_finds_blocks_and_refuses_a_structureless_matrix():
    blocks = np.full((6, 6), 0.05)
    for g in ([0, 3], [1, 4, 5]):
        blocks[np.ix_(g, g)] = 0.4
    np.fill_diagonal(blocks, 0)
    groups, contrast = discovery.group_components(blocks, threshold=0.03)
    assert [g.tolist() for g in groups] == [[1, 4, 5], [0, 3]] and contrast == pytest.approx(8.0)
    uniform = np.full((6, 6), 0.2) - 0.2 * np.eye(6)
    assert [g.tolist() for g in discovery.group_components(uniform, threshold=0.03)[0]] == [list(range(6))]  # a whole
    weak = 0.04 + 0.01 * np.random.default_rng(0).uniform(size=(6, 6))
    weak = (weak + weak.T) / 2
    np.fill_diagonal(weak, 0)
    assert discovery.group_components(weak, threshold=0.03)[0] == []  # barely above noise, no boundary: nothing
    assert discovery.group_components(blocks, threshold=0.5)[0] == []  # nothing above the noise level
    merges, heights = discovery.merge_tree(blocks)
    assert merges.shape == (5, 2) and np.all(np.diff(heights) <= 1e-12)
    assert len(discovery.clusters_after(merges, 6, 0)) == 6


def test_group_subspace_orders_directions_by_variance():
    patterns = np.array([[3.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 5.0, 0, 0]])
    directions, variances = discovery.group_subspace(patterns, np.array([0, 1]))
    np.testing.assert_allclose(np.abs(directions), [[1, 0, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_allclose(variances, [9, 1])


def test_scan_and_choice_on_a_known_answer(beliefs):
    acts, _ = discovery_eval.synthetic_activations(beliefs[3:], seed=4)  # the two Bloch factors: 4 dims
    scan = discovery.scan_components(acts, range(2, 7))
    counts = {k: d.n_factors for k, d in scan.items()}
    assert counts[4] == counts[5] == 2 and discovery.refound(scan)[4] == 2
    assert scan[discovery.choose_components(scan)].n_factors == 2
    with pytest.raises(ValueError, match="ks"):
        discovery.scan_components(acts, [])


# ------------------------------------------------------------------------- held-out known answers (the scan)
def _factor_beliefs(process, n_seq: int, seed: int) -> np.ndarray:
    """True beliefs of one process after tokens 1..SEQ_LEN-1, sampled with `ghmm` alone: [n_seq, SEQ_LEN-1, S]."""
    rng = np.random.default_rng(seed)
    eta = np.tile(process.pi, (n_seq, 1))
    out = []
    for _ in range(SEQ_LEN - 1):
        p = np.clip(ghmm.next_token_probs(process, eta), 0, None)
        cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        x = np.minimum((rng.uniform(size=(n_seq, 1)) > cdf).sum(axis=1), p.shape[1] - 1)
        eta = ghmm.update(process, eta, x)
        out.append(eta)
    return np.stack(out, axis=1)


def _beliefs_of(factors, n_seq: int = N_SEQ, seed: int = 0) -> list[np.ndarray]:
    return [_factor_beliefs(g, n_seq, seed + 7 * i) for i, g in enumerate(factors)]


MESS3, BLOCH = processes.mess3(0.15, 0.6), processes.bloch_walk(1.0, 3.0)


def _found(acts, truth):
    """(factors found, matched overlaps) of `find_factors` on acts against the true subspaces."""
    report = discovery.find_factors(acts)
    pairs, overlap = discovery_eval.match_subspaces(report.subspaces, truth)
    return report.n_factors, overlap[pairs[:, 0], pairs[:, 1]]


def test_a_factor_at_a_tenth_of_the_scale_is_found():
    # 1% of the others' variance: below the 95%-variance cut, above the noise floor. Its subspace is the span of
    # its patterns, which a FastICA rotation error of angle e tilts by ~10 e toward the strong factors: B = 3000
    b = _beliefs_of([MESS3, MESS3, MESS3, BLOCH, BLOCH], n_seq=3000)
    b[2] = b[2] * 0.1
    acts, truth = discovery_eval.synthetic_activations(b, d=40)  # 40 dims: the noise floor as in 120, a shorter scan
    assert discovery.n_components_at(acts) < 10 <= discovery.n_signal(acts)
    n, matched = _found(acts, truth)
    assert n == 5 and matched.min() >= 0.9


def test_a_saturating_nonlinearity_keeps_the_factors(beliefs):
    acts, truth = discovery_eval.synthetic_activations([b[:800] for b in beliefs], d=40)  # 40 dims: fewer harmonics
    mixed = acts - acts.mean(axis=(0, 1))
    acts = np.tanh(0.5 * mixed / np.sqrt((mixed**2).mean()))  # a 1-sigma value reaches tanh(0.5): mild saturation
    n, matched = _found(acts, truth)
    assert n == 5 and matched.min() >= 0.9


@functools.cache
def _five_factor_beliefs(n_seq: int = 800) -> list[np.ndarray]:
    """True beliefs of 3 Mess3 and 2 Bloch-walk factors, sampled once per module: list[5] of [n_seq, 7, 3]."""
    return _beliefs_of([MESS3, MESS3, MESS3, BLOCH, BLOCH], n_seq=n_seq)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    """x [B, P, d] centred over all rows and scaled to a root mean square of 1 (a 1-sigma value reads 1)."""
    x = x - x.mean(axis=(0, 1))
    return x / np.sqrt((x**2).mean())


SATURATING = {"tanh": np.tanh, "softsign": lambda x: x / (1 + np.abs(x))}  # softsign: algebraic, not exponential


@pytest.mark.parametrize("d", [40, 120])
@pytest.mark.parametrize(
    "nonlinearity, gain", [("tanh", 1), ("tanh", 2), ("tanh", 4), ("softsign", 1), ("softsign", 2), ("softsign", 4)]
)
def test_strong_saturation_keeps_the_factors(nonlinearity, gain, d):
    # tanh(4 z): a 1-sigma unit reads 0.999; every unit mixes all 5 factors, so each factor's coordinates are scaled
    # by the others' energies and products of factors fill further directions (the module's docstring)
    acts, truth = discovery_eval.synthetic_activations(_five_factor_beliefs(), d=d)
    saturated = SATURATING[nonlinearity](gain * _unit_rms(acts))
    report = discovery.find_factors(saturated)
    pairs, overlap = discovery_eval.match_subspaces(report.subspaces, truth)
    assert report.view == "linearized" and report.n_factors == 5 and overlap[pairs[:, 0], pairs[:, 1]].min() >= 0.9


@pytest.mark.parametrize(
    "d",
    [
        pytest.param(
            40,
            marks=pytest.mark.xfail(
                strict=True,
                reason="the first tanh acts before the mixing, so no map of each unit can undo it: k = 10 finds 4 "
                "(contrast 2.23) but k = 11 none, so no factor is found again",
            ),
        ),
        120,
    ],
)
def test_tanh_twice_through_a_random_mixing(d):
    # held out of the development (run once, after the method was fixed): a 2-layer recurrent net's hidden state,
    # h2 = tanh(2 h1 M^T) with h1 = tanh(2 z); the factors' directions are carried through M
    acts, truth = discovery_eval.synthetic_activations(_five_factor_beliefs(), d=d)
    mixing = np.random.default_rng(11).normal(size=(d, d)) / np.sqrt(d)
    hidden = np.tanh(2 * _unit_rms(np.tanh(2 * _unit_rms(acts)) @ mixing.T))
    carried = [np.linalg.qr((t @ mixing.T).T)[0].T for t in truth]
    n, matched = _found(hidden, carried)
    assert n == 5 and matched.min() >= 0.9


def test_a_weak_factor_through_strong_saturation_is_found():
    # the two cases above at once: a factor at a tenth of the others' scale, then every unit saturated (tanh(4 z)).
    # Normal scores put harmonics of the strong factors into the weak one's plane (its variance share 0.35% ->
    # 0.81%) and lost it; the linearized view undoes the saturation and keeps it
    b = _beliefs_of([MESS3, MESS3, MESS3, BLOCH, BLOCH], n_seq=3000)
    b[2] = b[2] * 0.1
    acts, before = discovery_eval.synthetic_activations(b, d=40)
    saturated = np.tanh(4 * _unit_rms(acts))
    report = discovery.find_factors(saturated)
    assert report.view == "linearized" and report.n_factors == 5
    # scored where each factor moves the saturated units (the true beliefs' patterns there): the strong ones
    # exactly, the weak one within its FastICA tilt. Against the directions before the saturation even those
    # ideal patterns reach only 0.92-0.96 (each unit's slope differs), so no report in these units could pass 0.9
    truth = discovery_eval.observed_subspaces(saturated, b, [len(t) for t in before])
    pairs, overlap = discovery_eval.match_subspaces(report.subspaces, truth)
    assert overlap[pairs[:, 0], pairs[:, 1]].min() >= 0.9


def test_normal_scores_are_the_same_under_any_increasing_function_of_a_unit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3, 6)) + np.arange(3)[None, :, None]  # positions at different offsets
    scores = discovery.normal_scores(x)
    assert scores.shape == x.shape and np.allclose(scores.mean(axis=0), 0, atol=1e-12)
    for f in (np.tanh, lambda v: 1 / (1 + np.exp(-3 * v)), np.exp, lambda v: np.cbrt(v) + 7):
        np.testing.assert_array_equal(discovery.normal_scores(f(x)), scores)
    np.testing.assert_allclose(np.corrcoef(scores[:, 0, 0], x[:, 0, 0])[0, 1], 1, atol=0.01)  # Gaussian: x again
    tied = discovery.normal_scores(np.array([[0.0], [0.0], [0.0], [1.0]]))[:, 0, 0]  # equal values share a rank
    assert tied[0] == tied[1] == tied[2] < tied[3]


def test_the_linearized_view_undoes_a_unit_wise_nonlinearity_whatever_it_is():
    acts, _ = discovery_eval.synthetic_activations(_five_factor_beliefs(), d=40)
    code = _unit_rms(acts)
    view = discovery.linearized(np.tanh(3 * code), 10)
    for f in (np.tanh, np.arctan, lambda v: v / (1 + np.abs(v))):  # any increasing function of each unit: one view
        np.testing.assert_allclose(discovery.linearized(f(3 * code), 10), view, atol=1e-12)
    # the code itself again, unit by unit up to scale (each unit at unit variance): the nonlinearity undone
    flat, code = view.reshape(-1, 40), code.reshape(-1, 40)
    r = [np.corrcoef(flat[:, j], code[:, j])[0, 1] for j in range(40)]
    assert min(r) > 0.995 > max(np.corrcoef(np.tanh(3 * code[:, j]), code[:, j])[0, 1] for j in range(40))


def test_a_constant_unit_stays_a_constant_zero_in_the_linearized_view():
    acts, _ = discovery_eval.synthetic_activations(_five_factor_beliefs(), d=40)
    acts[..., 3] = 7.0
    view = discovery.linearized(np.tanh(2 * acts), 10)
    assert np.isfinite(view).all() and np.array_equal(view[..., 3], np.zeros_like(view[..., 3]))


def test_the_observed_truth_of_a_linear_code_is_its_own_subspaces():
    beliefs = _five_factor_beliefs()
    acts, truth = discovery_eval.synthetic_activations(beliefs, d=40, noise_std=0.0)
    observed = discovery_eval.observed_subspaces(acts, beliefs, [len(t) for t in truth])
    for o, t in zip(observed, truth, strict=True):
        # the same planes, up to the sample covariance of independent factors (~1/sqrt(5,600 rows) = 0.013, which
        # tilts a plane by that times a variance ratio); a wrong plane would be near 0
        assert np.linalg.svd(o @ t.T, compute_uv=False).min() > 0.995


def test_the_view_is_the_more_compact_one():
    acts, _ = discovery_eval.synthetic_activations(_five_factor_beliefs(), d=40)
    assert discovery.analysed_view(acts)[0] == "activations"  # a linear code: scores would bend it
    saturated = np.tanh(2 * _unit_rms(acts))
    assert discovery.top_share(saturated, 10) < 0.9  # harmonics and cross-terms: > 10% outside the factors' 10 dims
    name, view = discovery.analysed_view(saturated)
    assert name == "linearized" and discovery.top_share(view, 10) > 0.98


def test_components_of_a_view_are_read_in_the_activations_coordinates():
    rng = np.random.default_rng(0)
    acts = rng.laplace(size=(400, 2, 5)) @ rng.normal(size=(5, 12))
    comps = discovery.independent_components(acts, 5)
    same = discovery.in_coordinates_of(comps, acts)  # the view is acts itself: the same patterns and filters
    np.testing.assert_allclose(same.patterns, comps.patterns, atol=1e-8)
    np.testing.assert_allclose(same.filters, comps.filters, atol=1e-8)
    squashed = discovery.in_coordinates_of(discovery.independent_components(np.tanh(acts), 5), acts)
    np.testing.assert_allclose(squashed.filters @ squashed.patterns.T, np.eye(5), atol=1e-8)  # filters read sources


def test_a_component_that_depends_on_two_groups_is_a_cross_term():
    dep = np.full((7, 7), 0.1)  # every pair coupled a little, as under saturation; noise threshold 0.05
    for g in ([0, 1], [2, 3], [4, 5]):
        dep[np.ix_(g, g)] = 0.5
    dep[6, :4] = dep[:4, 6] = 0.35  # component 6 depends on the first two groups
    np.fill_diagonal(dep, 0)
    chained, _ = discovery.group_components(dep, threshold=0.05)
    assert [g.tolist() for g in chained] == [list(range(7))]  # through 6, no cut between groups is clear: one
    groups, contrast, cross = discovery.factor_groups(dep, threshold=0.05)
    assert sorted(g.tolist() for g in groups) == [[0, 1], [2, 3], [4, 5]] and cross.tolist() == [6]
    assert contrast == pytest.approx(0.5 / 0.1)
    one_sided = dep.copy()
    one_sided[6, 2:4] = one_sided[2:4, 6] = 0.1  # depends on one group only: a component of that factor, kept
    groups, _, cross = discovery.factor_groups(one_sided, threshold=0.05)
    assert cross.size == 0 and sorted(g.tolist() for g in groups) == [[0, 1, 6], [2, 3], [4, 5]]


def test_a_group_in_a_stronger_groups_directions_is_an_image():
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(40, 8)))[0].T  # 8 orthonormal directions in 40 dims
    a, b = basis[0:2], basis[2:4]  # two factors' planes
    image = np.linalg.qr((0.8 * basis[[0, 2]] + 0.6 * basis[[4, 5]]).T)[0].T  # partly in each factor's plane
    spaces = [(a, np.array([9.0, 8.0])), (image, np.array([0.3, 0.2])), (b, np.array([7.0, 6.0]))]
    assert analysis.subspace_overlap(image, a, 2) == pytest.approx(0.32)  # below SAME_FACTOR: not a factor twice
    assert discovery.images_of(spaces) == [1]
    apart = [(a, np.array([9.0, 8.0])), (basis[4:6], np.array([0.3, 0.2])), (b, np.array([7.0, 6.0]))]
    assert discovery.images_of(apart) == []  # a weak factor that owns its directions stays, however weak
    stronger_image = [(a, np.array([0.3, 0.2])), (image, np.array([9.0, 8.0]))]
    assert discovery.images_of(stronger_image) == [0]  # of two that share directions, the weaker goes


def test_exactly_low_rank_activations_do_not_crash():
    acts, truth = discovery_eval.synthetic_activations(_beliefs_of([MESS3, MESS3, MESS3, BLOCH, BLOCH]), noise_std=0.0)
    assert discovery.numerical_rank(acts) == 10  # 5 factors x 2 free coordinates, in 120 dims
    n, matched = _found(acts, truth)
    assert n == 5 and matched.min() >= 0.99


def test_float32_round_off_is_no_direction(beliefs):
    acts, _ = discovery_eval.synthetic_activations(beliefs, noise_std=0.0)  # float32 beliefs: fixed sums hold to ~1e-7
    assert discovery.numerical_rank(acts) == 10


@pytest.mark.parametrize(
    "factors",
    [
        [processes.mess3(0.05, 0.85), processes.mess3(0.3, 0.5), processes.bloch_walk(1.0, 2.0)],  # other parameters
        [MESS3, MESS3, MESS3, MESS3, BLOCH, BLOCH],  # six factors
        [MESS3, BLOCH],  # two
    ],
    ids=["other-parameters", "six-factors", "two-factors"],
)
def test_other_products_are_recovered(factors):
    acts, truth = discovery_eval.synthetic_activations(_beliefs_of(factors, n_seq=1000), seed=5)
    n, matched = _found(acts, truth)
    assert n == len(factors) and matched.min() >= 0.99


def test_non_orthogonal_mixing_is_recovered(beliefs):
    rng = np.random.default_rng(6)
    mixing = rng.normal(size=(D_MODEL, 15)) / np.sqrt(15)  # the factors' planes at random angles
    acts = np.concatenate(beliefs, axis=-1) @ mixing.T + 0.01 * rng.normal(size=(N_SEQ, SEQ_LEN - 1, D_MODEL))
    truth = []
    for n, b in enumerate(beliefs):
        flat = b.reshape(-1, 3)
        free = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)[2][:2]  # the 2 varying directions
        truth.append(np.linalg.qr(mixing[:, 3 * n : 3 * n + 3] @ free.T)[0].T)
    n_found, matched = _found(acts, truth)
    assert n_found == 5 and matched.min() >= 0.99


def test_token_and_position_features_do_not_make_factors(beliefs):
    rng = np.random.default_rng(7)
    acts, truth = discovery_eval.synthetic_activations([b[:800] for b in beliefs], d=40, seed=7)
    token = rng.integers(0, 432, size=acts.shape[:2])  # a nuisance: a random embedding of a random token
    acts = acts + 0.02 * rng.normal(size=(432, 40))[token] + rng.normal(size=(SEQ_LEN - 1, 40))
    n, matched = _found(acts, truth)
    assert n == 5 and matched.min() >= 0.99


@pytest.mark.parametrize("kind", ["gaussian", "independent"])
def test_nulls_have_no_factors(kind):
    rng = np.random.default_rng(8)
    if kind == "gaussian":
        acts = rng.normal(size=(800, 4, 12))
    else:  # independent non-Gaussian sources, mixed: ICA separates them, nothing groups them
        sources = np.concatenate([rng.uniform(-1, 1, size=(800, 4, 4)), rng.laplace(size=(800, 4, 4))], axis=-1)
        acts = sources @ rng.normal(size=(8, 40)) + 0.01 * rng.normal(size=(800, 4, 40))
    assert discovery.find_factors(acts).n_factors == 0


def test_find_factors_reports_and_scores(beliefs):
    acts, truth = discovery_eval.synthetic_activations(beliefs[:2], seed=9)
    report = discovery.find_factors(acts[:, :, :])
    table, summary = report.table(), report.summary()
    assert report.n_factors == 2 == len(table["dims"]) and summary["k"] == report.k
    assert sum(table["share"]) > 0.9  # the two factors hold all the variance but the noise's
    score = discovery_eval.score_against_truth(report.subspaces, acts, beliefs[:2], truth)
    assert score["n_recovered"] == 2 and score["n_spurious"] == 0
    assert min(score["table"]["ratio"]) > 0.99 and min(score["table"]["overlap"]) > 0.99


def test_the_estimator_stores_its_settings_and_fits_what_find_factors_finds(beliefs):
    from sklearn.base import clone

    estimator = discovery.FactorDiscovery(n_shuffles=10, seed=3)
    assert estimator.get_params() == {"alpha": 0.01, "min_contrast": discovery.MIN_CONTRAST, "n_shuffles": 10,
                                      "seed": 3, "variance": 0.95}  # fmt: skip
    assert not hasattr(estimator, "report_") and clone(estimator).get_params() == estimator.get_params()
    acts, _ = discovery_eval.synthetic_activations(beliefs[:2], d=12, seed=5)
    assert estimator.fit(acts) is estimator
    report = discovery.find_factors(acts, n_shuffles=10, seed=3)
    assert estimator.n_factors_ == report.n_factors == 2 and estimator.n_components_ == report.k
    assert estimator.report_.summary() == report.summary()
    for fitted, found in zip(estimator.subspaces_, report.subspaces, strict=True):
        np.testing.assert_array_equal(fitted, found)  # one implementation: the same numbers
    with pytest.raises(TypeError):
        discovery.find_factors(acts, n_components=4)  # k is scanned, not set


def test_refound_counts_factors_seen_at_a_neighbouring_k(beliefs):
    acts, _ = discovery_eval.synthetic_activations(beliefs[3:], seed=4)
    scan = discovery.scan_components(acts, [3, 4, 5, 7])
    again = discovery.refound(scan)
    assert again[4] == again[5] == 2 and again[7] == 0  # 7 has no neighbour in the scan
    assert scan[discovery.choose_components(scan)].n_factors == 2


def test_a_neighbour_confirms_one_factor_only():
    """A weak extra group at one k can borrow a found factor's directions (its patterns leak into the factor's
    plane): it overlaps that factor's subspace at k - 1 and k + 1 by more than 0.5, as the factor itself does.
    Paired one-to-one, the neighbours confirm only one of the two, so the fluke k counts no more factors."""
    b = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 8)))[0].T  # orthonormal rows
    factors = [b[0:2], b[2:4]]
    borrowed = np.stack([0.8 * b[2] + 0.6 * b[6], 0.8 * b[3] + 0.6 * b[7]])  # overlap 0.64 with factor 1's plane
    scan = {k: SimpleNamespace(subspaces=s) for k, s in ((3, factors), (4, [*factors, borrowed]), (5, factors))}
    assert discovery.paired_again([*factors, borrowed], factors).tolist() == [True, True, False]
    assert discovery.refound(scan) == {3: 2, 4: 2, 5: 2}  # any-match would count 3 at k = 4
    assert discovery.paired_again(factors, []).tolist() == [False, False]


def test_grouping_keeps_weakly_dependent_factors_next_to_strong_ones():
    dep = np.full((8, 8), 0.03)  # two disks (0.73) and two triangles (0.19), as between Bloch and Mess3 pairs
    for g, v in (([0, 1], 0.73), ([2, 3], 0.73), ([4, 5], 0.19), ([6, 7], 0.19)):
        dep[np.ix_(g, g)] = v
    np.fill_diagonal(dep, 0)
    groups, contrast = discovery.group_components(dep, threshold=0.052)  # 0.73 / 0.19 = 3.8 > 0.19 / 0.052 = 3.7
    assert len(groups) == 4 and contrast == pytest.approx(0.19 / 0.052)


@pytest.mark.parametrize(
    "acts, message",
    [
        (np.ones((500, 4, 1)), "acts must have d >= 2 features to separate components, got d=1"),
        (np.ones((500, 4, 0)), "acts must have d >= 2 features to separate components, got d=0"),
        (np.ones((2, 10)), "acts has too few rows: 2 sequences x 1 position vary in at most 1 direction"),
        (np.zeros((500, 10)), "acts vary in 0 directions once each position is centred; at least 2 are needed"),
        (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "acts must hold real numbers, got dtype <U1"),
        (np.ones((50, 5)) * 1j, "acts must hold real numbers, got dtype complex128"),
    ],
    ids=["d=1", "d=0", "two rows", "constant", "strings", "complex"],
)
def test_inputs_find_factors_cannot_handle_are_one_clear_error(acts, message):
    with pytest.raises(ValueError) as e:
        discovery.find_factors(acts)
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_find_factors_takes_a_torch_tensor_even_one_that_requires_grad(beliefs):
    import torch

    acts, _ = discovery_eval.synthetic_activations(beliefs[:2], d=12, seed=5)
    expected = discovery.find_factors(acts)
    for tensor in (torch.tensor(acts, requires_grad=True), torch.tensor(acts, dtype=torch.bfloat16)):
        report = discovery.find_factors(tensor)
        assert report.n_factors == expected.n_factors == 2
        assert discovery_eval.match_subspaces(report.subspaces, expected.subspaces)[1].max(axis=1).min() > 0.99
