"""Analyses of a network's activations against the beliefs of a factored process (numpy only).

Everything here is a pure function on arrays: it knows nothing of models or torch, so every number can be
checked on synthetic data with a known answer. Inputs may be float32; all arithmetic is float64.

- Dimension: cumulative explained variance (CEV) of a PCA, and dims@k% = fewest components reaching k%.
  References: the CEV of the concatenated factor beliefs ("Factored") and of their outer product ("Joint").
- Belief regression: one affine map from activations to the concatenated beliefs, truncated-SVD pseudo-inverse
  with an rcond sweep (the authors' method), rcond chosen on a validation split and reported on a test split.
- Vary-one subspaces: factor i's directions from activations where only factor i's tokens vary, and the
  overlap ||V_i[:k] V_j[:k]^T||_F^2 / k between two factors' top-k directions (0 orthogonal, 1 equal).
- Projections and colours that redraw each factor's belief geometry (Mess3 simplex, Bloch disk).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

THRESHOLDS = (0.8, 0.9, 0.95, 0.99)
DEFAULT_RCONDS = tuple(float(r) for r in np.logspace(-8, -1, 8))
_CHUNK = 16384  # rows per chunk when accumulating a covariance: bounds memory, keeps BLAS efficient
_CEV_TOL = 1e-12  # cumsum rounding: a CEV of 1 - 1e-16 still "reaches" a threshold of 1


# ----------------------------------------------------------------------------------------------- validation
def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, d], got shape {x.shape}")
    return x


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")


def _as_factor_list(beliefs: Sequence[np.ndarray], n: int | None = None) -> list[np.ndarray]:
    """beliefs: list[N] of [n, S_n] -> float64 arrays, checked to share n (and to equal `n` if given)."""
    if isinstance(beliefs, np.ndarray) or len(beliefs) == 0:
        raise ValueError("beliefs must be a non-empty list of per-factor arrays [n, S_n]")
    out = [np.asarray(b, dtype=np.float64) for b in beliefs]
    for i, b in enumerate(out):
        if b.ndim != 2:
            raise ValueError(f"beliefs[{i}] must be 2-D [n, S_n], got shape {b.shape}")
    sizes = {b.shape[0] for b in out}
    if len(sizes) != 1 or (n is not None and sizes != {n}):
        want = f" (acts has n={n})" if n is not None else ""
        raise ValueError(f"beliefs must all have the same number of rows{want}, got {[b.shape for b in out]}")
    return out


def _check_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return float(threshold)


# ------------------------------------------------------------------------------------------------ dimension
def _centred_gram(X: np.ndarray) -> np.ndarray:
    """X: [n, d] -> sum_i (x_i - mean)(x_i - mean)^T, [d, d] float64, accumulated in row chunks."""
    mean = X.mean(axis=0, dtype=np.float64)
    gram = np.zeros((X.shape[1], X.shape[1]))
    for start in range(0, X.shape[0], _CHUNK):
        chunk = X[start : start + _CHUNK].astype(np.float64) - mean
        gram += chunk.T @ chunk
    return gram


def cumulative_explained_variance(X: np.ndarray) -> np.ndarray:
    """CEV of a PCA of X: [n, d] -> [min(n, d)], non-decreasing, last entry 1.

    Equals sklearn's PCA().explained_variance_ratio_.cumsum(). For n >= d (the usual case: 1e5 samples of
    width 120) the eigenvalues of the d x d covariance give the spectrum at a fraction of an SVD's cost.
    """
    X = _as_2d(X, "X")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X needs at least 2 rows, got {n}")
    _check_finite(X, "X")
    if n >= d:
        var = np.linalg.eigvalsh(_centred_gram(X))[::-1]
    else:
        Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
        var = np.linalg.svd(Xc, compute_uv=False) ** 2
    var = np.clip(var, 0.0, None)  # eigvalsh can return -1e-17 for null directions
    total = var.sum()
    if total <= 0:
        raise ValueError("X has zero variance: explained variance is undefined")
    return np.minimum(np.cumsum(var) / total, 1.0)


def dims_at(cev: np.ndarray, threshold: float) -> int:
    """Fewest components whose cumulative explained variance reaches `threshold`. cev: [k] -> int in 1..k."""
    cev = np.asarray(cev, dtype=np.float64)
    if cev.ndim != 1 or cev.size == 0:
        raise ValueError(f"cev must be a non-empty 1-D array, got shape {cev.shape}")
    threshold = _check_threshold(threshold)
    reached = cev >= threshold - _CEV_TOL
    return int(np.argmax(reached)) + 1 if reached.any() else cev.size


def pca_summary(X: np.ndarray, thresholds: Iterable[float] = THRESHOLDS) -> dict:
    """X: [n, d] -> {"cev": [min(n, d)], "dims": {threshold: dims_at(cev, threshold)}}."""
    cev = cumulative_explained_variance(X)
    return {"cev": cev, "dims": {float(t): dims_at(cev, t) for t in thresholds}}


def factored_reference(beliefs: Sequence[np.ndarray]) -> np.ndarray:
    """CEV of the concatenated factor beliefs (list[N] of [n, S_n]): the 'Factored' reference curve."""
    return cumulative_explained_variance(np.concatenate(_as_factor_list(beliefs), axis=1))


def joint_belief(beliefs):
    """Kronecker product of per-factor beliefs (list[N] of [..., S_n]) -> [..., prod S_n], factor 0 first: the
    joint belief, every cross-factor product of belief coordinates (numpy arrays or torch tensors alike)."""

    def outer(a, b):
        return (a[..., :, None] * b[..., None, :]).reshape(*a.shape[:-1], a.shape[-1] * b.shape[-1])

    return reduce(outer, beliefs)


def joint_reference(beliefs: Sequence[np.ndarray]) -> np.ndarray:
    """CEV of the joint belief (outer product of the factor beliefs): the 'Joint' reference curve."""
    return cumulative_explained_variance(joint_belief(_as_factor_list(beliefs)))


# ----------------------------------------------------------------------------------------- belief regression
def split_indices(n: int, holdout: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (train, val, test) row indices; val and test each take a `holdout` fraction of n."""
    if not 0.0 < holdout < 0.5:
        raise ValueError(f"holdout must be in (0, 0.5), got {holdout}")
    n_hold = max(1, round(holdout * n))
    if n - 2 * n_hold < 2:
        raise ValueError(f"n={n} rows are too few for a train/val/test split with holdout={holdout}")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[2 * n_hold :], perm[:n_hold], perm[n_hold : 2 * n_hold]


@dataclass(frozen=True)
class BeliefRegression:
    """Affine map acts -> concatenated beliefs, with its held-out (test split) scores.

    rmse, r2: [N] per factor; rmse_overall, r2_overall: pooled over all belief coordinates.
    rconds, val_mse: the sweep and its validation mean squared error; rcond: the chosen value.
    weights: [d, sum S_n], bias: [sum S_n]; factor_dims: (S_0, ..., S_{N-1}).
    """

    rmse: np.ndarray
    r2: np.ndarray
    rmse_overall: float
    r2_overall: float
    rcond: float
    rconds: np.ndarray
    val_mse: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    factor_dims: tuple[int, ...]

    def predict(self, acts: np.ndarray) -> list[np.ndarray]:
        """acts: [n, d] -> predicted beliefs, list[N] of [n, S_n]."""
        acts = _as_2d(acts, "acts")
        if acts.shape[1] != self.weights.shape[0]:
            raise ValueError(f"acts must have width {self.weights.shape[0]}, got {acts.shape[1]}")
        pred = acts.astype(np.float64) @ self.weights + self.bias
        return np.split(pred, np.cumsum(self.factor_dims)[:-1], axis=1)

    def to_dict(self) -> dict:
        """Plain floats and lists, for metrics files and tables."""
        return {
            "rmse": [float(v) for v in self.rmse],
            "r2": [float(v) for v in self.r2],
            "rmse_overall": self.rmse_overall,
            "r2_overall": self.r2_overall,
            "rcond": self.rcond,
        }


def _r2(pred: np.ndarray, target: np.ndarray) -> float:
    """1 - SSE/SST pooled over coordinates (SST around the target mean); NaN when the target is constant."""
    sst = ((target - target.mean(axis=0)) ** 2).sum()
    sse = ((pred - target) ** 2).sum()
    return float(1.0 - sse / sst) if sst > 0 else float("nan")


def belief_regression(
    acts: np.ndarray,
    beliefs: Sequence[np.ndarray],
    *,
    rconds: Iterable[float] = DEFAULT_RCONDS,
    holdout: float = 0.2,
    seed: int = 0,
) -> BeliefRegression:
    """Regress concatenated beliefs on activations; choose rcond on a validation split, score on a test split.

    acts: [n, d]; beliefs: list[N] of [n, S_n]. Split (1 - 2 holdout) / holdout / holdout by `seed`.
    The fit is the truncated-SVD pseudo-inverse of the training design: singular values below
    rcond * s_max are dropped (rcond=0 keeps all: ordinary least squares). Unlike the authors, who append a
    ones column, we centre acts and beliefs on the training means, so the intercept is never truncated and
    the fit is invariant to an offset of the activations; at rcond -> 0 both are the same least squares.
    rcond is chosen by validation MSE, not in-sample, and the reported scores are on unseen test rows.
    """
    acts = _as_2d(acts, "acts")
    beliefs = _as_factor_list(beliefs, n=acts.shape[0])
    rconds = np.asarray(list(rconds), dtype=np.float64)
    if rconds.ndim != 1 or rconds.size == 0 or (rconds < 0).any() or not np.isfinite(rconds).all():
        raise ValueError(f"rconds must be a non-empty sequence of finite values >= 0, got {rconds}")
    _check_finite(acts, "acts")
    Y = np.concatenate(beliefs, axis=1)
    _check_finite(Y, "beliefs")
    train, val, test = split_indices(acts.shape[0], holdout, seed)

    # One SVD of the centred training design X = U s V^T; every rcond then only rescales s^-1. We need only
    # s, V and U^T Y: a QR of [X | Y] = Q [R1 | R2] gives them from small matrices (SVD R1 = Ur s V^T, so
    # U = Q Ur and U^T Y = Ur^T R2) at about half the cost of a full SVD, and as backward stable.
    d = acts.shape[1]
    X_tr = acts[train].astype(np.float64)
    x_mean, y_mean = X_tr.mean(axis=0), Y[train].mean(axis=0)
    r = np.linalg.qr(np.hstack([X_tr - x_mean, Y[train] - y_mean]), mode="r")  # [min(n, d + m), d + m]
    del X_tr
    u_r, s, vt = np.linalg.svd(r[:, :d], full_matrices=False)
    uty = u_r.T @ r[:, d:]  # [k, m]
    z_val = (acts[val].astype(np.float64) - x_mean) @ vt.T  # validation rows in the singular basis
    s_max = s[0] if s.size else 0.0

    def inv_s(rcond: float) -> np.ndarray:
        return np.divide(1.0, s, out=np.zeros_like(s), where=s > rcond * s_max)

    val_mse = np.array([(((z_val * inv_s(rc)) @ uty + y_mean - Y[val]) ** 2).mean() for rc in rconds])
    best = float(rconds[int(np.argmin(val_mse))])
    weights = vt.T @ (inv_s(best)[:, None] * uty)  # [d, m]
    bias = y_mean - x_mean @ weights

    pred, target = acts[test].astype(np.float64) @ weights + bias, Y[test]
    bounds = np.cumsum([0] + [b.shape[1] for b in beliefs])
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return BeliefRegression(
        rmse=np.array([np.sqrt(((pred[:, sl] - target[:, sl]) ** 2).mean()) for sl in slices]),
        r2=np.array([_r2(pred[:, sl], target[:, sl]) for sl in slices]),
        rmse_overall=float(np.sqrt(((pred - target) ** 2).mean())),
        r2_overall=_r2(pred, target),
        rcond=best,
        rconds=rconds,
        val_mse=val_mse,
        weights=weights,
        bias=bias,
        factor_dims=tuple(b.shape[1] for b in beliefs),
    )


# ------------------------------------------------------------------------ what the activations' variance holds
def variance_explained(
    acts: np.ndarray, feature_sets: dict[str, np.ndarray], holdout: float = 0.2, seed: int = 0
) -> list[dict]:
    """Nested linear encoding models: how much of the activations' variance is a linear function of growing
    feature sets, and how many dimensions the rest still spans.

    acts: [n, d]; feature_sets: ordered {name: [n, f]}; step m regresses acts on the first m sets together
    (affine least squares on a training split). Per step: `r2`, the share of the activations' total variance
    explained on the held-out split (pooled over the d dimensions); `fitted_dims95`, dims@95 of the fitted
    part; `residual_dims95`, dims@95 of what is left; `residual_share`, the unexplained share (1 - r2).
    Where dims@95 of the activations exceeds the factored count, this says what the extra dimensions carry:
    beliefs enter linearly in a factored representation, so any further feature set that explains variance
    is something else the network keeps (e.g. the current token, nonlinear functions of the beliefs).
    """
    acts = _as_2d(acts, "acts").astype(np.float64)
    train, _, test = split_indices(acts.shape[0], holdout, seed)
    x_mean = acts[train].mean(axis=0)
    sst = ((acts[test] - x_mean) ** 2).sum()
    rows, columns = [], []
    for name, features in feature_sets.items():
        features = _as_2d(features, f"feature_sets[{name!r}]").astype(np.float64)
        if features.shape[0] != acts.shape[0]:
            raise ValueError(f"feature_sets[{name!r}] must have {acts.shape[0]} rows, got {features.shape[0]}")
        columns.append(features)
        F = np.hstack(columns)
        f_mean = F[train].mean(axis=0)
        coef, *_ = np.linalg.lstsq(F[train] - f_mean, acts[train] - x_mean, rcond=None)
        fitted = (F[test] - f_mean) @ coef
        residual = acts[test] - x_mean - fitted
        r2 = 1.0 - (residual**2).sum() / sst
        rows.append(
            {
                "features": name,
                "n_features": F.shape[1],
                "r2": float(r2),
                "residual_share": float(1.0 - r2),
                "fitted_dims95": dims_at(cumulative_explained_variance(fitted), 0.95),
                "residual_dims95": dims_at(cumulative_explained_variance(residual), 0.95),
            }
        )
    return rows


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """labels: [n] ints in [0, n_classes) -> [n, n_classes] float64 indicator columns."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be a 1-D array of ints in [0, {n_classes}), got shape {labels.shape}")
    return np.eye(n_classes)[labels]


def quadratic_features(beliefs: Sequence[np.ndarray]) -> np.ndarray:
    """Within-factor products b_i b_j (i <= j) of each factor's belief: list[N] of [n, S] -> [n, sum S(S+1)/2]."""
    out = []
    for b in _as_factor_list(beliefs):
        i, j = np.triu_indices(b.shape[1])
        out.append(b[:, i] * b[:, j])
    return np.hstack(out)


# ---------------------------------------------------------------------------------------- vary-one subspaces
def _vary_one_gram(acts: np.ndarray, name: str = "acts") -> np.ndarray:
    """acts: [n_settings, n_seq, L, d] -> [d, d] Gram matrix of the acts centred per (setting, position).

    Within a setting the other factors' tokens are frozen, so subtracting the mean over sequences at each
    position removes their contribution (and the position's own offset); what is left varies with factor i.
    The centred rows have mean zero, so this Gram matrix is their (unnormalised) covariance.
    """
    acts = np.asarray(acts)
    if acts.ndim != 4:
        raise ValueError(f"{name} must be 4-D [n_settings, n_seq, L, d], got shape {acts.shape}")
    if acts.shape[1] < 2:
        raise ValueError(f"{name} needs n_seq >= 2 sequences per setting, got {acts.shape[1]}")
    _check_finite(acts, name)
    centred = (acts - acts.mean(axis=1, keepdims=True, dtype=np.float64)).reshape(-1, acts.shape[-1])
    return centred.T @ centred


def factor_subspace(acts: np.ndarray) -> dict:
    """Directions of one factor from vary-one activations acts: [n_settings, n_seq, L, d].

    Returns {"directions": [k_max, d] orthonormal rows by decreasing variance, "singular_values": [k_max],
    "cev": [k_max], "dims95": int}, with k_max = min(n_settings * n_seq * L, d): the right singular vectors
    and singular values of the centred [n_settings * n_seq * L, d] matrix. They come from the eigenvectors of
    its d x d Gram matrix, several times cheaper than an SVD and as accurate for the leading directions.
    """
    var, vecs = np.linalg.eigh(_vary_one_gram(acts))
    k_max = min(int(np.prod(np.shape(acts)[:3])), var.size)
    var, vecs = np.clip(var[::-1][:k_max], 0.0, None), vecs[:, ::-1][:, :k_max]
    if var.sum() <= 0:
        raise ValueError("acts do not vary within any setting: the factor's subspace is undefined")
    cev = np.minimum(np.cumsum(var) / var.sum(), 1.0)
    return {
        "directions": vecs.T.copy(),
        "singular_values": np.sqrt(var),
        "cev": cev,
        "dims95": dims_at(cev, 0.95),
    }


def union_dims(acts_by_factor: Sequence[np.ndarray], threshold: float = 0.95) -> int:
    """dims@threshold of all factors' centred vary-one activations together (list[N] of [S, n_seq, L, d])."""
    if len(acts_by_factor) == 0:
        raise ValueError("acts_by_factor must be a non-empty list of [n_settings, n_seq, L, d] arrays")
    grams = [_vary_one_gram(a, f"acts_by_factor[{i}]") for i, a in enumerate(acts_by_factor)]
    if len({g.shape for g in grams}) != 1:
        raise ValueError(f"acts_by_factor must share the width d, got {[len(g) for g in grams]}")
    # Every block is centred (mean zero), so the union's covariance is the sum of the blocks' Gram matrices.
    var = np.clip(np.linalg.eigvalsh(sum(grams))[::-1], 0.0, None)
    if var.sum() <= 0:
        raise ValueError("acts_by_factor do not vary within any setting: dimension is undefined")
    return dims_at(np.minimum(np.cumsum(var) / var.sum(), 1.0), threshold)


def _check_directions(V: np.ndarray, name: str) -> np.ndarray:
    return _as_2d(V, name).astype(np.float64)


def subspace_overlap(V_i: np.ndarray, V_j: np.ndarray, k: int) -> float:
    """||V_i[:k] V_j[:k]^T||_F^2 / k for orthonormal rows V: [>=k, d]; 0 orthogonal, 1 the same subspace."""
    V_i, V_j = _check_directions(V_i, "V_i"), _check_directions(V_j, "V_j")
    if V_i.shape[1] != V_j.shape[1]:
        raise ValueError(f"V_i and V_j must share the width d, got {V_i.shape} and {V_j.shape}")
    if not 1 <= k <= min(len(V_i), len(V_j)):
        raise ValueError(f"k must be in 1..{min(len(V_i), len(V_j))}, got {k}")
    return float(((V_i[:k] @ V_j[:k].T) ** 2).sum() / k)


def overlap_matrix(directions: Sequence[np.ndarray], ks: Iterable[int] = range(1, 21)) -> np.ndarray:
    """Overlap of every pair of factors at every rank: list[N] of V [k_n, d] -> [N, N, len(ks)]."""
    Vs = [_check_directions(V, f"directions[{i}]") for i, V in enumerate(directions)]
    ks = np.asarray(list(ks), dtype=int)
    if not Vs:
        raise ValueError("directions must be a non-empty list of [k, d] arrays")
    if len({V.shape[1] for V in Vs}) != 1:
        raise ValueError(f"directions must share the width d, got {[V.shape for V in Vs]}")
    k_avail = min(len(V) for V in Vs)
    if ks.ndim != 1 or ks.size == 0 or ks.min() < 1 or ks.max() > k_avail:
        raise ValueError(f"ks must be non-empty with values in 1..{k_avail}, got {ks.tolist()}")
    k_max = int(ks.max())
    out = np.empty((len(Vs), len(Vs), ks.size))
    for i, V_i in enumerate(Vs):
        for j, V_j in enumerate(Vs):
            sq = (V_i[:k_max] @ V_j[:k_max].T) ** 2
            # Leading-block sums for every k at once: cumsum over both axes, then read the diagonal.
            block = sq.cumsum(axis=0).cumsum(axis=1)
            out[i, j] = block[ks - 1, ks - 1] / ks
    return out


def mean_pairwise_overlap(directions: Sequence[np.ndarray], ks: Iterable[int] = range(1, 21)) -> np.ndarray:
    """Mean over factor pairs i < j of the overlap at each rank k: list[N >= 2] of V [k_n, d] -> [len(ks)]."""
    if len(directions) < 2:
        raise ValueError(f"directions needs at least 2 factors for a pairwise overlap, got {len(directions)}")
    mat = overlap_matrix(directions, ks)
    i, j = np.triu_indices(len(directions), k=1)
    return mat[i, j].mean(axis=0)


def overlap_split(directions: Sequence[np.ndarray], own: int = 2, k: int = 6) -> dict[str, float]:
    """Where the mean pairwise overlap at rank k comes from (directions: list[N >= 2] of vary-one [>= k, d]):
    "at_k", of the top k directions; "head", of each factor's top `own` directions (its belief: a Mess3 or
    Bloch belief spans 2); "tail", of directions own+1..k alone, which carry what varies with a factor's tokens
    beyond its belief. A tail that overlaps while the head does not says the factors share those directions."""
    k = min(k, *(len(V) for V in directions))
    if not 1 <= own < k:
        raise ValueError(f"own must be in 1..k-1 = {k - 1}, got {own}")
    return {
        "k": k,
        "at_k": float(mean_pairwise_overlap(directions, [k])[0]),
        "head": float(mean_pairwise_overlap([V[:own] for V in directions], [own])[0]),
        "tail": float(mean_pairwise_overlap([V[own:k] for V in directions], [k - own])[0]),
    }


def random_subspace_overlap(k: int, d: int) -> float:
    """Expected overlap of two uniformly random k-dimensional subspaces of R^d: k / d."""
    if not 1 <= k <= d:
        raise ValueError(f"k must be in 1..d={d}, got {k}")
    return k / d


def baseline_band(values: np.ndarray, q: tuple[float, float] = (5, 95)) -> tuple[np.ndarray, ...]:
    """Percentile band over models: values [n_models, ...] -> (lo, median, hi), each [...]."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 1 or values.shape[0] == 0:
        raise ValueError(f"values must be [n_models, ...] with n_models >= 1, got shape {values.shape}")
    lo, hi = q
    if not 0 <= lo <= 50 <= hi <= 100:
        raise ValueError(f"q must be (lo, hi) with 0 <= lo <= 50 <= hi <= 100, got {q}")
    lo_v, med, hi_v = np.percentile(values, [lo, 50, hi], axis=0)
    return lo_v, med, hi_v


# ------------------------------------------------------------------------------------ projections, colours
def project(acts: np.ndarray, V: np.ndarray, k: int = 2, mean: np.ndarray | None = None) -> np.ndarray:
    """Centred coordinates of acts: [n, d] on the first k rows of V: [>=k, d] -> [n, k].

    mean: [d] to centre with (default: the mean of acts), e.g. to put several data sets in one frame.
    """
    acts, V = _as_2d(acts, "acts").astype(np.float64), _as_2d(V, "V").astype(np.float64)
    if acts.shape[1] != V.shape[1]:
        raise ValueError(f"acts and V must share the width d, got {acts.shape} and {V.shape}")
    if not 1 <= k <= len(V):
        raise ValueError(f"k must be in 1..{len(V)}, got {k}")
    centre = acts.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    return (acts - centre) @ V[:k].T


_KINDS = ("simplex", "bloch")


def check_belief3(beliefs: np.ndarray, kind: str) -> np.ndarray:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    beliefs = np.asarray(beliefs, dtype=np.float64)
    if beliefs.ndim < 1 or beliefs.shape[-1] != 3:
        raise ValueError(f"beliefs must be [..., 3], got shape {beliefs.shape}")
    return beliefs


def belief_to_2d(beliefs: np.ndarray, kind: str = "simplex") -> np.ndarray:
    """beliefs: [..., 3] -> [..., 2] plane coordinates of a factor's belief geometry.

    simplex (HMM beliefs summing to 1): the 2-simplex as an equilateral triangle with states 0, 1, 2 at
    (0, 0), (1, 0), (1/2, sqrt(3)/2). bloch (trace, x, z): (x, z) / trace, the unit Bloch disk.
    """
    beliefs = check_belief3(beliefs, kind)
    if kind == "simplex":
        vertices = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
        return beliefs @ vertices
    return beliefs[..., 1:] / beliefs[..., :1]
