"""Checks of factor discovery against a known answer (numpy, scipy): synthetic activations whose factors' subspaces
are known, and scores of found subspaces against true ones.

Any method that returns a list of orthonormal [m, d] subspaces is scored the same way: independent subspace
analysis (`discovery`) and the sparse-autoencoder baseline (`sae`). Found and true subspaces are paired by their
overlap (`match_subspaces`); a true factor counts as found when its pair's overlap exceeds `SAME_FACTOR`, and each
found subspace is judged by how much of its factor's beliefs it alone decodes (`subspace_r2`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from . import analysis
from .discovery import SAME_FACTOR, centre_positions


# -------------------------------------------------------------------------------------------- known answers
def synthetic_activations(
    beliefs: Sequence[np.ndarray], d: int = 120, noise_std: float = 0.01, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A known answer: true beliefs (list[N] of [B, P, S_n]) concatenated, rotated at random into d dimensions,
    plus isotropic Gaussian noise of std `noise_std` per dimension. Returns (acts [B, P, d], subspaces list[N] of
    orthonormal [r_n, d]: the directions in which factor n's beliefs vary, r_n their rank, 2 for Mess3 and
    Bloch beliefs, which have a fixed sum or a fixed first coordinate; directions below 1e-5 of the largest
    singular value count as fixed)."""
    parts = [np.asarray(b, dtype=np.float64) for b in beliefs]
    Y = np.concatenate(parts, axis=-1)
    if Y.ndim != 3 or Y.shape[-1] > d:
        raise ValueError(f"beliefs must be [B, P, S_n] arrays with sum S_n <= d={d}, got {[b.shape for b in parts]}")
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(d, Y.shape[-1])))[0]  # [d, sum S_n], orthonormal columns
    acts = Y @ Q.T + noise_std * rng.normal(size=(*Y.shape[:2], d))
    subspaces, start = [], 0
    for b in parts:
        flat = b.reshape(-1, b.shape[-1])
        _, sv, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
        rank = int((sv > 1e-5 * sv[0]).sum())  # float32 beliefs: a fixed sum holds to ~1e-7
        subspaces.append(vt[:rank] @ Q[:, start : start + b.shape[-1]].T)
        start += b.shape[-1]
    return acts, subspaces


def observed_subspaces(acts: np.ndarray, beliefs: Sequence[np.ndarray], ranks: Sequence[int]) -> list[np.ndarray]:
    """Where each factor's true beliefs move the observed acts [B, P, d]: for factor n, the top ranks[n] left
    singular vectors of the covariance of the position-centred acts with its position-centred beliefs [B, P, S_n],
    as orthonormal [ranks[n], d]. The truth in the coordinates a discovery reports in (`discovery.in_coordinates_of`):
    after a nonlinearity, the directions a linear code had before it are no longer where the factor moves what is
    observed, and no method reading the observed units can report them."""
    flat = centre_positions(acts).reshape(-1, acts.shape[-1])
    spaces = []
    for b, rank in zip(beliefs, ranks, strict=True):
        centred = centre_positions(np.asarray(b, dtype=np.float64)).reshape(len(flat), -1)
        spaces.append(np.linalg.svd(flat.T @ centred, full_matrices=False)[0][:, :rank].T)
    return spaces


# --------------------------------------------------------------------------------------------------- scores
def match_subspaces(
    found: Sequence[np.ndarray], reference: Sequence[np.ndarray], k: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Pair found subspaces with reference ones: Hungarian matching on their overlap at rank k.

    found: list[F] of orthonormal [m, d] (may be empty); reference: list[R] of orthonormal [m, d]. Returns
    (pairs [min(F, R), 2] of (found, reference) indices maximising the total overlap, overlap [F, R]), the
    overlap being `analysis.subspace_overlap` at rank min(k, both ranks)."""
    if len(reference) == 0:
        raise ValueError("reference must be a non-empty list of [m, d] arrays")
    overlap = np.array([[analysis.subspace_overlap(f, r, min(k, len(f), len(r))) for r in reference] for f in found])
    if len(found) == 0:
        return np.zeros((0, 2), dtype=int), np.zeros((0, len(reference)))
    rows, cols = linear_sum_assignment(-overlap)
    return np.stack([rows, cols], axis=1), overlap


def subspace_r2(acts: np.ndarray, beliefs: np.ndarray, directions: np.ndarray | None = None, seed: int = 0) -> float:
    """Held-out R^2 of one factor's beliefs [n, S] regressed on acts [n, d] projected on directions [m, d]
    (None: the full activations), by `analysis.belief_regression`."""
    x = acts if directions is None else analysis.project(acts, directions, k=len(directions))
    return float(analysis.belief_regression(x, [beliefs], seed=seed).r2[0])


def score_against_truth(
    found: Sequence[np.ndarray],
    acts: np.ndarray,
    true_beliefs: Sequence[np.ndarray],
    true_subspaces: Sequence[np.ndarray],
    same: float = SAME_FACTOR,
    seed: int = 0,
    readouts: Sequence[np.ndarray] | None = None,
) -> dict:
    """How well found subspaces (any method's: list[F] of orthonormal [m, d]) recover known factors.

    acts: [B, P, d] (or [n, d]); true_beliefs: list[N] of [B, P, S_n] (or [n, S_n]); true_subspaces: list[N] of
    orthonormal [r, d]. Found and true are paired by `match_subspaces`; a true factor counts as found when its
    pair's overlap exceeds `same` (SAME_FACTOR). Returns {"table": {column: list[N]}: factor, found (index, -1:
    none), overlap, r2_subspace (held-out R^2 of the beliefs from the matched subspace; nan when none), r2_full
    (from all of acts), ratio; with `readouts` (list[F] of [m, d]: the directions that read each found factor
    out, `Discovery.readouts`) also r2_readout and ratio_readout; "n_found": F, "n_true": N, "n_recovered": true
    factors found, "n_spurious": found subspaces matching no true factor}."""
    acts = np.asarray(acts, dtype=np.float64)
    flat = acts.reshape(-1, acts.shape[-1])
    beliefs = [np.asarray(b, dtype=np.float64).reshape(len(flat), -1) for b in true_beliefs]
    if len(beliefs) != len(true_subspaces):
        raise ValueError(f"true_beliefs and true_subspaces must be as many, got {len(beliefs)}, {len(true_subspaces)}")
    pairs, overlap = match_subspaces(list(found), list(true_subspaces))
    partner = {int(t): int(f) for f, t in pairs if overlap[f, t] > same}
    columns = ["factor", "found", "overlap", "r2_subspace", "r2_full", "ratio"]
    with_readouts = readouts is not None
    table: dict[str, list] = {k: [] for k in columns + (["r2_readout", "ratio_readout"] if with_readouts else [])}

    def scored(directions: np.ndarray | None, b: np.ndarray, full: float) -> tuple[float, float]:
        """(held-out R^2 from these directions, its ratio to the whole stream's); NaN when nothing matched."""
        if directions is None:
            return float("nan"), float("nan")
        sub = subspace_r2(flat, b, directions, seed=seed)
        return sub, sub / full if full > 0 else float("nan")

    for t, b in enumerate(beliefs):
        f = partner.get(t, -1)
        full = subspace_r2(flat, b, seed=seed)
        table["factor"].append(t)
        table["found"].append(f)
        table["overlap"].append(float(overlap[:, t].max()) if len(found) else 0.0)
        table["r2_full"].append(full)
        r2, ratio = scored(found[f] if f >= 0 else None, b, full)
        table["r2_subspace"].append(r2)
        table["ratio"].append(ratio)
        if with_readouts:
            r2, ratio = scored(readouts[f] if f >= 0 else None, b, full)
            table["r2_readout"].append(r2)
            table["ratio_readout"].append(ratio)
    return {
        "table": table,
        "n_found": len(found),
        "n_true": len(beliefs),
        "n_recovered": len(partner),
        "n_spurious": len(found) - len(partner),
    }
