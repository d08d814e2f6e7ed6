"""A sparse-autoencoder baseline for finding factors: a TopK SAE on the activations, its decoder directions
grouped into subspaces by clustering (numpy, scikit-learn, torch on the CPU).

The published alternative to independent subspace analysis (`discovery`): train a TopK sparse autoencoder
(Gao et al. 2024: keep the k largest pre-activations, zero the rest; decoder columns of unit norm) on the
activations, then cluster its latents by the cosine similarity of their decoder directions (spectral
clustering on |cos|, the number of clusters given or chosen by silhouette). A belief geometry is tiled by many
latents whose decoder directions lie in its plane, so one factor's latents are similar to each other (through
chains of neighbours around the plane) and orthogonal to the other factors'. A cluster's subspace is the span of
its decoder directions, weighted by how much each latent is used. The result is the same as `discovery`'s, a
list of orthonormal [m, d] subspaces, so both are scored by `discovery_eval.score_against_truth`.

Input is what `discovery` sees: activations [B, P, d] centred at each position, flattened, scaled to unit mean
squared norm (so that the learning rate means the same for every model).

Two trainers give the same `SAE` record and go through the same clustering: `train_sae`, a TopK SAE written
here in a few lines, and `train_saelens`, SAELens' own TopK SAE and trainer fed the same rows (`sae_factors` runs
the whole baseline with either: `trainer="ours"` or `"saelens"`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.cluster import SpectralClustering
from sklearn.metrics import silhouette_score

from .discovery import centre_positions

LATENTS_PER_DIM = 4  # d_sae = 4 d: the small end of common expansion factors, enough to tile 2-d geometries
TOP_K = 6  # active latents per input: a few per factor (5 factors, ~1 each, plus one)
SAE_WEIGHTS = ("W_enc", "b_enc", "W_dec", "b_dec")  # the SAE record's weights, by their names in SAELens too
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


def _rows_and_latents(x: np.ndarray, n_latents: int | None, k: int) -> tuple[np.ndarray, int]:
    """Check the rows x [n >= 2, d] and k in 1..n_latents; -> (float32 x, n_latents: default LATENTS_PER_DIM d)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be [n >= 2, d], got shape {x.shape}")
    m = LATENTS_PER_DIM * x.shape[1] if n_latents is None else int(n_latents)
    if not 1 <= k <= m:
        raise ValueError(f"k must be in 1..n_latents={m}, got {k}")
    return x, m


def _random_rows(data: torch.Tensor, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches [min(batch_size, n), d] of rows of data [n, d], drawn with replacement."""
    while True:
        yield data[torch.randint(len(data), (min(batch_size, len(data)),), generator=gen)]


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
    x, m = _rows_and_latents(x, n_latents, k)
    d = x.shape[1]
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
    batches = _random_rows(data, batch_size, gen)
    for step in range(steps):
        rows = next(batches)
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


def train_saelens(
    x: np.ndarray,
    n_latents: int | None = None,
    k: int = TOP_K,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 1e-3,
    seed: int = 0,
) -> SAE:
    """A TopK SAE trained on x [n, d] (`prepare`d rows) by SAELens: its `TopKTrainingSAE` and `SAETrainer.fit`,
    fed batches of rows drawn at random as `train_sae` draws them, with `train_sae`'s Adam lr, batch and steps.

    The rest is SAELens' recipe: decoder rows initialised at norm 0.1 and the encoder their transpose, b_dec 0,
    the top k chosen on pre-activations times decoder norms, an auxiliary loss that has dead latents reconstruct
    the residual, gradients clipped at norm 1, no activation normalisation (the rows are already scaled). At the
    end the decoder norms are folded into the encoder (SAELens' `fold_W_dec_norm`), so W_dec has unit rows as in
    `train_sae` and `encode`/`decode` give SAELens' reconstruction. losses: [steps], SAELens' mse_loss per step.
    Seeded: the same seed, the same SAE; the global torch RNG is left as it was."""
    # imported here: SAELens takes seconds to import, and only this function needs it
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig

    class Trainer(SAETrainer):  # SAELens' trainer, keeping each step's reconstruction loss
        losses: list[float]

        def step(self, batch: torch.Tensor):
            out = super().step(batch)
            self.losses.append(out.losses["mse_loss"].item())
            return out

    x, m = _rows_and_latents(x, n_latents, k)
    n, d = x.shape
    batch = min(batch_size, n)
    with torch.random.fork_rng(devices=[]):  # SAELens initialises from the global RNG
        torch.manual_seed(seed)
        model = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=m, k=k, device="cpu"))
    config = SAETrainerConfig(
        total_training_samples=steps * batch,
        train_batch_size_samples=batch,
        lr=lr,
        lr_end=lr,  # unused by the constant schedule (SAELens' default), but the trainer needs it set
        device="cpu",
        logger=LoggingConfig(log_to_wandb=False),
    )
    rows = _random_rows(torch.from_numpy(x), batch, torch.Generator().manual_seed(seed))
    trainer = Trainer(config, model, rows)
    trainer.losses = []
    trainer.fit()
    model.fold_W_dec_norm()
    out = {name: getattr(model, name).detach().cpu().numpy().astype(np.float32) for name in SAE_WEIGHTS}
    return SAE(out["W_enc"], out["b_enc"], out["W_dec"], out["b_dec"], k, 1.0, np.asarray(trainer.losses))


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


# The two ways to train the SAE, by name (see the module docstring).
TRAINERS = {"ours": train_sae, "saelens": train_saelens}


def sae_factors(
    acts: np.ndarray,
    n_clusters: int | None = None,
    *,
    trainer: str = "ours",
    n_latents: int | None = None,
    k: int = TOP_K,
    steps: int = 2000,
    seed: int = 0,
    max_clusters: int = 10,
) -> SAEFactors:
    """The whole baseline on activations acts [B, P, d] (or [n, d]): `prepare`, the SAE trained by `trainer`
    ("ours": `train_sae`; "saelens": `train_saelens`, on the same rows), then `factors_of`. Both trainers take the
    same arguments and give the same result type, so the two baselines are scored side by side."""
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {tuple(TRAINERS)}, got {trainer!r}")
    x, scale = prepare(acts)
    sae = replace(TRAINERS[trainer](x, n_latents, k, steps, seed=seed), scale=scale)
    return factors_of(sae, x, n_clusters, max_clusters, seed)


def factors_of(
    sae: SAE, x: np.ndarray, n_clusters: int | None = None, max_clusters: int = 10, seed: int = 0
) -> SAEFactors:
    """A trained SAE's factors on its rows x [n, d]: `cluster_latents`, a `cluster_subspace` per cluster of >= 2
    latents (a lone latent spans no geometry), by decreasing weighted energy, and the reconstruction's FVU."""
    live, labels, scores = cluster_latents(sae, x, n_clusters, max_clusters, seed)
    codes = encode(sae, x)
    fvu = float(((decode(sae, codes) - x) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum())
    clusters = [live[labels == c] for c in np.unique(labels) if (labels == c).sum() >= 2]
    energy = [float((codes[:, c].astype(np.float64) ** 2).sum()) for c in clusters]
    order = np.argsort(energy)[::-1]
    clusters = [clusters[i] for i in order]
    return SAEFactors([cluster_subspace(sae, codes, c) for c in clusters], clusters, sae, scores, fvu)
