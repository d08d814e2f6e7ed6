"""Discovering factors from activations alone: no beliefs, no token codec (numpy, scipy, scikit-learn).

The vary-one subspaces and the belief regression of `analysis` need ground truth: which part of a token belongs
to which factor, and the true beliefs. This module finds the factors without either, from what a researcher
with a model of real data has: activations on sequences, tagged by position, and the model's unembedding.

The beliefs of independent factors are independent random variables, so a network that keeps them in separate
subspaces has activations whose projections on those subspaces are independent. Independent subspace analysis
finds them in three steps (ICA, then group the components that stay dependent), in one view of the activations:
  0. view: the activations as they are, or linearized (each unit through the increasing map under which the
     units are best explained by one linear code), whichever is the more compact (`analysed_view`; below);
  1. reduce: centre the view at each position, keep the top principal components, whiten;
  2. separate: FastICA rotates the whitened components to be as independent as possible. The coordinates of
     one factor cannot be made independent of each other (a Mess3 belief fills a triangle, a Bloch belief a
     disk: two coordinates, uncorrelated but bounded together), those of different factors can;
  3. group: the dependence of two components is the correlation of their energies (squares) at each position
     (root mean square over positions: positions differ in spread, which would couple every pair). Components
     are joined by average linkage; the tree is cut where the weakest link kept inside a group is clearly
     stronger than the strongest link left between groups (the ratio is the cut's *contrast*, at least
     MIN_CONTRAST); of such cuts, the one with the most groups (a Bloch disk's coordinates are far more dependent
     than a Mess3 triangle's: the cut between the kinds may be as clear as the cut between factors). Dependence
     below a threshold calibrated on shuffled sources (independent by construction) is noise and never joins
     anything. A component that depends on two groups is a cross-term and joins neither (below).
A factor is a group of >= 2 components (a lone component cannot be told from noise by independence alone);
its subspace is the span of its components' patterns (the covariance of the activations with its sources, in
the activations' own coordinates whichever the view), orthonormalised and ordered by variance.

Saturating nonlinearities. A unit whose input sums several factors' contributions, u = u_1 + u_2 + ..., and
saturates, tanh(u) = u - u^3 / 3 + ..., carries products of factors (u_f^2 u_g, u_f u_g u_h; any bounded
increasing function has such terms). They do two things. In a factor's own directions they scale its
coordinates by the other factors' energies: a shared gain (the more saturated a row, the smaller every factor)
that couples the energies of all factors, so the dependence between groups rises towards the dependence within
them (on the true planes of 5 factors in 40 dims, the strongest link between two factors goes from 0.06 to 0.19
as tanh's gain goes from 0 to 4, a Mess3 factor's own falls from 0.41 to 0.34: a contrast of 2.5 with perfect
subspaces, less after FastICA). In other directions they are components of their own, harmonics of one factor
and cross-terms of several, small in variance but whitened to unit variance like every kept component: once k
passes the factors' dimensions, FastICA mixes them into the factors' components, the groups chain, and a factor
found at k is not found again at k + 1. Two remedies, one for each place the nonlinearity can be:
  - where it acts unit by unit on the units observed (a recurrent net's hidden state), it is undone: the inverse
    of an increasing function of each unit is itself one, and it is the one under which the units are a linear
    code again (`linearized`: normal scores, which are that inverse where a unit's input is Gaussian, refined by
    fitting each unit's increasing map to the code's top principal components). It depends on the units only
    through their ranks, so tanh at any gain, a logistic or softsign give one view. Being fitted to be compact,
    it is used only where the code is saturated: where the normal scores, fitted to nothing, are the more compact
    view than the activations (`analysed_view`). Normal scores alone leave harmonics of strong factors in a weak
    factor's plane wherever the units' inputs are not Gaussian;
  - where it is not undone (it acted before a mixing, as a transformer's MLP writes into its residual stream, or
    it is a product of gates), a component that depends on two groups is a cross-term, not a factor's own: a
    factor's own component depends on its group alone. It is left out of both (`factor_groups`). Several such
    components can form a group of their own; what gives it away is where it lies: an image of factors is written
    back partly into their directions, while independent factors own theirs, so a group that shares a stronger
    group's directions is left out too (`images_of`).

How many components k to keep is scanned (`scan_and_choose`): up to two past the components above the noise
floor (weak factors carry little variance but stand clear of the noise), never past the numerical rank; the
k reported finds the most factors that are found again at k - 1 or k + 1. `FactorDiscovery` is the entry point (a
scikit-learn estimator), `find_factors` the same in one call.

Known answers and scores against ground truth are in `discovery_eval`; the vocabulary read from the unembedding is
in `readout`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.interpolate import PchipInterpolator
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform
from scipy.special import ndtri
from scipy.stats import chi2, rankdata
from sklearn.base import BaseEstimator
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.isotonic import isotonic_regression

from . import analysis

# Bumped whenever what the method finds can change, so that results cached in run folders are recomputed.
# 2: the analysed view and cross-terms left out of the groups; 3: one-to-one `refound`; 4: images left out;
# 5: the linearized view in place of normal scores
METHOD_VERSION = 5
MIN_CONTRAST = 2.0  # the weakest link inside a factor: at least twice the strongest link out of it
MAX_COMPONENTS = 24  # at most this many principal components are separated (FastICA's cost grows as k^2)
# A direction counts as varying when its standard deviation exceeds the largest one's times d * eps(float32): the
# round-off of a float32 dot product over d terms (models compute in float32; a float64 copy keeps that error).
# And, whatever the largest one, when it exceeds eps(float32) times the data's largest |value|: rows that do not
# vary leave only the round-off of centring them, which is no direction however it compares with itself.
_RANK_EPS = float(np.finfo(np.float32).eps)
# Acts whose largest |value| lies beyond 2**+-_SAFE_EXPONENT are brought to about 1 (`_rescaled`) before any
# decomposition: their squares would overflow (a LinAlgError) or underflow (variation read as none) in float64.
_SAFE_EXPONENT = 400
# Two subspaces are the same factor when more than half of one's top-2 energy lies in the other (a majority; two
# random planes in d dims share 2/d).
SAME_FACTOR = 0.5
# A group whose subspace overlaps a stronger group's by more than half a match shares its directions (`images_of`).
SHARED = SAME_FACTOR / 2
# a unit's map in `linearized`: quantile bins of its values. A tanh's bend is followed by a few dozen knots; 64 bins
# of 3,000 sequences x 8 positions average ~400 rows each, so the map's own noise stays far below a weak factor's
LINEAR_BINS = 64
_ICA_ROWS = 16_384  # rows FastICA is fitted on (then applied to all): plenty for k <= MAX_COMPONENTS


# ------------------------------------------------------------------------------------------------ reduction
def _as_array(x: Any, name: str = "acts") -> np.ndarray:
    """A numpy array of real numbers from an array or a torch tensor (detached and copied to the CPU, whether or
    not it requires grad; floating tensors as float64, so bfloat16 too); ValueError for anything else."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, read without importing torch here
        x = x.detach().cpu()
        x = (x.double() if x.dtype.is_floating_point else x).numpy()
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":  # bool, integers, floats
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x


def _as_3d(x: np.ndarray, name: str = "acts") -> np.ndarray:
    """[B, P, d] (or [n, d], read as P = 1) of real numbers with B >= 2 and finite values."""
    x = _as_array(x, name)
    if x.ndim == 2:
        x = x[:, None]
    if x.ndim != 3 or x.shape[0] < 2:
        raise ValueError(f"{name} must be [B, P, d] (or [n, d]) with B >= 2, got shape {np.shape(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return x


def centre_positions(acts: np.ndarray) -> np.ndarray:
    """acts: [B, P, d] -> float64 [B, P, d], the mean over sequences subtracted at each position.

    What every sequence shares at a position (its embedding, its offset) is no factor."""
    acts = _as_3d(acts)
    return acts - acts.mean(axis=0, keepdims=True, dtype=np.float64)


def n_components_at(acts: np.ndarray, threshold: float = 0.95, cap: int = MAX_COMPONENTS) -> int:
    """How many components to separate: dims@threshold of the position-centred acts [B, P, d], at most cap."""
    centred = centre_positions(acts)
    cev = analysis.cumulative_explained_variance(centred.reshape(-1, centred.shape[-1]))
    return min(analysis.dims_at(cev, threshold), cap)


def spectrum(acts: np.ndarray) -> np.ndarray:
    """Variances of the principal components of the position-centred acts [B, P, d]: [d], decreasing."""
    centred = centre_positions(acts)
    flat = centred.reshape(-1, centred.shape[-1])
    return np.clip(np.linalg.eigvalsh(flat.T @ flat / len(flat))[::-1], 0.0, None)


def _rank_of(var: np.ndarray, scale: float = 0.0) -> int:
    """How many variances [d] (decreasing) belong to directions that vary (`_RANK_EPS`), relative to the largest
    and to the data's `scale` (its largest |value|, before centring)."""
    floor = max(var[0] * (len(var) * _RANK_EPS) ** 2, (_RANK_EPS * scale) ** 2)
    return int((var > floor).sum()) if var[0] > 0 else 0


def _rescaled(acts: np.ndarray) -> np.ndarray:
    """acts [B, P, d], times the power of 2 (exact in floating point) that brings its largest |value| to about 1
    when that lies beyond 2**+-_SAFE_EXPONENT; else acts itself, so that results at ordinary scales are exactly
    those without it. Ranks, subspaces and factors do not depend on the scale; variances are then in its units."""
    top = float(np.abs(acts).max()) if acts.size else 0.0
    if top == 0.0 or 2.0**-_SAFE_EXPONENT <= top <= 2.0**_SAFE_EXPONENT:
        return acts
    return np.ldexp(np.asarray(acts, dtype=np.float64), -int(np.frexp(top)[1]))


def _scale(acts: np.ndarray) -> float:
    """The largest |value| of acts: what float32 round-off is relative to."""
    return float(np.abs(acts).max()) if acts.size else 0.0


def normal_scores(acts: np.ndarray) -> np.ndarray:
    """acts [B, P, d] -> float64 [B, P, d]: at each position, each unit's values replaced by the standard normal
    quantiles of their ranks among the B sequences, ndtri((rank - 1/2) / B) (tied values share their mean rank).

    Ranks do not change under an increasing function of one unit, so the scores are the same whatever
    saturating nonlinearity (tanh at any gain, a logistic, softsign, a clipped ReLU) the network applied unit by
    unit; where a unit's input is Gaussian, its scores are that input again, up to scale and offset."""
    acts = _as_3d(acts)
    return ndtri((rankdata(acts, axis=0) - 0.5) / len(acts))


def top_share(acts: np.ndarray, m: int) -> float:
    """The share of the position-centred variance of acts [B, P, d] in its top m principal components."""
    var = spectrum(acts)
    return float(var[:m].sum() / var.sum()) if var.sum() > 0 else 1.0


def _increasing_map(z: np.ndarray, bins: np.ndarray, target: np.ndarray, n_bins: int) -> np.ndarray:
    """The smooth increasing function of z [n] closest to target [n]: target's means over the quantile bins of z
    (bins [n], bin indices), made increasing (isotonic regression weighted by the bins' counts), then a monotone
    cubic (PCHIP) through them, evaluated at z. A constant z maps to zeros."""
    counts = np.bincount(bins, minlength=n_bins)
    kept = counts > 0
    if kept.sum() < 2:
        return np.zeros_like(z)
    knots = np.bincount(bins, z, n_bins)[kept] / counts[kept]
    values = isotonic_regression(np.bincount(bins, target, n_bins)[kept] / counts[kept], sample_weight=counts[kept])
    return PchipInterpolator(knots, values)(z)


def linearized(acts: np.ndarray, m: int, n_bins: int = LINEAR_BINS, iterations: int = 10) -> np.ndarray:
    """acts [B, P, d] -> float64 [B, P, d]: each unit through the increasing function under which the units are
    best explained by one linear code of m dimensions (each unit's map fitted by `_increasing_map` to its
    projection on the top m principal components, alternated until the top m share stops growing by 1e-4), each
    unit at unit variance.

    A unit-by-unit increasing nonlinearity after a linear code is undone by its inverse, which is exactly such a
    map: under it the code is linear again, harmonics and cross-terms gone. The start is each unit's normal
    scores over all rows pooled (one map serves every position, as one nonlinearity does), already the inverse
    where a unit's input is Gaussian; the iterations correct what a non-Gaussian input leaves. The maps act on
    ranks, so the result is the same under any increasing function of a unit."""
    acts = _as_3d(acts)
    shape, d = acts.shape, acts.shape[-1]
    ranks = rankdata(acts.reshape(-1, d), axis=0)
    n = len(ranks)
    z = ndtri((ranks - 0.5) / n)
    bins = np.minimum(((ranks - 1) * n_bins / n).astype(int), n_bins - 1)
    view, share = z, 0.0
    for i in range(iterations + 1):
        centred = centre_positions(view.reshape(shape)).reshape(n, d)
        variances, axes = np.linalg.eigh(centred.T @ centred)  # one decomposition: the share and the next target
        variances, axes = np.clip(variances[::-1], 0.0, None), axes[:, ::-1]
        new_share = variances[:m].sum() / variances.sum() if variances.sum() > 0 else 1.0
        if i > 0 and (new_share < share + 1e-4 or i == iterations):
            break
        share = new_share if i > 0 else 0.0  # the first map is always fitted, as the start is no fit
        target = view - centred + centred @ axes[:, :m] @ axes[:, :m].T
        view = np.column_stack([_increasing_map(z[:, j], bins[:, j], target[:, j], n_bins) for j in range(d)])
        std = view.std(axis=0)
        view = (view - view.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return view.reshape(shape)


def analysed_view(acts: np.ndarray, variance: float = 0.95) -> tuple[str, np.ndarray]:
    """Which view of acts [B, P, d] the factors are separated in: ("activations", acts) or ("linearized",
    `linearized(acts, m)`), each float64 [B, P, d]. Whether the code is saturated is judged by two views that
    are not fitted: the activations against their normal scores, the larger share of variance in the top m
    principal components winning (m the fewer of the two views' dimensions at `variance`; ties: the
    activations). Where the normal scores win, their refinement `linearized` is the view.

    A linear code puts each factor in a subspace; a saturating nonlinearity applied unit by unit bends it, and
    the bends (harmonics of one factor, cross-terms of several) spread variance into further directions. Normal
    scores undo the nonlinearity where each unit's input is near-Gaussian, so they are the more compact view of
    a saturating code; of a linear code whose units are not Gaussian they are themselves a bend, and the
    activations stay the more compact view. The linearized view is fitted to be compact, so it would win any
    such comparison, saturated code or not: it is no judge (on recurrent nets whose units are no saturated
    linear code it split off spurious groups), only the refinement of a verdict made without it."""
    acts = _as_3d(acts).astype(np.float64)
    scores = normal_scores(acts)
    m = min(n_components_at(x, variance, cap=acts.shape[-1]) for x in (acts, scores))
    return ("activations", acts) if top_share(acts, m) >= top_share(scores, m) else ("linearized", linearized(acts, m))


def numerical_rank(acts: np.ndarray) -> int:
    """In how many directions the position-centred acts [B, P, d] vary beyond float32 round-off (at any scale)."""
    acts = _rescaled(_as_3d(acts))
    return _rank_of(spectrum(acts), _scale(acts))


def n_signal(acts: np.ndarray) -> int:
    """How many principal components of acts [B, P, d] stand above the noise floor, however little variance
    they carry: variances above the Marchenko-Pastur edge sigma^2 (1 + sqrt(d / B))^2 of isotropic noise, with
    sigma^2 the median variance (most directions of a wide layer are noise) and B the number of sequences (the
    positions of one sequence are not independent samples, so B, not B P, sets the edge: the wider one)."""
    acts = _rescaled(_as_3d(acts))
    var = spectrum(acts)
    edge = np.median(var) * (1 + np.sqrt(var.size / acts.shape[0])) ** 2
    return min(int((var > edge).sum()), _rank_of(var, _scale(acts)))


def _separable(acts: np.ndarray, name: str = "acts") -> np.ndarray:
    """acts [B, P, d], checked to hold the 2 components the smallest separation needs: d >= 2 features, enough
    sequences for 2 directions once each position is centred (P (B - 1) of them at most), and 2 that vary."""
    B, P, d = acts.shape
    if d < 2:
        raise ValueError(f"{name} must have d >= 2 features to separate components, got d={d}")
    if P * (B - 1) < 2:
        raise ValueError(
            f"{name} has too few rows: {B} sequences x {P} position{'s' * (P > 1)} vary in at most {P * (B - 1)} "
            "direction once each position is centred; 2 components need at least 3 sequences (use thousands)"
        )
    rank = numerical_rank(acts)
    if rank < 2:
        raise ValueError(f"{name} vary in {rank} direction{'s' * (rank != 1)} once each position is centred; at "
                         "least 2 are needed to separate components")  # fmt: skip
    return acts


# ----------------------------------------------------------------------------------------------- separation
@dataclass(frozen=True)
class Components:
    """Independent components of activations [B, P, d], k of them.

    sources: [B, P, k], unit variance. patterns: [k, d], how each source shows in the activations
    (position-centred acts = sources @ patterns + what the k components leave out). filters: [k, d], what reads
    each source out (sources = position-centred acts @ filters.T)."""

    sources: np.ndarray
    patterns: np.ndarray
    filters: np.ndarray


def independent_components(acts: np.ndarray, n_components: int, seed: int = 0) -> Components:
    """The top n_components principal components of the position-centred acts [B, P, d], whitened and rotated
    by FastICA (logcosh contrast) to be as independent as possible.

    FastICA is fitted on at most _ICA_ROWS random rows. Components that are Gaussian noise have no preferred
    rotation, so FastICA may stop at its iteration limit: that warning is expected and silenced."""
    centred = centre_positions(acts)
    B, P, d = centred.shape
    flat = centred.reshape(-1, d)
    if not 1 <= n_components <= min(d, len(flat) - 1):
        raise ValueError(f"n_components must be in 1..{min(d, len(flat) - 1)}, got {n_components}")
    var, vecs = np.linalg.eigh(flat.T @ flat / len(flat))
    var, basis = var[::-1][:n_components], vecs[:, ::-1][:, :n_components].T  # [k], [k, d]
    if var[-1] <= var[0] * (d * _RANK_EPS) ** 2:  # `numerical_rank`: whitening would blow up round-off
        raise ValueError(f"acts vary in fewer than n_components={n_components} directions")
    white = flat @ basis.T / np.sqrt(var)  # [n, k], identity covariance
    rows = np.random.default_rng(seed).permutation(len(white))[:_ICA_ROWS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        rotation = FastICA(whiten=False, max_iter=400, tol=1e-4, random_state=seed).fit(white[rows]).components_
    u, _, vt = np.linalg.svd(rotation)
    rotation = u @ vt  # the nearest orthogonal matrix (FastICA's is orthogonal up to its tolerance)
    sources = white @ rotation.T
    filters = rotation / np.sqrt(var) @ basis
    patterns = rotation * np.sqrt(var) @ basis  # rotation orthogonal: white = sources @ rotation
    return Components(sources.reshape(B, P, n_components), patterns, filters)


def in_coordinates_of(comps: Components, acts: np.ndarray) -> Components:
    """Components separated in a view of acts [B, P, d] (`analysed_view`), read in acts' own coordinates:
    patterns [k, d], the covariance of the position-centred acts with each (unit-variance) source, which is where
    the source moves the activations; filters [k, d], their pseudo-inverse (filters @ patterns.T = I for
    independent patterns), the linear readout. For the view acts itself, these are the patterns and filters of
    `independent_components`."""
    centred = centre_positions(acts)
    flat = centred.reshape(-1, centred.shape[-1])
    patterns = comps.sources.reshape(len(flat), -1).T @ flat / len(flat)
    return Components(comps.sources, patterns, np.linalg.pinv(patterns).T)


# ------------------------------------------------------------------------------------------------- grouping
def _standardised_energies(sources: np.ndarray) -> np.ndarray:
    """sources [B, P, k] -> [P, B, k]: squares, standardised at each position (a constant one -> 0)."""
    energy = _as_3d(sources, "sources").astype(np.float64).transpose(1, 0, 2) ** 2
    energy = energy - energy.mean(axis=1, keepdims=True)
    std = energy.std(axis=1, keepdims=True)
    return np.divide(energy, std, out=np.zeros_like(energy), where=std > 0)


def _rms_correlation(z: np.ndarray) -> np.ndarray:
    """z [P, B, k], standardised -> [k, k]: root mean square over positions of the correlations, zero diagonal."""
    corr = z.transpose(0, 2, 1) @ z / z.shape[1]  # [P, k, k]
    dep = np.sqrt((corr**2).mean(axis=0))
    np.fill_diagonal(dep, 0.0)
    return dep


def energy_dependence(sources: np.ndarray) -> np.ndarray:
    """Dependence of every pair of sources [B, P, k] -> [k, k] in [0, 1], zero diagonal.

    At each position, the correlation of the two sources' squares (their energies); then the root mean square
    over positions. Independent sources give about 1/sqrt(B); two coordinates of one belief geometry give
    about 0.3-0.7."""
    return _rms_correlation(_standardised_energies(sources))


def shuffled_dependence(sources: np.ndarray, n_shuffles: int = 20, seed: int = 0) -> np.ndarray:
    """`energy_dependence` of every pair of sources [B, P, k] after shuffling: [n_shuffles, k (k - 1) / 2].

    A shuffle permutes the sequences of each source on its own (one permutation per source, the same at every
    position), so the sources become independent while each keeps its distribution and its course over
    positions: what sampling noise alone gives."""
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be >= 1, got {n_shuffles}")
    z = _standardised_energies(sources)  # permuting sequences keeps each position's mean and std
    P, B, k = z.shape
    by_source = np.ascontiguousarray(z.transpose(2, 1, 0))  # [k, B, P]: a source's permutation is a row gather
    rng = np.random.default_rng(seed)
    upper = np.triu_indices(k, 1)
    out = np.empty((n_shuffles, len(upper[0])))
    for n in range(n_shuffles):
        shuffled = np.stack([rows[rng.permutation(B)] for rows in by_source])  # [k, B, P]
        out[n] = _rms_correlation(shuffled.transpose(2, 1, 0))[upper]
    return out


def null_threshold(shuffled: np.ndarray, n_pairs: int, alpha: float = 0.01) -> float:
    """The dependence that independent sources exceed, in any of n_pairs pairs, with probability about alpha.

    shuffled: null values (`shuffled_dependence`). A value squared is a mean of squared correlations over
    positions; the positions of one sequence are not independent, so its law is fitted as a scaled chi-square
    c chi2_nu matching the null values' mean and variance, and the threshold is the root of its
    1 - alpha / n_pairs quantile (Bonferroni over the pairs). Heavy-tailed sources have a heavier tail than the
    fit, so the threshold is never below the largest shuffled value itself."""
    values = np.asarray(shuffled, dtype=np.float64).ravel()
    if values.size < 2 or not 0 < alpha < 1 or n_pairs < 1:
        raise ValueError(f"need >= 2 null values, alpha in (0, 1), n_pairs >= 1; got {values.size}, {alpha}, {n_pairs}")
    x = values**2
    mean, var = x.mean(), x.var()
    fitted = np.sqrt(var / (2 * mean) * chi2.isf(alpha / n_pairs, 2 * mean**2 / var)) if var > 0 else 0.0
    return float(max(fitted, values.max()))


def merge_tree(dependence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average-linkage agglomeration by dependence [k, k]: (merges [k - 1, 2] int, heights [k - 1]).

    Step n joins the two clusters whose components are most dependent on average (scipy's numbering: the
    cluster made at step n is k + n); heights[n] is that average, non-increasing in n."""
    dep = np.asarray(dependence, dtype=np.float64)
    if dep.ndim != 2 or dep.shape[0] != dep.shape[1] or len(dep) < 1:
        raise ValueError(f"dependence must be a square [k, k] matrix, got shape {dep.shape}")
    if len(dep) == 1:
        return np.zeros((0, 2), dtype=int), np.zeros(0)
    top = float(dep.max()) + 1.0  # linkage needs distances >= 0: distance = top - dependence
    dist = top - (dep + dep.T) / 2
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    return tree[:, :2].astype(int), top - tree[:, 2]


def clusters_after(merges: np.ndarray, k: int, m: int) -> list[np.ndarray]:
    """The clusters after the first m merges of `merge_tree`: sorted index arrays, largest cluster first."""
    clusters = {i: [i] for i in range(k)}
    for n, (a, b) in enumerate(np.asarray(merges)[:m]):
        clusters[k + n] = clusters.pop(int(a)) + clusters.pop(int(b))
    return sorted((np.sort(np.array(c)) for c in clusters.values()), key=lambda g: (-len(g), int(g[0])))


def group_components(
    dependence: np.ndarray, threshold: float, min_contrast: float = MIN_CONTRAST
) -> tuple[list[np.ndarray], float]:
    """Factors among components: dependence [k, k] -> (groups of >= 2 component indices, their contrast).

    Each cut of `merge_tree` after m of its merges above `threshold` is a candidate; its contrast is the height of
    its last (weakest) merge over the height of the next one (the strongest dependence left between clusters),
    or over the threshold when no merge above it is left: how much more the weakest link inside a group holds
    than the strongest link between groups. Among the candidates of contrast >= min_contrast, the one with the
    most groups wins (ties: the largest contrast); none: no factors (no clear boundary anywhere), and the
    contrast returned is the best rejected one. Most groups, not largest contrast: geometries differ in how
    dependent their coordinates are (a Bloch disk ~0.7, a Mess3 triangle ~0.2), so the cut between the strong
    kinds and the weak ones can have more contrast than the cut between factors, though both are clear."""
    merges, heights = merge_tree(dependence)
    levels = np.append(heights[heights > threshold], threshold)  # the significant merges, then the noise level
    if len(levels) < 2:
        return [], 0.0
    contrasts = levels[:-1] / levels[1:]
    k = len(dependence)
    cuts = [[g for g in clusters_after(merges, k, m) if len(g) >= 2] for m in range(1, len(levels))]
    valid = [m for m in range(1, len(levels)) if contrasts[m - 1] >= min_contrast]
    if not valid:
        return [], float(contrasts.max())
    m = max(valid, key=lambda m: (len(cuts[m - 1]), contrasts[m - 1]))
    return cuts[m - 1], float(contrasts[m - 1])


def _links(dependence: np.ndarray, j: int, groups: list[np.ndarray]) -> np.ndarray:
    """Component j's mean dependence on each group: [len(groups)] (average linkage's own measure)."""
    return np.array([dependence[j, g].mean() for g in groups])


def factor_groups(
    dependence: np.ndarray, threshold: float, min_contrast: float = MIN_CONTRAST
) -> tuple[list[np.ndarray], float, np.ndarray]:
    """Factors among components, cross-terms left out: dependence [k, k] -> (groups, contrast, cross_terms [c]).

    A cross-term is a component whose activity depends on two factors at once (a saturating network's product
    of their coordinates, or a factor's coordinate scaled by another's): it depends on both groups, so average
    linkage chains them into one. A factor's own component depends on its group alone. So a component is left
    out as a cross-term when, without it, `group_components` finds more groups and it depends (mean dependence
    above `threshold`) on at least two of them. One at a time, the cross-term whose removal gives the most
    groups first (ties: the largest contrast), until none is left."""
    dep = np.asarray(dependence, dtype=np.float64)
    groups, contrast = group_components(dep, threshold, min_contrast)
    kept, cross = np.arange(len(dep)), []
    while len(kept) > 2:
        best = None
        for j in kept:
            rest = kept[kept != j]
            found, c = group_components(dep[np.ix_(rest, rest)], threshold, min_contrast)
            found = [rest[g] for g in found]
            bridges = (_links(dep, j, found) > threshold).sum() >= 2
            if len(found) > len(groups) and bridges and (best is None or (len(found), c) > (len(best[1]), best[2])):
                best = (j, found, c)
        if best is None:
            break
        cross.append(best[0])
        kept, groups, contrast = kept[kept != best[0]], best[1], best[2]
    return groups, contrast, np.array(sorted(cross), dtype=int)


def group_subspace(patterns: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal directions of one group: patterns [k, d], group [m] -> (directions [m, d] by decreasing
    variance, variances [m]). The group's part of the activations is s_g @ patterns[g] with s_g white, so its
    covariance is patterns[g]^T patterns[g], whose eigenvectors are the right singular vectors of patterns[g]."""
    _, s, vt = np.linalg.svd(np.asarray(patterns, dtype=np.float64)[np.asarray(group)], full_matrices=False)
    return vt, s**2


def images_of(spaces: list[tuple[np.ndarray, np.ndarray]], shared: float = SHARED) -> list[int]:
    """Groups that share directions with a stronger group: indices into spaces, list of (directions [m, d],
    variances [m]) as `group_subspace` gives them.

    Independent factors own their directions: the subspaces of two factors found apart overlap at the level of sampling
    error (at most 0.022 at rank 2 over every learned network surveyed in notebook 08). A nonlinear image of factors (a
    harmonic of one, or a group of cross-terms of two whose members depend on each other through the factors they share)
    is written back by the network partly into the directions of the factors it comes from, so its subspace overlaps
    theirs (0.3-0.4 for a group of cross-terms of the two Bloch factors of a transformer of context 33), while its
    dependence on them may be hardly stronger than theirs on each other (a gain they share), so dependence alone cannot
    tell it from a factor. Groups are taken by decreasing variance (an image is weaker than what it is an image of); one
    whose overlap at rank 2 with a group kept before it exceeds `shared`, half the overlap that makes two subspaces one
    factor, is an image."""
    order = np.argsort([-v.sum() for _, v in spaces], kind="stable")
    kept, images = [], []
    for i in order:
        mine = spaces[i][0]
        if any(
            analysis.subspace_overlap(mine, spaces[j][0], min(2, len(mine), len(spaces[j][0]))) > shared for j in kept
        ):
            images.append(int(i))
        else:
            kept.append(int(i))
    return sorted(images)


# ------------------------------------------------------------------------------------------------ discovery
@dataclass(frozen=True)
class Discovery:
    """What `discover_factors` found in activations [B, P, d].

    n_factors: how many groups of dependent components. groups: list[n_factors] of component indices; unassigned:
    components in no group; cross_terms: those of them left out for depending on two groups (`factor_groups`) or for
    sharing a stronger group's directions (`images_of`). subspaces: list[n_factors] of orthonormal [m_n, d], where the
    factor's activity lies (the span of its components' patterns), directions by decreasing variance; variances:
    list[n_factors] of [m_n]. readouts: list[n_factors] of orthonormal [m_n, d], the span of its components' filters:
    what reads the factor out, cancelling the other kept components (the same span as the subspace when the factors'
    subspaces are orthogonal). Factors are ordered by total variance. components: the k independent components;
    dependence: [k, k]; shuffled: [n_shuffles, k (k - 1) / 2] null values; threshold: the noise level they give;
    contrast: of the chosen partition (or the best rejected one)."""

    n_factors: int
    groups: list[np.ndarray]
    unassigned: np.ndarray
    cross_terms: np.ndarray
    subspaces: list[np.ndarray]
    variances: list[np.ndarray]
    readouts: list[np.ndarray]
    components: Components
    dependence: np.ndarray
    shuffled: np.ndarray
    threshold: float
    contrast: float


def discover_factors(
    acts: np.ndarray,
    n_components: int | None = None,
    *,
    variance: float = 0.95,
    n_shuffles: int = 20,
    alpha: float = 0.01,
    min_contrast: float = MIN_CONTRAST,
    seed: int = 0,
    view: np.ndarray | None = None,
) -> Discovery:
    """Factors and their subspaces from activations acts: [B, P, d] alone (P positions, e.g. `probing.activations`).

    view: [B, P, d], the view of acts the components are separated in (default: `analysed_view(acts, variance)`);
    their patterns, subspaces and readouts are read in acts' coordinates (`in_coordinates_of`).
    n_components: how many principal components to separate (default: `n_components_at(view, variance)`).
    n_shuffles, alpha: the null threshold (`null_threshold`); min_contrast: the cut rule (`group_components`;
    cross-terms are left out by `factor_groups`)."""
    view = analysed_view(acts, variance)[1] if view is None else view
    k = n_components_at(view, variance) if n_components is None else n_components
    comps = in_coordinates_of(independent_components(view, k, seed), acts)
    dep = energy_dependence(comps.sources)
    shuffled = shuffled_dependence(comps.sources, n_shuffles, seed)
    threshold = null_threshold(shuffled, max(k * (k - 1) // 2, 1), alpha)
    groups, best, cross = factor_groups(dep, threshold, min_contrast)
    spaces = [group_subspace(comps.patterns, g) for g in groups]
    images = images_of(spaces)  # left out with the cross-terms
    cross = np.sort(np.concatenate([cross, *(groups[i] for i in images)])).astype(int)
    kept = [i for i in range(len(groups)) if i not in images]
    groups, spaces = [groups[i] for i in kept], [spaces[i] for i in kept]
    order = np.argsort([-v.sum() for _, v in spaces], kind="stable").astype(int)
    assigned = np.concatenate(groups) if groups else np.array([], dtype=int)
    return Discovery(
        n_factors=len(groups),
        groups=[groups[i] for i in order],
        unassigned=np.setdiff1d(np.arange(k), assigned),
        cross_terms=cross,
        subspaces=[spaces[i][0] for i in order],
        variances=[spaces[i][1] for i in order],
        readouts=[np.linalg.svd(comps.filters[groups[i]], full_matrices=False)[2] for i in order],
        components=comps,
        dependence=dep,
        shuffled=shuffled,
        threshold=threshold,
        contrast=best,
    )


def scan_components(acts: np.ndarray, ks: Sequence[int], **kwargs) -> dict[int, Discovery]:
    """`discover_factors` at every number of components in ks: {k: Discovery}. kwargs go to discover_factors.

    Too few components leave factors out; too many let weak, mixed components blur the boundaries. The scan
    shows how the answer depends on k; `choose_components` picks one k from it."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be a non-empty collection of integers >= 1, got {ks}")
    return {k: discover_factors(acts, k, **kwargs) for k in ks}


def paired_again(found: Sequence[np.ndarray], neighbour: Sequence[np.ndarray], same: float = SAME_FACTOR) -> np.ndarray:
    """bool [len(found)]: which found subspaces are found again among a neighbouring k's, each neighbour standing
    for at most one: the two sets paired one-to-one by their overlap at rank 2 (the pairing with the largest total
    overlap, `linear_sum_assignment`), and a pair counting when its overlap exceeds `same`."""
    again = np.zeros(len(found), dtype=bool)
    if len(found) and len(neighbour):
        overlap = np.array(
            [[analysis.subspace_overlap(f, g, min(2, len(f), len(g))) for g in neighbour] for f in found]
        )
        rows, cols = linear_sum_assignment(-overlap)
        again[rows[overlap[rows, cols] > same]] = True
    return again


def refound(
    scan: dict[int, Discovery], extra: dict[int, Discovery] | None = None, same: float = SAME_FACTOR
) -> dict[int, int]:
    """How many of the factors found at each k of a scan are found again at k - 1 or k + 1: {k: count}.
    extra: more neighbours by k (`scan_and_choose` puts a second FastICA start at the rank there: no k + 1 exists).

    Found again: paired with a factor there whose subspace overlaps this one's by more than `same` at rank 2
    (`paired_again`: one neighbour confirms one factor; a factor split in two halves at k overlaps its whole at
    k +- 1 about 0.5 twice, and a weak tail group can borrow a large factor's directions, so a many-to-one match
    would count a fluke k's extra group as found again). One k alone is not enough (a lucky FastICA rotation can
    make a pair look apart at a single k): a real factor stays found when one more or one fewer component is
    kept. Per factor, because the two neighbours fail differently: at k - 1 a factor may lack a dimension, at
    k + 1 the extra component may be a nonlinear image of several factors (a saturating network's harmonics)
    that blurs another; a count that must repeat at one neighbour is lost when each neighbour loses a different
    factor."""
    every = {**scan, **(extra or {})}
    out = {}
    for k, found in scan.items():
        again = np.zeros(len(found.subspaces), dtype=bool)
        for kk in (k - 1, k + 1):
            if kk in every:
                again |= paired_again(found.subspaces, every[kk].subspaces, same)
        out[k] = int(again.sum())
    return out


def choose_components(scan: dict[int, Discovery], extra: dict[int, Discovery] | None = None) -> int:
    """The k whose discovery is reported: the most factors found again next door (`refound`); ties: the fewest
    factors that are not, then the largest contrast, then the smallest k. The largest k that finds nothing when
    no factor is found again (else the largest k)."""
    again = refound(scan, extra)
    if max(again.values()) == 0:
        return max((k for k, d in scan.items() if d.n_factors == 0), default=max(scan))
    return max(scan, key=lambda k: (again[k], again[k] - scan[k].n_factors, scan[k].contrast, -k))


def scan_and_choose(
    acts: np.ndarray, variance: float = 0.95, view: np.ndarray | None = None, **kwargs
) -> tuple[int, dict[int, Discovery]]:
    """The whole method: `scan_components` over k = 2 .. two more than the components worth separating (so that
    the last has neighbours), then `choose_components`. Returns (the chosen k, the scan); the answer is scan[k].

    All in one view of acts (default: `analysed_view(acts, variance)`). Worth separating: the components above
    the noise floor (`n_signal`: a weak factor carries little variance but stands clear of the noise), and at
    least those holding `variance` of the variance (the scan of earlier versions); never more than the
    directions in which the view varies (`numerical_rank`) nor MAX_COMPONENTS. When the rank ends the scan, a
    second FastICA start at the rank is its last k's neighbour (`refound`'s extra)."""
    view = analysed_view(acts, variance)[1] if view is None else view
    rank = numerical_rank(view)
    top = max(2, min(max(n_signal(view), n_components_at(view, variance)) + 2, rank, MAX_COMPONENTS))
    scan = scan_components(acts, range(2, top + 1), view=view, **kwargs)
    extra = {}
    if top == rank:  # every direction is in: no k + 1, so a second FastICA start at the rank stands in for it
        extra[top + 1] = discover_factors(acts, top, view=view, **{**kwargs, "seed": kwargs.get("seed", 0) + 1})
    return choose_components(scan, extra), scan


# ------------------------------------------------------------------------------------------- entry point
@dataclass(frozen=True)
class FactorReport:
    """What `FactorDiscovery` found: n_factors; view, the view the components were separated in (`analysed_view`:
    "activations" or "normal scores"); subspaces list[n_factors] of orthonormal [m_n, d] in the activations'
    coordinates (directions by decreasing variance); variances list[n_factors] of [m_n]; k, the components kept;
    total_variance of the
    position-centred activations; discovery, scan: the full answer (`discover_factors`, `scan_components`)."""

    n_factors: int
    view: str
    subspaces: list[np.ndarray]
    variances: list[np.ndarray]
    k: int
    total_variance: float
    discovery: Discovery
    scan: dict[int, Discovery]

    def table(self) -> dict[str, list]:
        """One row per factor: {"factor", "dims", "variance", "share" (of all the variance), "readout_overlap"
        (of the subspace with what reads it out: 1 when the factor lies orthogonal to the others)}; columns as
        lists, ready for pandas.DataFrame."""
        d = self.discovery
        return {
            "factor": list(range(self.n_factors)),
            "dims": [len(s) for s in self.subspaces],
            "variance": [float(v.sum()) for v in self.variances],
            "share": [float(v.sum() / self.total_variance) for v in self.variances],
            "readout_overlap": [
                analysis.subspace_overlap(r, s, min(2, len(s))) for r, s in zip(d.readouts, self.subspaces, strict=True)
            ],
        }

    def summary(self) -> dict:
        """{"n_factors", "view", "k", "k_scanned": [first, last], "contrast", "counts": {k: factors found},
        "refound": {k: factors found again at a neighbouring k}}."""
        return {
            "n_factors": self.n_factors,
            "view": self.view,
            "k": self.k,
            "k_scanned": [min(self.scan), max(self.scan)],
            "contrast": self.discovery.contrast,
            "counts": {k: d.n_factors for k, d in self.scan.items()},
            "refound": refound(self.scan),
        }


class FactorDiscovery(BaseEstimator):
    """Find the factors in a model's activations alone: the method as a scikit-learn estimator.

    `FactorDiscovery(seed=1).fit(acts).subspaces_`. The settings are those of `scan_and_choose`: variance (the
    share of the variance the scan and the view's compactness are read at), n_shuffles and alpha (the noise
    threshold, `null_threshold`), min_contrast (the cut rule, `group_components`), seed (FastICA and the
    shuffles). Fitted: report_, the `FactorReport` (`.table()` and `.summary()` print it); subspaces_, list[n_factors_]
    of orthonormal [m_n, d] in the activations' coordinates; n_factors_; n_components_, the k chosen."""

    def __init__(
        self,
        *,
        variance: float = 0.95,
        n_shuffles: int = 20,
        alpha: float = 0.01,
        min_contrast: float = MIN_CONTRAST,
        seed: int = 0,
    ):
        self.variance = variance
        self.n_shuffles = n_shuffles
        self.alpha = alpha
        self.min_contrast = min_contrast
        self.seed = seed

    def fit(self, acts: np.ndarray, y: None = None) -> FactorDiscovery:
        """Find the factors of acts: [B, P, d], B sequences (independent samples) x P positions x d features (a
        residual stream at one layer, BOS dropped; positions are centred separately), or [n, d] (one position);
        a numpy array or a torch tensor. Use a few thousand sequences: the noise threshold and the components'
        precision come from B. Zero factors is an answer: no subspaces whose activity is independent of the rest.
        Inputs it cannot separate (d < 2, too few sequences, no variation beyond round-off) are one ValueError
        saying so; any scale that float64 holds is separated (`_rescaled`). y: ignored (scikit-learn's API)."""
        acts = _separable(_rescaled(_as_3d(acts)))  # at an extreme scale, variances are in `_rescaled`'s units
        view_name, view = analysed_view(acts, self.variance)
        k, scan = scan_and_choose(
            acts,
            self.variance,
            view=view,
            n_shuffles=self.n_shuffles,
            alpha=self.alpha,
            min_contrast=self.min_contrast,
            seed=self.seed,
        )
        found = scan[k]
        self.report_ = FactorReport(
            n_factors=found.n_factors,
            view=view_name,
            subspaces=found.subspaces,
            variances=found.variances,
            k=k,
            total_variance=float(spectrum(acts).sum()),
            discovery=found,
            scan=scan,
        )
        self.subspaces_ = self.report_.subspaces
        self.n_factors_ = self.report_.n_factors
        self.n_components_ = k
        return self


def find_factors(acts: np.ndarray, **kwargs) -> FactorReport:
    """Find the factors in a model's activations alone, in one call: `FactorDiscovery(**kwargs).fit(acts).report_`
    (kwargs: variance, n_shuffles, alpha, min_contrast, seed). acts: [B, P, d] or [n, d]; returns a `FactorReport`."""
    return FactorDiscovery(**kwargs).fit(acts).report_
