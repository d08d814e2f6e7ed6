"""The wide transformer (d_model 480): what its directions beyond the factored ones hold, and what sets them,
one change at a time against the canonical width.

    python benchmarks/wide_transformer.py train LANE [NLANES]   # train this lane's share of the missing runs
    python benchmarks/wide_transformer.py report                # benchmarks/wide_transformer.md

Every run is the `laptop` profile's (the authors' `tl` init, the exact next-token law, Muon on the hidden matrices
and AdamW on the rest at lr 4e-3, cosine, batch 256, 1,500 steps) with the sizes and optimizer of its row:
  d_model 120, d_mlp 480    the canonical transformer
  d_model 480, d_mlp 1,920  notebook 05's reading of the paper's wide variant (the MLP follows the width, x 4)
  d_model 480, d_mlp 480    the other reading (the canonical MLP kept): the MLP width is the one change
  optimizer adamw           AdamW on every parameter (the authors' optimizer): Muon's orthogonalised updates
                            are the one change; at the profile's lr 4e-3 and, for the wide model, also at 1e-3
                            (4e-3 x 120 / 480: AdamW's stable lr for hidden matrices falls as 1 / width)
  steps 6,000               the wide model with the canonical MLP over 4 x the budget (its cosine schedule
                            stretched to match), seed 0: the budget is the one change
The runs are built by `parameters.run_config`, as `python -m factored.train --profile laptop --d_model 480 ...`
builds them, so they are the very runs notebook 05 and the transformer_variants sweep load. Single-threaded training,
as `make run` trains.

Scoring, the same for every run: learned or not by the library's rule (`verdicts.learning`: every factor's
held-out R^2 >= 0.9 and gap <= 0.02), PCA dims@95 and dims@99 at the end and the collapse (`probing.analyze_run`),
and the held-out share of the final activations' variance each part of the nested linear models adds
(`across_runs.variance_parts`: beliefs, position, tokens, within-factor products, the joint belief).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from factored import across_runs, parameters, probing, runs, seeds, train, verdicts
from factored.config import RunConfig
from factored.trajectory import stages

HERE = Path(__file__).resolve().parent
SIZES = {"canonical": (120, 480), "wide, 05's MLP": (480, 1920), "wide, canonical MLP": (480, 480)}
LR, STEPS = 4e-3, 1500  # the laptop profile's
CONDITIONS = [(sizes, "muon", LR, (0, 1, 2), STEPS) for sizes in SIZES] + [
    ("canonical", "adamw", LR, (0,), STEPS),
    ("wide, canonical MLP", "adamw", LR, (0,), STEPS),
    ("wide, canonical MLP", "adamw", LR * 120 / 480, (0,), STEPS),
    ("wide, canonical MLP", "muon", LR, (0,), 4 * STEPS),
]  # (sizes, optimizer, lr, seeds, steps); AdamW on one seed each: a control of the optimizer, not a new condition;
# 4 x the steps (seed 0): does a longer budget move position and tokens out of the top 95% of the variance?


def run_config(sizes: str, optimizer: str, lr: float, seed: int, steps: int = STEPS) -> RunConfig:
    d_model, d_mlp = SIZES[sizes]
    values = {"profile": "laptop", "d_model": d_model, "d_mlp": d_mlp, "optimizer": optimizer, "lr": lr, "seed": seed}
    return parameters.run_config(values | {"steps": steps}, strict=True)


def configs() -> list[tuple[str, str, float, int, int, RunConfig]]:
    return [
        (s, o, lr, seed, steps, run_config(s, o, lr, seed, steps))
        for s, o, lr, seed_list, steps in CONDITIONS
        for seed in seed_list
    ]


def train_lane(lane: int, n_lanes: int) -> None:
    torch.set_num_threads(1)
    missing = [cfg for *_, cfg in configs() if runs.finished_run(cfg) is None]
    for cfg in missing[lane::n_lanes]:
        run = train.get_or_train(cfg, progress=False)
        print(f"{run.dir.name}: final gap {run.metrics()[-1]['gap']:+.5f}", flush=True)


def score(run: runs.Run, acfg: probing.AnalysisConfig) -> dict:
    trajectory = probing.analyze_run(run, acfg, progress=False)
    st = stages(trajectory)
    final, gap = trajectory[st["final"]], run.metrics()[-1]["gap"]
    return {
        "learned": verdicts.learning(final.r2, gap).learned,
        "worst_r2": float(min(final.r2)),
        "gap": gap,
        "dims95": final.dims95,
        "dims99": final.dims(0.99),
        "collapse": trajectory[st["collapse"]].dims95,
    }


def report() -> None:
    acfg = probing.AnalysisConfig()
    rows = []
    for sizes, optimizer, lr, seed, steps, cfg in configs():
        run = runs.finished_run(cfg)
        if run is not None:
            parts = across_runs.variance_parts([run], acfg).iloc[0].drop("run").to_dict()
            condition = {"sizes": sizes, "optimizer": optimizer, "lr": lr, "steps": steps, "seed": seed}
            rows.append({**condition, **score(run, acfg), **parts})
    columns = ["beliefs", "position", "tokens", "within-factor", "joint belief", "unexplained"]
    lines = [
        "# The wide transformer: what its extra directions hold",
        "",
        "Produced by `python benchmarks/wide_transformer.py report` from the runs of `... train 0` and `... train 1`",
        "(method: that script's docstring). Each row: the mean over its seeds, with the 95% t-interval of dims@95",
        "where there are several; the variance parts are held-out shares of the final activations' variance (%).",
        "",
        "| d_model, d_mlp | optimizer, lr | steps | seeds | learned | worst R² | gap | dims@95 | dims@99 | collapse | "
        + " | ".join(columns)
        + " |",
        "|" + "---|" * (10 + len(columns)),
    ]
    for sizes, optimizer, lr, _, steps in CONDITIONS:
        condition = (sizes, optimizer, lr, steps)
        picked = [r for r in rows if (r["sizes"], r["optimizer"], r["lr"], r["steps"]) == condition]
        if not picked:
            continue
        mean = {key: float(np.mean([r[key] for r in picked])) for key in ["gap", "dims99", "collapse", *columns]}
        dims = [r["dims95"] for r in picked]
        d95 = f"{np.mean(dims):.1f}"
        if len(dims) > 1:
            _, low, high = seeds.seed_interval(dims)
            d95 += f" [{low:.1f}, {high:.1f}]" if np.isfinite(low) else f" (range {min(dims)}-{max(dims)})"
        cells = [
            f"{SIZES[sizes][0]}, {SIZES[sizes][1]} ({sizes})", f"{optimizer}, {lr:g}", f"{steps:,}", str(len(picked)),
            f"{sum(r['learned'] for r in picked)} of {len(picked)}", f"{min(r['worst_r2'] for r in picked):.3f}",
            f"{mean['gap']:.4f}", d95, f"{mean['dims99']:.1f}", f"{mean['collapse']:.1f}",
            *(f"{100 * mean[c]:.1f}" for c in columns),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    (HERE / "wide_transformer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "report"
    if command == "train":
        train_lane(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    elif command == "report":
        report()
    else:
        raise SystemExit(__doc__)
