"""The profiles: named scales for everything a notebook does (`smoke` for CI, `laptop` for a 2-core CPU, `paper`
for a GPU), one `Profile` record each, and which one is the default.

A profile holds plain field overrides of the run config by part; `config.make_config` applies them. Each
choice of the `laptop` profile is measured in benchmarks/recipe.md (the time-to-result study).
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


# The canonical model on a 2-core CPU, chosen by the time-to-result study (benchmarks/recipe.md): small weights
# with unit-scale embeddings (the N(0, 1) embedding is what lets the Mess3 factors be learned at this budget), Muon
# on the hidden matrices and AdamW on the rest, both at lr 4e-3 with 100 steps of warmup and a cosine decay, batch
# 256; 3,600 steps = 0.92M sequences, every target met by step 3,000 (about 5 quiet minutes on 2 cores).
LAPTOP_RUN = {
    "model": dict(init="gpt2", embed_std=1.0),
    "train": dict(
        steps=3600,
        batch_size=256,
        lr=4e-3,
        optimizer="muon",
        schedule="cosine",
        warmup_steps=100,
        eval_batch_size=4096,
        checkpoint_every=250,
        log_every=100,  # a held-out evaluation costs about 6 training steps: every 100 steps, and at checkpoints
    ),
}
# Each recurrent net's recipe on top of LAPTOP_RUN, from its own study (benchmarks/recipe.md, "Recipes per
# architecture": AdamW and Muon at lr 3e-3, 1e-2, 3e-2 on the laptop budget). Width 32 needs lr 1e-2 (3e-3 leaves
# the RNN at gap 0.058, 3e-2 never decodes a Mess3 factor); Muon then helps the gated nets (LSTM gap 0.0126 against
# 0.0168 with AdamW, GRU 0.0124 against 0.0205) and not the plain RNN (0.0243 against 0.0228).
# A recurrent step costs a third to a half of a transformer step, so the gated nets train twice the steps in less
# time than the transformer's budget: at 3,600 steps their Mess3 factors reach R^2 0.80-0.90 (LSTM) and 0.79-0.84
# (GRU), at 7,200 every factor 0.96-0.98 (gaps 0.0052 and 0.0060). The plain RNN of width 32 stays at 3,600.
LAPTOP_RECURRENT: dict[str, dict[str, Any]] = {
    "rnn": dict(optimizer="adamw", lr=1e-2),
    "lstm": dict(lr=1e-2, steps=7200),  # Muon for the hidden matrices, as the transformer
    "gru": dict(lr=1e-2, steps=7200),
    # width 256: lr 1e-2 never leaves the start (gap 0.14 after 3,600 steps); at 3e-3 AdamW reaches gap 0.032 (Muon
    # 0.042), Mess3 R^2 0.86-0.88, Bloch 0.89-0.91
    "rnn256": dict(optimizer="adamw", lr=3e-3),
}
# The noisy processes' budget (benchmarks/recipe.md, "Noise and six factors"). A belief error costs less loss the
# more tokens are noise, so a noisy run must come closer to its optimum before its beliefs decode as well. At eps
# 0.2 every factor's R^2 passes 0.9 at 10,800 steps (3x; Bloch 0.89 at 7,200 and flat there, as the cosine ends).
# At eps 0.5 the Bloch factors are at 0.47-0.53 after 3,600 steps and 0.70-0.73 after 7,200, with the gap already
# below eps 0's: no budget a laptop sweep affords learns them, so eps 0.5 keeps 7,200 steps, where every Mess3
# factor is learned (R^2 0.93) and the comparison of notebook 07 leaves it out as not learned.
LAPTOP_NOISE_STEPS = ((0.2, 10_800), (0.5, 7200))

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
    # the canonical model on a 2-core CPU in under 5 minutes (LAPTOP_RUN)
    "laptop": Profile(
        "laptop",
        run=LAPTOP_RUN,
        recurrent=LAPTOP_RECURRENT,
        noise_steps=LAPTOP_NOISE_STEPS,
        mc_samples_curves=40_000,  # 8 noise levels x 40k contexts: standard errors near 1% in about a minute
    ),
    # the laptop recipe over a budget a 2-core CPU trains in about 25 minutes: how far the laptop budget is from
    # convergence, and what sets the final dimension (benchmarks/geometry.md)
    "long": Profile(
        "long",
        run={"model": LAPTOP_RUN["model"], "train": LAPTOP_RUN["train"] | dict(steps=20_000, checkpoint_every=1000)},
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
