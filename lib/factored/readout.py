"""The vocabulary's factorisation read from the unembedding (numpy, scikit-learn).

A factored predictor's log-probability of a token is a sum of per-factor terms, so a factor's subspace votes
alike for every token that shares that factor's sub-token. Reading each found subspace through the unembedding
(`token_readout`) and clustering the votes (`token_partition`) recovers which tokens share a sub-token: the token
codec, from the model's weights alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score


def token_readout(unembed: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """How a subspace votes for each token: unembed [V, d] (rows: tokens) @ directions [m, d].T -> [V, m],
    centred over tokens. A factored predictor's log-probability is a sum of per-factor terms, so the tokens
    that share a factor's sub-token get the same vote from that factor's subspace."""
    readout = np.asarray(unembed, dtype=np.float64) @ np.asarray(directions, dtype=np.float64).T
    return readout - readout.mean(axis=0)


def token_partition(readout: np.ndarray, max_parts: int = 8, seed: int = 0) -> tuple[np.ndarray, dict[int, float]]:
    """Tokens grouped by their readout [V, m]: k-means for 2..max_parts parts, the number of parts with the
    best silhouette. Returns (labels [V], {parts: silhouette})."""
    readout = np.asarray(readout, dtype=np.float64)
    if readout.ndim != 2 or len(readout) < 3:
        raise ValueError(f"readout must be [V >= 3, m], got shape {readout.shape}")
    distinct = len(np.unique(readout.round(12), axis=0))  # an exactly factored readout repeats its points
    labels, scores = {}, {}
    for parts in range(2, max(2, min(max_parts, len(readout) - 1, distinct)) + 1):
        labels[parts] = KMeans(parts, n_init=10, random_state=seed).fit_predict(readout)
        n_used = len(np.unique(labels[parts]))
        scores[parts] = silhouette_score(readout, labels[parts]) if 1 < n_used < len(readout) else -1.0
    best = max(scores, key=scores.get)
    return labels[best], scores
