"""A sparse-autoencoder baseline for finding factors: a TopK SAE on the activations, its decoder directions
grouped into subspaces by clustering (numpy, scikit-learn, torch on the CPU).

The published alternative to independent subspace analysis (`discovery`): train a TopK sparse autoencoder
(Gao et al. 2024: keep the k largest pre-activations, zero the rest; decoder columns of unit norm) on the
activations, then cluster its latents by the cosine similarity of their decoder directions (spectral
clustering on |cos|, the number of clusters given or chosen by silhouette). A belief geometry is tiled by many
latents whose decoder directions lie in its plane, so one factor's latents are similar to each other (through
chains of neighbours around the plane) and orthogonal to the other factors'. A cluster's subspace is the span of
its decoder directions, weighted by how much each latent is used. The result is the same as `discovery`'s, a
list of orthonormal [m, d] subspaces, so both are scored by `discovery.score_against_truth`.

Input is what `discovery` sees: activations [B, P, d] centred at each position, flattened, scaled to unit mean
squared norm (so that the learning rate means the same for every model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import SpectralClustering
from sklearn.metrics import silhouette_score

from .discovery import centre_positions

LATENTS_PER_DIM = 4  # d_sae = 4 d: the small end of common expansion factors, enough to tile 2-d geometries
TOP_K = 6  # active latents per input: a few per factor (5 factors, ~1 each, plus one)
ENERGY = 0.95  # a cluster's subspace keeps the directions holding this share of its latents' weighted energy


@dataclass(frozen=True)
class SAE:
    """A trained TopK sparse autoencoder on inputs [n, d] (after `prepare`).

    W_enc: [d, m]; b_enc: [m]; W_dec: [m, d], unit rows; b_dec: [d]; k: active latents per input; scale: what
    `prepare` divided the inputs by; losses: [steps], the training loss (mean squared error per input)."""

    W_enc: np.ndarray
    b_enc: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray
    k: int
    scale: float
    losses: np.ndarray


def prepare(acts: np.ndarray) -> tuple[np.ndarray, float]:
    """acts [B, P, d] (or [n, d]) -> (position-centred rows [B P, d] divided by their root mean squared norm,
    that norm)."""
    centred = centre_positions(acts)
    flat = centred.reshape(-1, centred.shape[-1])
    scale = float(np.sqrt((flat**2).sum(axis=1).mean()))
    return flat / (scale if scale > 0 else 1.0), scale


def _topk(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest pre-activations of each row (after a ReLU), zero the rest: [n, m] -> [n, m]."""
    values, index = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter_(-1, index, values.relu())


def train_sae(
    x: np.ndarray,
    n_latents: int | None = None,
    k: int = TOP_K,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
) -> SAE:
    """A TopK SAE trained on x [n, d] (`prepare`d rows) with Adam: reconstruction x ~ topk(x W_enc + b_enc) W_dec
    + b_dec, mean squared error. n_latents: default LATENTS_PER_DIM d. Decoder rows are renormalised to unit norm
    after every step (so sparsity cannot be bought by shrinking codes); the encoder starts as the decoder's
    transpose and b_dec at the mean (the usual initialisation). Seeded: the same seed, the same SAE."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be [n >= 2, d], got shape {x.shape}")
    n, d = x.shape
    m = LATENTS_PER_DIM * d if n_latents is None else int(n_latents)
    if not 1 <= k <= m:
        raise ValueError(f"k must be in 1..n_latents={m}, got {k}")
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(x)
    W_dec = torch.randn(m, d, generator=gen)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    params = {
        "W_dec": W_dec.clone().requires_grad_(),
        "W_enc": W_dec.T.clone().detach().requires_grad_(),
        "b_enc": torch.zeros(m, requires_grad=True),
        "b_dec": data.mean(dim=0).clone().requires_grad_(),
    }
    opt = torch.optim.Adam(params.values(), lr=lr)
    losses = np.empty(steps)
    for step in range(steps):
        rows = data[torch.randint(n, (min(batch_size, n),), generator=gen)]
        codes = _topk((rows - params["b_dec"]) @ params["W_enc"] + params["b_enc"], k)
        loss = ((codes @ params["W_dec"] + params["b_dec"] - rows) ** 2).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            params["W_dec"] /= params["W_dec"].norm(dim=1, keepdim=True).clamp_min(1e-12)
        losses[step] = loss.item()
    out = {name: p.detach().numpy().copy() for name, p in params.items()}
    return SAE(out["W_enc"], out["b_enc"], out["W_dec"], out["b_dec"], k, 1.0, losses)


def encode(sae: SAE, x: np.ndarray) -> np.ndarray:
    """Codes of rows x [n, d]: [n, m], at most k non-zero per row."""
    with torch.no_grad():
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        pre = (x - torch.from_numpy(sae.b_dec)) @ torch.from_numpy(sae.W_enc) + torch.from_numpy(sae.b_enc)
        return _topk(pre, sae.k).numpy()


def decode(sae: SAE, codes: np.ndarray) -> np.ndarray:
    """Reconstruction of codes [n, m]: [n, d]."""
    return np.asarray(codes, dtype=np.float32) @ sae.W_dec + sae.b_dec


def cluster_latents(
    sae: SAE, x: np.ndarray, n_clusters: int | None = None, max_clusters: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """Group the latents used on x [n, d] by their decoder directions. Returns (live [L] latent indices, labels
    [L], {clusters: silhouette}).

    Live: active on at least one row (dead latents carry nothing). Affinity |cos| of decoder directions (a
    latent and its opposite sit in one plane); spectral clustering with n_clusters, or, when None, the number in
    2..max_clusters with the best silhouette on the distance 1 - |cos|."""
    codes = encode(sae, x)
    live = np.flatnonzero((codes > 0).any(axis=0))
    if len(live) < 3:
        raise ValueError(f"only {len(live)} latents are ever active: nothing to cluster")
    affinity = np.abs(sae.W_dec[live] @ sae.W_dec[live].T).astype(np.float64)
    distance = np.clip(1.0 - affinity, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    tries = [n_clusters] if n_clusters is not None else range(2, min(max_clusters, len(live) - 1) + 1)
    labels, scores = {}, {}
    for c in tries:
        labels[c] = SpectralClustering(c, affinity="precomputed", random_state=seed).fit_predict(affinity)
        used = len(np.unique(labels[c]))
        scores[c] = silhouette_score(distance, labels[c], metric="precomputed") if 1 < used < len(live) else -1.0
    best = max(scores, key=scores.get)
    return live, labels[best], scores


def cluster_subspace(sae: SAE, codes: np.ndarray, latents: np.ndarray, energy: float = ENERGY) -> np.ndarray:
    """Orthonormal directions [r, d] of one cluster of latents [c]: the principal directions of its decoder rows,
    each weighted by its root mean squared activation on the codes [n, m], kept until they hold `energy` of the
    weighted total (so rarely used latents do not add dimensions)."""
    weight = np.sqrt((codes[:, latents].astype(np.float64) ** 2).mean(axis=0))
    _, s, vt = np.linalg.svd(sae.W_dec[latents].astype(np.float64) * weight[:, None], full_matrices=False)
    share = np.cumsum(s**2) / max((s**2).sum(), 1e-300)
    return vt[: int(np.searchsorted(share, energy - 1e-12)) + 1]


@dataclass(frozen=True)
class SAEFactors:
    """What `sae_factors` found: subspaces list[F] of orthonormal [r_f, d] (clusters of >= 2 latents, by
    decreasing weighted energy); clusters list[F] of latent indices; sae; silhouettes {clusters: score};
    fraction of variance unexplained by the SAE's reconstruction on the activations."""

    subspaces: list[np.ndarray]
    clusters: list[np.ndarray]
    sae: SAE
    silhouettes: dict[int, float]
    fvu: float

    @property
    def n_factors(self) -> int:
        return len(self.subspaces)


def sae_factors(
    acts: np.ndarray,
    n_clusters: int | None = None,
    *,
    n_latents: int | None = None,
    k: int = TOP_K,
    steps: int = 2000,
    seed: int = 0,
    max_clusters: int = 10,
) -> SAEFactors:
    """The whole baseline on activations acts [B, P, d] (or [n, d]): `prepare`, `train_sae`, `cluster_latents`,
    a `cluster_subspace` per cluster of >= 2 latents (a lone latent spans no geometry)."""
    x, scale = prepare(acts)
    sae = train_sae(x, n_latents, k, steps, seed=seed)
    sae = SAE(sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, sae.k, scale, sae.losses)
    live, labels, scores = cluster_latents(sae, x, n_clusters, max_clusters, seed)
    codes = encode(sae, x)
    fvu = float(((decode(sae, codes) - x) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum())
    clusters = [live[labels == c] for c in np.unique(labels) if (labels == c).sum() >= 2]
    energy = [float((codes[:, c].astype(np.float64) ** 2).sum()) for c in clusters]
    order = np.argsort(energy)[::-1]
    clusters = [clusters[i] for i in order]
    return SAEFactors([cluster_subspace(sae, codes, c) for c in clusters], clusters, sae, scores, fvu)
