"""Known-answer tests for factored.analysis on synthetic beliefs and activations."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from factored import analysis as an
from factored.analysis import joint_belief

D = 120


def synthetic_beliefs(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """3 Mess3-like factors (Dirichlet on the simplex) and 2 Bloch-like ones (trace 1/3, (x, z) in a disk).

    Dirichlet(11/3) has in-plane variance 1/36 per direction, the same as a uniform disk of radius 1/3, so
    all 10 belief directions carry 10% of the variance each and dims@95 is exactly 10.
    """
    mess3 = [rng.dirichlet(np.full(3, 11 / 3), size=n) for _ in range(3)]
    bloch = []
    for _ in range(2):
        r, phi = np.sqrt(rng.random(n)) / 3, rng.random(n) * 2 * np.pi
        bloch.append(np.stack([np.full(n, 1 / 3), r * np.cos(phi), r * np.sin(phi)], axis=1))
    return mess3 + bloch


def random_orthonormal(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """[k, d] with orthonormal rows, uniformly random."""
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T


def embed(beliefs: list[np.ndarray], noise: float, rng: np.random.Generator) -> np.ndarray:
    """Random isometric embedding of the concatenated beliefs in R^D, an offset, and Gaussian noise."""
    Y = np.concatenate(beliefs, axis=1)
    E = random_orthonormal(D, Y.shape[1], rng)
    return Y @ E + 5.0 + noise * rng.standard_normal((len(Y), D))


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Small arrays on a shared 2-core machine: a threaded BLAS would spend its time waiting, not working."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    beliefs = synthetic_beliefs(6000, rng)
    return beliefs, embed(beliefs, 1e-4, rng)


# --------------------------------------------------------------------------------------------------- PCA
def test_cev_matches_sklearn():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 20)) @ rng.standard_normal((20, 20)) + 3.0
    expected = np.cumsum(PCA().fit(X).explained_variance_ratio_)
    np.testing.assert_allclose(an.cumulative_explained_variance(X), expected, atol=1e-10)
    # n < d takes the SVD route: still sklearn's answer, length min(n, d)
    Xw = X[:12]
    got = an.cumulative_explained_variance(Xw)
    assert got.shape == (12,)
    np.testing.assert_allclose(got, np.cumsum(PCA().fit(Xw).explained_variance_ratio_), atol=1e-10)


def test_cev_float32_and_chunking():
    rng = np.random.default_rng(2)
    X = (rng.standard_normal((40000, 8)) * np.arange(1, 9)).astype(np.float32)  # > one chunk
    expected = np.cumsum(PCA().fit(X.astype(np.float64)).explained_variance_ratio_)
    np.testing.assert_allclose(an.cumulative_explained_variance(X), expected, atol=1e-9)


def test_dims_of_factored_embedding(data):
    beliefs, acts = data
    summary = an.pca_summary(acts)
    assert summary["dims"][0.95] == 10  # sum(d_n - 1)
    assert summary["dims"][0.99] == 10  # the noise is far below 1% of the variance
    assert an.dims_at(summary["cev"], 0.85) == 9  # each belief direction carries 10%
    assert set(summary["dims"]) == {0.8, 0.9, 0.95, 0.99}
    assert an.dims_at(an.factored_reference(beliefs), 0.95) == 10
    assert an.dims_at(an.factored_reference(beliefs), 1.0) == 10


def test_joint_reference_is_kron():
    rng = np.random.default_rng(3)
    beliefs = [rng.dirichlet(np.ones(3), size=400), rng.dirichlet(np.ones(2), size=400)]
    joint = joint_belief(beliefs)
    assert joint.shape == (400, 6)
    np.testing.assert_allclose(joint[7], np.kron(beliefs[0][7], beliefs[1][7]))  # factor 0 most significant
    cev = an.joint_reference(beliefs)
    # (3 x 2) product beliefs with generic independent factors span prod(d_n) - 1 = 5 affine dimensions
    assert an.dims_at(cev, 1.0) == 5
    assert an.dims_at(an.factored_reference(beliefs), 1.0) == 3


def test_dims_at_edges():
    cev = np.array([0.5, 0.8, 0.95, 1.0])
    assert an.dims_at(cev, 0.5) == 1
    assert an.dims_at(cev, 0.4) == 1
    assert an.dims_at(cev, 0.81) == 3
    assert an.dims_at(cev, 0.95) == 3
    assert an.dims_at(cev, 1.0) == 4
    assert an.dims_at(np.array([0.3, 1.0 - 1e-15]), 1.0) == 2  # cumsum rounding still reaches 1
    for bad in (0.0, -0.1, 1.01, np.nan):
        with pytest.raises(ValueError, match="threshold"):
            an.dims_at(cev, bad)
    with pytest.raises(ValueError, match="cev"):
        an.dims_at(np.zeros((2, 2)), 0.5)


def test_pca_bad_inputs():
    with pytest.raises(ValueError, match="X"):
        an.cumulative_explained_variance(np.zeros(5))
    with pytest.raises(ValueError, match="zero variance"):
        an.cumulative_explained_variance(np.ones((10, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        an.cumulative_explained_variance(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(ValueError, match="beliefs"):
        an.factored_reference([np.ones((5, 3)), np.ones((4, 3))])


# ------------------------------------------------------------------------------------------- regression
def test_regression_recovers_beliefs(data):
    beliefs, acts = data
    res = an.belief_regression(acts, beliefs, seed=0)
    assert res.rmse.shape == res.r2.shape == (5,)
    assert np.all(res.rmse < 1e-3) and res.rmse_overall < 1e-3
    assert np.all(res.r2 > 0.999) and res.r2_overall > 0.999
    assert res.val_mse.shape == res.rconds.shape and res.rcond in res.rconds
    pred = res.predict(acts[:10])
    assert [p.shape for p in pred] == [(10, 3)] * 5
    np.testing.assert_allclose(pred[3][:, 0], 1 / 3, atol=1e-3)  # Bloch trace coordinate
    d = res.to_dict()
    assert len(d["rmse"]) == 5 and isinstance(d["rcond"], float)


def test_regression_error_grows_with_noise():
    rng = np.random.default_rng(4)
    beliefs = synthetic_beliefs(4000, rng)
    rmses = []
    for noise in (1e-4, 1e-2, 5e-2):
        res = an.belief_regression(embed(beliefs, noise, np.random.default_rng(5)), beliefs)
        rmses.append(res.rmse_overall)
    assert rmses[0] < rmses[1] < rmses[2]
    # OLS with 120 noisy inputs: error about noise * sqrt(m/(n - d)) per coordinate... bounded by the noise
    assert rmses[1] < 1e-2


def test_regression_unregularised_equals_lstsq():
    rng = np.random.default_rng(6)
    beliefs = synthetic_beliefs(1500, rng)
    acts = embed(beliefs, 0.05, rng)[:, :40]  # full rank, well conditioned
    res = an.belief_regression(acts, beliefs, rconds=[0.0], holdout=0.25, seed=3)
    train, _, test = an.split_indices(len(acts), holdout=0.25, seed=3)
    design = np.hstack([np.ones((len(acts), 1)), acts])
    Y = np.concatenate(beliefs, axis=1)
    coef, *_ = np.linalg.lstsq(design[train], Y[train], rcond=None)
    pred = design[test] @ coef
    np.testing.assert_allclose(np.concatenate(res.predict(acts[test]), axis=1), pred, atol=1e-9)
    np.testing.assert_allclose(res.rmse_overall, np.sqrt(((pred - Y[test]) ** 2).mean()), rtol=1e-8)
    sl = slice(3, 6)
    r2 = 1 - ((pred[:, sl] - Y[test, sl]) ** 2).sum() / ((Y[test, sl] - Y[test, sl].mean(0)) ** 2).sum()
    np.testing.assert_allclose(res.r2[1], r2, rtol=1e-8)


def test_regression_fewer_samples_than_width():
    rng = np.random.default_rng(13)
    beliefs = synthetic_beliefs(150, rng)
    res = an.belief_regression(embed(beliefs, 1e-3, rng), beliefs, holdout=0.2)  # 90 training rows < D
    assert res.weights.shape == (D, 15) and res.r2_overall > 0.99


def test_regression_selects_on_validation():
    # Only 1 informative direction among many noisy ones with few samples: truncation must win on validation.
    rng = np.random.default_rng(7)
    n, d = 300, 100
    y = rng.random((n, 1))
    scales = np.r_[10.0, np.full(d - 1, 1e-3)]
    acts = np.hstack([y, rng.standard_normal((n, d - 1))]) * scales + 1e-3 * rng.standard_normal((n, d))
    res = an.belief_regression(acts, [y], rconds=[0.0, 1e-2], seed=0)
    assert res.rcond == 1e-2 and res.val_mse[1] < res.val_mse[0]


def test_split_indices_partition():
    train, val, test = an.split_indices(101, holdout=0.2, seed=1)
    assert len(val) == len(test) == 20 and len(train) == 61
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(101))
    assert np.array_equal(an.split_indices(101, 0.2, 1)[0], train)  # same seed, same split


def test_regression_bad_inputs(data):
    beliefs, acts = data
    with pytest.raises(ValueError, match="beliefs"):
        an.belief_regression(acts[:-1], beliefs)
    with pytest.raises(ValueError, match="beliefs"):
        an.belief_regression(acts, np.concatenate(beliefs, axis=1))
    with pytest.raises(ValueError, match="acts"):
        an.belief_regression(acts[0], beliefs)
    with pytest.raises(ValueError, match="rconds"):
        an.belief_regression(acts, beliefs, rconds=[-1.0])
    with pytest.raises(ValueError, match="holdout"):
        an.belief_regression(acts, beliefs, holdout=0.5)
    res = an.belief_regression(acts[:200], [b[:200] for b in beliefs])
    with pytest.raises(ValueError, match="width"):
        res.predict(acts[:5, :10])


# -------------------------------------------------------------------------------------- vary-one, overlap
def vary_one_acts(basis: np.ndarray, stds: np.ndarray, rng: np.random.Generator, offsets: np.ndarray):
    """[10 settings, 50 seqs, 4 positions, D]: varying part in span(basis [k, D]) with per-direction stds,
    plus a per-(setting, position) offset (the frozen other factors) that centring must remove."""
    coeffs = rng.standard_normal((10, 50, 4, len(basis))) * stds
    return coeffs @ basis + offsets[:, None, :, :] + 1e-6 * rng.standard_normal((10, 50, 4, D))


def test_orthogonal_factors_do_not_overlap():
    rng = np.random.default_rng(8)
    Q = random_orthonormal(D, 12, rng)
    offsets = 3.0 * rng.standard_normal((10, 4, 2)) @ Q[10:]  # other factors, outside every factor's plane
    stds = np.array([1.0, 0.8])  # comparable variances: the union's dims@95 is exactly 10
    acts = [vary_one_acts(Q[2 * i : 2 * i + 2], stds, rng, offsets) for i in range(5)]
    subs = [an.factor_subspace(a) for a in acts]
    for sub in subs:
        assert sub["directions"].shape == (D, D) and sub["dims95"] == 2
        np.testing.assert_allclose(sub["directions"] @ sub["directions"].T, np.eye(D), atol=1e-10)
        assert sub["singular_values"].shape == sub["cev"].shape == (D,)
    V = [s["directions"] for s in subs]
    mean = an.mean_pairwise_overlap(V, ks=[1, 2])
    assert np.all(mean < 1e-6)
    mat = an.overlap_matrix(V, ks=range(1, 21))
    assert mat.shape == (5, 5, 20)
    np.testing.assert_allclose(mat[np.arange(5), np.arange(5)], 1.0, atol=1e-10)  # self-overlap
    np.testing.assert_allclose(mat, mat.transpose(1, 0, 2), atol=1e-12)
    n_union = an.union_dims(acts)
    assert n_union == 10


def test_rotated_factor_overlap_is_cos2():
    rng = np.random.default_rng(9)
    e = random_orthonormal(D, 4, rng)
    theta = 0.4
    u = np.cos(theta) * e[0] + np.sin(theta) * e[2]  # factor j's top direction, rotated out of factor i's plane
    stds = np.array([1.0, 0.5])
    offsets = np.zeros((10, 4, D))
    sub_i = an.factor_subspace(vary_one_acts(e[:2], stds, rng, offsets))
    sub_j = an.factor_subspace(vary_one_acts(np.stack([u, e[3]]), stds, rng, offsets))
    Vi, Vj = sub_i["directions"], sub_j["directions"]
    np.testing.assert_allclose(an.subspace_overlap(Vi, Vj, 1), np.cos(theta) ** 2, atol=2e-3)
    np.testing.assert_allclose(an.subspace_overlap(Vi, Vj, 2), np.cos(theta) ** 2 / 2, atol=2e-3)
    mat = an.overlap_matrix([Vi, Vj], ks=[1, 2])
    np.testing.assert_allclose(mat[0, 1], [an.subspace_overlap(Vi, Vj, k) for k in (1, 2)], atol=1e-12)
    assert an.subspace_overlap(Vi, Vi, 7) == pytest.approx(1.0)


def test_random_subspaces_overlap_k_over_d():
    rng = np.random.default_rng(10)
    d, k = 60, 5
    vals = [an.subspace_overlap(random_orthonormal(d, k, rng), random_orthonormal(d, k, rng), k) for _ in range(400)]
    assert np.mean(vals) == pytest.approx(an.random_subspace_overlap(k, d), rel=0.05)
    with pytest.raises(ValueError, match="k"):
        an.random_subspace_overlap(0, d)


def test_overlap_bad_inputs():
    rng = np.random.default_rng(11)
    V = random_orthonormal(20, 4, rng)
    with pytest.raises(ValueError, match="k"):
        an.subspace_overlap(V, V, 5)
    with pytest.raises(ValueError, match="V_j"):
        an.subspace_overlap(V, V[:, :10], 1)
    with pytest.raises(ValueError, match="ks"):
        an.overlap_matrix([V, V], ks=range(1, 6))
    with pytest.raises(ValueError, match="directions"):
        an.mean_pairwise_overlap([V])
    with pytest.raises(ValueError, match="acts"):
        an.factor_subspace(rng.standard_normal((10, 200, 4)))
    with pytest.raises(ValueError, match="acts_by_factor"):
        an.union_dims([rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 6))])


def test_baseline_band():
    values = np.arange(101, dtype=float)[:, None] * np.ones((1, 3))
    lo, med, hi = an.baseline_band(values)
    np.testing.assert_allclose([lo, med, hi], [[5.0] * 3, [50.0] * 3, [95.0] * 3])
    with pytest.raises(ValueError, match="q"):
        an.baseline_band(values, q=(60, 95))


# ----------------------------------------------------------------------------------- projections, colours
def test_project_centred():
    rng = np.random.default_rng(12)
    V = random_orthonormal(D, 3, rng)
    coords = rng.standard_normal((50, 3))
    acts = coords @ V + 2.0
    got = an.project(acts, V, k=2)
    np.testing.assert_allclose(got, coords[:, :2] - coords[:, :2].mean(0), atol=1e-10)
    with pytest.raises(ValueError, match="k"):
        an.project(acts, V, k=4)


def test_belief_to_2d():
    corners = np.eye(3)
    np.testing.assert_allclose(an.belief_to_2d(corners), [[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]])
    np.testing.assert_allclose(an.belief_to_2d(np.full(3, 1 / 3)), [0.5, np.sqrt(3) / 6])  # centroid
    bloch = np.array([[1 / 3, 1 / 3, 0.0], [1 / 3, 0.0, -1 / 6], [1 / 3, 0.0, 0.0]])
    np.testing.assert_allclose(an.belief_to_2d(bloch, "bloch"), [[1, 0], [0, -0.5], [0, 0]])
    with pytest.raises(ValueError, match="kind"):
        an.belief_to_2d(corners, "sphere")


# ------------------------------------------------------------------------------------ variance decomposition
def test_variance_explained_known_answer():
    # acts = beliefs embedded in 10 directions + a token one-hot (4 classes) in 3 more directions + small noise:
    # the beliefs alone explain their share; adding the tokens explains nearly everything, 10 + 3 dims fitted
    rng = np.random.default_rng(0)
    n = 20_000
    beliefs = synthetic_beliefs(n, rng)
    token = rng.integers(0, 4, n)
    centred = np.hstack([b - b.mean(0) for b in beliefs])  # 15 coordinates spanning 10 directions
    basis = random_orthonormal(D, 13, rng)
    signal_b = centred @ np.linalg.qr(rng.standard_normal((15, 10)))[0] @ basis[:10]
    signal_t = (an.one_hot(token, 4)[:, :3] - 0.25) * 0.3 @ basis[10:]
    acts = signal_b + signal_t + 1e-3 * rng.standard_normal((n, D))
    rows = an.variance_explained(acts, {"beliefs": np.hstack(beliefs), "+ token": an.one_hot(token, 4)})
    var_b, var_t = signal_b.var(0).sum(), signal_t.var(0).sum()
    assert rows[0]["r2"] == pytest.approx(var_b / (var_b + var_t), abs=0.01)
    assert rows[1]["r2"] > 0.99 and rows[1]["residual_share"] < 0.01
    assert rows[0]["fitted_dims95"] <= 10 and rows[1]["fitted_dims95"] <= 13
    assert rows[0]["residual_dims95"] == 3  # what the beliefs leave is the token's 3 directions
    assert [r["n_features"] for r in rows] == [15, 19]


def test_one_hot_and_quadratic_features():
    np.testing.assert_array_equal(an.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels must be"):
        an.one_hot(np.array([3]), 3)
    q = an.quadratic_features([np.array([[1.0, 2.0]]), np.array([[3.0, 4.0, 5.0]])])
    np.testing.assert_array_equal(q, [[1, 2, 4, 9, 12, 15, 16, 20, 25]])  # within factor only, i <= j


def test_variance_explained_bad_inputs():
    with pytest.raises(ValueError, match=r"feature_sets\['x'\] must have 10 rows"):
        an.variance_explained(np.zeros((10, 3)), {"x": np.zeros((9, 2))})
