"""The profiles: named scales for everything a notebook does (`smoke` for CI, `laptop` for a 2-core CPU, `paper`
for a GPU), one `Profile` record each, and which one is the default.

A profile holds plain field overrides of the run config by part; `config.make_config` applies them. Each
choice of the `laptop` profile is measured: the target and init in benchmarks/target_study.md, the optimizer,
lr, schedule and batch and each recurrent net's recipe in benchmarks/recipe.md (the token recipe's study).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Profile:
    """A named scale for everything a notebook does: what a run trains, how large its analyses are, how many
    Monte-Carlo contexts the theory averages.

    run: field overrides of the run config by part ({"model": {...}, "train": {...}}); analysis: field
    overrides of `probing.AnalysisConfig`; mc_samples: contexts for one process's optimal loss and fidelity cost
    (notebooks 04, 06); mc_samples_curves: contexts per point of the theory curves over eps (notebook 01);
    trains_demo_grid: notebook 07 trains a tiny grid of its own (the smoke profile, where no sweep has run);
    recurrent: training overrides per recurrent net ({"lstm": {"lr": ...}}, or "rnn256" for one width, which
    wins over "rnn"): each architecture trains with the recipe its own study found (benchmarks/recipe.md);
    noise_steps: ((eps, steps), ...) the training budget of a noisy run at the eps the recipe study measured (noise
    dilutes what the tokens teach, so a noisy process needs more steps to learn its beliefs); between them and eps
    0 (the profile's steps) it is interpolated linearly, beyond the last it is the last one's.
    """

    name: str
    run: dict[str, dict[str, Any]]
    analysis: dict[str, Any] = field(default_factory=dict)
    recurrent: dict[str, dict[str, Any]] = field(default_factory=dict)
    noise_steps: tuple[tuple[float, int], ...] = ()
    mc_samples: int = 50_000
    mc_samples_curves: int = 100_000
    trains_demo_grid: bool = False

    def steps_at(self, noise: float) -> int | None:
        """The training budget of a run at this eps (`noise_steps`), or None to keep the profile's."""
        if not self.noise_steps or noise <= 0:
            return None
        points = [(0.0, self.run["train"]["steps"]), *sorted(self.noise_steps)]
        for (e0, s0), (e1, s1) in zip(points, points[1:], strict=False):
            if noise <= e1:
                return int(round((s0 + (s1 - s0) * (noise - e0) / (e1 - e0)) / 100) * 100)
        return points[-1][1]


# The canonical model on a 2-core CPU, chosen by the training target study (benchmarks/target_study.md): the
# paper's model with the authors' init (`tl`), trained on the exact next-token law of each context (`target=law`:
# the one-hot loss's expectation and expected gradient, without the noise of sampling the target), Muon on the
# hidden matrices and AdamW on the rest, both at lr 4e-3 (the token recipe's study, benchmarks/recipe.md), 100
# warmup steps and a cosine decay, batch 256, 1,500 steps = 0.38M sequences. Every condition of the study (eps 0
# to 0.5, the chain, the LSTM) has learned its beliefs by then, seeds 0-2.
LAPTOP_RUN = {
    "model": dict(init="tl"),
    "train": dict(
        steps=1500,
        batch_size=256,
        lr=4e-3,
        optimizer="muon",
        schedule="cosine",
        warmup_steps=100,
        target="law",
        eval_batch_size=4096,
        checkpoint_every=250,
        log_every=50,  # an evaluation costs about 4 training steps: every 50, and 1-2-5 per decade (`train.log_steps`)
    ),
}
# Each recurrent net's recipe on top of LAPTOP_RUN, from the token recipe's study of each architecture
# (benchmarks/recipe.md, "Recipes per architecture": AdamW and Muon at lr 3e-3, 1e-2, 3e-2): width 32 needs lr
# 1e-2; Muon helps the gated nets (LSTM, GRU) and not the plain RNN; width 256 needs lr 3e-3 with AdamW (1e-2 never
# leaves the start there).
LAPTOP_RECURRENT: dict[str, dict[str, Any]] = {
    "rnn": dict(optimizer="adamw", lr=1e-2),
    "lstm": dict(lr=1e-2),  # Muon for the hidden matrices, as the transformer
    "gru": dict(lr=1e-2),
    "rnn256": dict(optimizer="adamw", lr=3e-3),
}
PROFILE_RECORDS: dict[str, Profile] = {
    # seconds on a CPU: a tiny model and a few steps; exercises the whole pipeline in CI
    "smoke": Profile(
        "smoke",
        run={
            "model": dict(d_model=24, n_layers=1, n_heads=2, d_mlp=48, init="torch"),
            "train": dict(steps=30, batch_size=64, eval_batch_size=256, plateau_window=10, lr=3e-3),
        },
        analysis=dict(n_sequences=300, vary_settings=3, vary_sequences=40, k_max=5, n_random_models=2),
        mc_samples=2_000,
        mc_samples_curves=4_000,
        trains_demo_grid=True,
    ),
    # the canonical model on a 2-core CPU in about 3 minutes (LAPTOP_RUN)
    "laptop": Profile(
        "laptop",
        run=LAPTOP_RUN,
        recurrent=LAPTOP_RECURRENT,
        mc_samples_curves=40_000,  # 8 noise levels x 40k contexts: standard errors near 1% in about a minute
    ),
    # the paper's init and the sampled-token target over a budget a 2-core CPU trains in about 40 minutes: does
    # sampled-token training reach another geometry than the exact law (benchmarks/target_study.md)?
    "long": Profile(
        "long",
        run={
            "model": LAPTOP_RUN["model"],
            "train": LAPTOP_RUN["train"] | dict(steps=20_000, target="tokens", checkpoint_every=1000, log_every=100),
        },
        recurrent=LAPTOP_RECURRENT,
        mc_samples_curves=40_000,
    ),
    # the authors' budget: a GPU job
    "paper": Profile(
        "paper",
        run={"train": dict(steps=500_000, batch_size=25_000, lr=5e-4, eval_batch_size=25_000, compile=True)},
        mc_samples=200_000,
        mc_samples_curves=400_000,
    ),
}


def profile_record(profile: str | None = None) -> Profile:
    """The `Profile` named `profile` (None or "": the default one, see `resolve_profile`)."""
    return PROFILE_RECORDS[resolve_profile(profile)]


def default_profile() -> str:
    """FACTORED_PROFILE from the environment (CI sets `smoke`), else `laptop`."""
    return os.environ.get("FACTORED_PROFILE", "laptop")


def resolve_profile(profile: str | None = None) -> str:
    """`profile`, or the default one when None or "" (papermill-friendly); ValueError unless one of PROFILES."""
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


PROFILES = tuple(PROFILE_RECORDS)
