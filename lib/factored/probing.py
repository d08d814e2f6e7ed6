"""Probing trained networks: activations paired with beliefs, and the factored-geometry analysis of a run.

This is the torch side of the analysis; the math lives in `analysis` (numpy, pure). Activations are taken at
one site for every position the model was trained to predict from, BOS dropped, and paired with each factor's
belief at the same point of the sequence (after t tokens for the activation that has read t tokens).
Analyses of every checkpoint of a run are cached in the run folder, keyed by the analysis config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from . import analysis, config, products, profiles, sampling, theory
from .models import INFERENCE_BATCH, build_model
from .products import inputs_and_targets
from .runs import Run, atomic_write_text, cached_json, read_cache
from .trajectory import Checkpoint, Trajectory

CACHE_VERSION = 1  # bump when the content of the cached analysis files changes
# The analyses that need fewer probe sequences than a trajectory (the scatter plots of projections, the variance
# decompositions with their thousands of features) take at most this many.
FEW_SEQUENCES = 2_000
# Randomly initialised model i of an overlap baseline is drawn with torch seed RANDOM_INIT_SEED + i.
RANDOM_INIT_SEED = 1_000


@dataclass(frozen=True)
class AnalysisConfig:
    """What to measure. Trajectory = PCA + regression at every checkpoint; vary-one at chosen steps."""

    site: str | None = None  # None: the model's default (last residual stream / last recurrent layer)
    n_sequences: int = 4_000  # held-out sequences for PCA and regression (x 7 positions = activations)
    vary_settings: int = 10  # frozen settings of the other factors
    vary_sequences: int = 200  # sequences per setting, varying only the probed factor
    k_max: int = 20  # overlap ranks 1..k_max
    n_random_models: int = 5  # randomly initialised models for the overlap baseline band
    batch_size: int = 4_096
    seed: int = 12_345  # analysis data seed, distinct from training seeds

    def __post_init__(self) -> None:
        """One ValueError naming the first field out of its range."""
        for name, low in (("n_sequences", 2), ("vary_settings", 1), ("vary_sequences", 2), ("k_max", 1),
                          ("n_random_models", 1), ("batch_size", 1), ("seed", 0)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    def site_for(self, model) -> str:
        """The site analysed in `model`: this config's, or the model's default."""
        return self.site or model.default_site

    def hash(self) -> str:
        """Names the cache files; CACHE_VERSION changes it when what is cached changes."""
        key = {**asdict(self), "cache_version": CACHE_VERSION}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ProbeData:
    """Held-out sequences for one analysis: tokens [B, L] and per-factor beliefs list[N] of [B, L+1, S_n]."""

    tokens: torch.Tensor
    beliefs: list[torch.Tensor]


@torch.no_grad()
def activations(
    model: torch.nn.Module, process, tokens: torch.Tensor, site: str, batch_size: int = INFERENCE_BATCH
) -> np.ndarray:
    """Activations at `site` for every trained position, BOS dropped: tokens [B, L] -> float32 [B, L-1, d].

    Position p of the result has read tokens x_1..x_{p+1}: it pairs with beliefs[:, p + 1]."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(tokens), batch_size):
        inputs, _ = inputs_and_targets(process, tokens[start : start + batch_size].to(device), model.uses_bos)
        acts = model(inputs, capture=[site])[1][site]
        out.append((acts[:, 1:] if model.uses_bos else acts).float().cpu().numpy())
    return np.concatenate(out)


def paired_beliefs(beliefs: list[torch.Tensor], seq_len: int) -> list[np.ndarray]:
    """The beliefs matching `activations`' positions: list[N] of [B, L+1, S] -> list[N] of float64 [B, L-1, S]."""
    return [b[:, 1:seq_len].double().cpu().numpy() for b in beliefs]


def flat(x: np.ndarray) -> np.ndarray:
    """[..., d] -> [n, d]: every (sequence, position) sample a row."""
    return x.reshape(-1, x.shape[-1])


@dataclass(frozen=True)
class Probed:
    """A model's activations on probe data with each factor's belief at the same point of the sequence.

    acts: float32 [B, L-1, d]; beliefs: list[N] of float64 [B, L-1, S_n]; `flat_acts` and `flat_beliefs` put
    every (sequence, position) sample in a row."""

    acts: np.ndarray
    beliefs: list[np.ndarray]

    @property
    def flat_acts(self) -> np.ndarray:
        return flat(self.acts)

    @property
    def flat_beliefs(self) -> list[np.ndarray]:
        return [flat(b) for b in self.beliefs]


def probe(model: torch.nn.Module, process, data: ProbeData, site: str) -> Probed:
    """`activations` of `model` at `site` on the probe data, paired with the data's beliefs."""
    seq_len = data.tokens.shape[1]
    return Probed(activations(model, process, data.tokens, site), paired_beliefs(data.beliefs, seq_len))


def probe_data(process, n_sequences: int, seq_len: int, seed: int) -> ProbeData:
    tokens, beliefs = sampling.sample(process, n_sequences, seq_len, seed=seed)
    return ProbeData(tokens, beliefs)


def few_probe_data(process, cfg: AnalysisConfig, seq_len: int, n_sequences: int = FEW_SEQUENCES) -> ProbeData:
    """The first min(cfg.n_sequences, n_sequences) sequences of the analysis' probe data (the same seed)."""
    return probe_data(process, min(cfg.n_sequences, n_sequences), seq_len, cfg.seed)


def vary_one_tokens(process, factor: int, n_settings: int, n_sequences: int, seq_len: int, seed: int) -> torch.Tensor:
    """Sequences in which only `factor`'s token stream varies: [n_settings, n_sequences, L] joint tokens.

    Each setting freezes the other factors' streams (taken from one sampled sequence); the probed factor's
    stream comes from n_settings * n_sequences fresh samples, so each setting sees many of its histories."""
    gen = torch.Generator().manual_seed(seed)
    frozen = products.decode(process, sampling.sample(process, n_settings, seq_len, generator=gen)[0])
    varied = products.decode(process, sampling.sample(process, n_settings * n_sequences, seq_len, generator=gen)[0])
    mixed = frozen[:, None].expand(n_settings, n_sequences, seq_len, process.n_factors).clone()
    mixed[..., factor] = varied[..., factor].view(n_settings, n_sequences, seq_len)
    return products.encode(process, mixed)


def vary_one(model, process, cfg: AnalysisConfig, seq_len: int, site: str) -> dict:
    """Each factor's subspace from vary-one activations; their dims@95, union dims and pairwise overlaps."""
    subspaces, acts_by_factor = [], []
    for n in range(process.n_factors):
        toks = vary_one_tokens(process, n, cfg.vary_settings, cfg.vary_sequences, seq_len, cfg.seed + 1 + n)
        acts = activations(model, process, toks.flatten(0, 1), site, cfg.batch_size)
        acts = acts.reshape(cfg.vary_settings, cfg.vary_sequences, *acts.shape[1:])
        acts_by_factor.append(acts)
        subspaces.append(analysis.factor_subspace(acts))
    directions = [s["directions"][: cfg.k_max] for s in subspaces]
    ks = range(1, min(len(v) for v in directions) + 1)  # k_max, or fewer for a model narrower than k_max
    return {
        "dims95": [s["dims95"] for s in subspaces],
        "union_dims95": analysis.union_dims(acts_by_factor),
        "overlap_matrix": analysis.overlap_matrix(directions, ks),
        # a single factor has no pair to compare: NaN at every rank
        "mean_overlap": analysis.mean_pairwise_overlap(directions, ks)
        if len(directions) > 1
        else np.full(len(ks), np.nan),
        "directions": directions,
    }


def trajectory_point(model, process, data: ProbeData, site: str, seed: int) -> Checkpoint:
    """PCA and held-out belief regression of one model on the probe data."""
    probed = probe(model, process, data, site)
    pca = analysis.pca_summary(probed.flat_acts)
    reg = analysis.belief_regression(probed.flat_acts, probed.flat_beliefs, seed=seed)
    return Checkpoint(pca["cev"].tolist(), pca["dims"], **reg.to_dict())


def token_features(process, tokens: torch.Tensor, lag: int = 0) -> np.ndarray:
    """One-hot of each factor's sub-token `lag` steps before the newest one read, at `activations`' positions:
    tokens [B, L] -> [B * (L-1), sum V_n] float64 (all-zero rows where that token lies before the sequence)."""
    factor_tokens = products.decode(process, tokens).cpu().numpy()  # [B, L, N]
    B, L, _ = factor_tokens.shape
    columns = []
    for n, V in enumerate(process.factor_vocab_sizes):
        hot = np.zeros((B, L - 1, V))
        for p in range(lag, L - 1):  # position p has read x_1..x_{p+1}; its newest token is tokens[:, p]
            hot[:, p] = analysis.one_hot(factor_tokens[:, p - lag, n], V)
        columns.append(hot.reshape(-1, V))
    return np.hstack(columns)


def variance_decomposition(probed: Probed, process, tokens: torch.Tensor, seed: int = 0) -> list[dict]:
    """What the activations' variance holds beyond the linear beliefs (see `analysis.variance_explained`):
    nested feature sets beliefs -> + position -> + newest token (each factor's sub-token, additive) -> + newest
    token (which of the joint tokens: any function of it) -> + previous sub-tokens -> + within-factor quadratic
    beliefs -> + joint belief (all cross-factor products). `probed`: `probe` of the model on the sequences
    `tokens` [B, L]."""
    seq_len = tokens.shape[1]
    beliefs = probed.flat_beliefs
    positions = np.tile(np.arange(seq_len - 1), len(probed.acts))
    feature_sets = {
        "beliefs (linear)": np.hstack(beliefs),
        "+ position": analysis.one_hot(positions, seq_len - 1),
        "+ newest token, per factor": token_features(process, tokens),
        "+ newest token, joint identity": analysis.one_hot(
            tokens[:, : seq_len - 1].reshape(-1).numpy(), process.vocab_size
        ),
        "+ previous token, per factor": token_features(process, tokens, lag=1),
        "+ beliefs, quadratic within factor": analysis.quadratic_features(beliefs),
        "+ joint belief (cross-factor products)": analysis.joint_belief(beliefs),
    }
    return analysis.variance_explained(probed.flat_acts, feature_sets, seed=seed)


# the nested feature sets of `variance_decomposition`, gathered into what each adds (`variance_parts`)
VARIANCE_PARTS = {
    "beliefs (linear)": "beliefs",
    "+ position": "position",
    "+ newest token, per factor": "tokens",
    "+ newest token, joint identity": "tokens",
    "+ previous token, per factor": "tokens",
    "+ beliefs, quadratic within factor": "within-factor",
    "+ joint belief (cross-factor products)": "joint belief",
}


def variance_parts(rows: list[dict]) -> dict[str, float]:
    """`variance_decomposition`'s cumulative rows as the share each part adds: beliefs, position, tokens (the newest
    and previous ones), within-factor quadratic beliefs, the joint belief, and "unexplained" (1 - the last R²)."""
    parts, before = dict.fromkeys([*dict.fromkeys(VARIANCE_PARTS.values()), "unexplained"], 0.0), 0.0
    for row in rows:
        parts[VARIANCE_PARTS[row["features"]]] += row["r2"] - before
        before = row["r2"]
    parts["unexplained"] = 1.0 - before
    return parts


def final_variance_decomposition(run: Run, cfg: AnalysisConfig, n_sequences: int = FEW_SEQUENCES) -> list[dict]:
    """`variance_decomposition` of the run's final checkpoint on `few_probe_data`."""
    data = few_probe_data(run.process, cfg, run.config.data.seq_len, n_sequences)
    model = run.load_model(run.steps[-1])
    return variance_decomposition(
        probe(model, run.process, data, cfg.site_for(model)), run.process, data.tokens, cfg.seed
    )


def joint_belief_gain(run: Run, cfg: AnalysisConfig, n_sequences: int = FEW_SEQUENCES) -> dict:
    """Is the final representation factored or joint? `variance_decomposition` at the final checkpoint:
    `beliefs_r2`, the held-out share of the activations' variance the beliefs explain linearly; `before_joint_r2`,
    with position, tokens and within-factor products added; `joint_gain`, what every cross-factor product of
    belief coordinates (the joint belief) explains on top. A factored network leaves joint_gain near 0; a joint
    one puts its variance there. (The tokens come first because the newest token alone already predicts much of
    the joint belief: without them, an untrained network's token embedding would count as "joint".)"""
    r2 = [r["r2"] for r in final_variance_decomposition(run, cfg, n_sequences)]
    return {"beliefs_r2": r2[0], "before_joint_r2": r2[-2], "joint_gain": r2[-1] - r2[-2]}


def _cached_steps(path, steps: list[int], compute, progress: bool = False, desc: str = "") -> dict:
    """{step: compute(step)} for `steps`, kept in the JSON file `path`: only missing steps are computed, and the
    file is rewritten atomically after each one, so an interrupted analysis resumes where it stopped (a damaged
    file is set aside and computed again: `runs.read_cache`)."""
    path.parent.mkdir(exist_ok=True)
    saved = read_cache(path, lambda d: isinstance(d, dict) and all(isinstance(v, dict) for v in d.values()))
    cache = {int(k): v for k, v in (saved or {}).items()}
    quiet = {} if progress else {"disable": True}  # progress=True leaves the choice to TQDM_DISABLE
    for step in tqdm([s for s in steps if s not in cache], desc=desc, **quiet):
        cache[step] = compute(step)
        atomic_write_text(path, json.dumps(cache))
    return {s: cache[s] for s in steps}


def analyze_run(
    run: Run, cfg: AnalysisConfig = AnalysisConfig(), steps: list[int] | None = None, progress: bool = True
) -> Trajectory:
    """Trajectory analysis of every checkpoint (or `steps`), cached in <run>/analysis/trajectory-<hash>.json:
    {step: `trajectory.Checkpoint`}."""
    data = None

    def compute(step: int) -> dict:
        nonlocal data  # the probe sequences are drawn once, and only if some step is missing
        if data is None:
            data = probe_data(run.process, cfg.n_sequences, run.config.data.seq_len, cfg.seed)
        model = run.load_model(step)
        return trajectory_point(model, run.process, data, cfg.site_for(model), cfg.seed).to_json()

    path = run.dir / "analysis" / f"trajectory-{cfg.hash()}.json"
    cached = _cached_steps(path, run.steps if steps is None else steps, compute, progress, "analysing checkpoints")
    return {step: Checkpoint.from_json(point) for step, point in cached.items()}


def _to_jsonable(result: dict) -> dict:
    return {
        k: np.asarray(v).tolist() if k in ("directions", "overlap_matrix", "mean_overlap") else v
        for k, v in result.items()
    }


def vary_one_at(run: Run, steps: list[int], cfg: AnalysisConfig = AnalysisConfig()) -> dict[int, dict]:
    """Vary-one results at the given checkpoints (cached like `analyze_run`), with numpy arrays restored."""

    def compute(step: int) -> dict:
        model = run.load_model(step)
        site = cfg.site_for(model)
        return _to_jsonable(vary_one(model, run.process, cfg, run.config.data.seq_len, site))

    cached = _cached_steps(run.dir / "analysis" / f"vary_one-{cfg.hash()}.json", steps, compute)
    return {s: {k: np.asarray(v) if isinstance(v, list) else v for k, v in r.items()} for s, r in cached.items()}


def random_init_overlaps(run: Run, cfg: AnalysisConfig = AnalysisConfig()) -> np.ndarray:
    """Mean pairwise overlap vs k for cfg.n_random_models freshly initialised models of the run's architecture
    (torch seeds RANDOM_INIT_SEED + 0, 1, ...): [n_models, k_max]. The baseline band an untrained network gives."""

    def compute() -> list[list[float]]:
        rows = []
        for i in range(cfg.n_random_models):
            torch.manual_seed(RANDOM_INIT_SEED + i)
            model = run.new_model().eval()
            site = cfg.site_for(model)
            rows.append(vary_one(model, run.process, cfg, run.config.data.seq_len, site)["mean_overlap"])
        return np.asarray(rows).tolist()

    path = run.dir / "analysis" / f"random_init-{cfg.hash()}.json"
    return np.asarray(cached_json(path, compute, lambda d: isinstance(d, list) and len(d) > 0))


def reference_curves(process, cfg: AnalysisConfig, seq_len: int) -> dict:
    """CEV of the true beliefs on the probe data: concatenated ("factored") and outer product ("joint")."""
    data = probe_data(process, cfg.n_sequences, seq_len, cfg.seed)
    beliefs = [flat(b) for b in paired_beliefs(data.beliefs, seq_len)]
    factored_cev, joint_cev = analysis.factored_reference(beliefs), analysis.joint_reference(beliefs)
    return {
        "factored_cev": factored_cev,
        "joint_cev": joint_cev,
        "factored_dims95": analysis.dims_at(factored_cev, 0.95),
        "joint_dims95": analysis.dims_at(joint_cev, 0.95),
    }


def analysis_config(profile: str | None = None, run: config.RunConfig | None = None, **overrides) -> AnalysisConfig:
    """The analysis settings of a profile (`profiles.Profile.analysis`: the smoke profile's are small enough for
    CI), with single fields overridden by name (`site=...`, `n_random_models=...`). Every field checks itself,
    and with `run` (the run it will analyse) the site is checked against its model, so that a bad value stops a
    notebook before it trains."""
    cfg = replace(AnalysisConfig(**profiles.profile_record(profile).analysis), **overrides)
    if run is not None and cfg.site is not None:
        vocab = products.process_of(run.data).model_vocab_size
        sites = build_model(run.model, vocab, run.data.seq_len + 1).sites
        if cfg.site not in sites:
            raise ValueError(f"site must be one of this model's sites {sites} ('' for its default), got {cfg.site!r}")
    return cfg


@torch.no_grad()
def prediction_total_correlation(model, process, tokens: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
    """How far a model's own prediction is from factoring: KL(model's next-token law || product of that law's
    per-factor marginals) at every sequence and predicted position: tokens [B, L] -> [B, T] float64 nats.

    0 for a model that predicts each factor independently; averaged over contexts, the true law's value is the
    fidelity cost of factoring (`theory.fidelity_cost`). The law is the softmax over the joint tokens (BOS
    left out)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(tokens), batch_size):
        inputs, _ = inputs_and_targets(process, tokens[start : start + batch_size].to(device), model.uses_bos)
        logits = model(inputs)[0][..., : process.vocab_size].double()
        out.append(theory.total_correlation(process, torch.softmax(logits, -1)).cpu())
    return torch.cat(out).numpy()
