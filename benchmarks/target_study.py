"""The training target study: sampled next tokens against their exact law, crossed with the init, the noise and
the batch, on the same recipe, seeds and scoring. It chose the `laptop` profile (profiles.py).

    python benchmarks/target_study.py train LANE [NLANES]   # train and score this lane's share of the runs
    python benchmarks/target_study.py report                # benchmarks/target_study.md + target_study*.png

Every run is the paper's transformer on the five-factor process trained with one recipe (Muon on the hidden
matrices and AdamW on the rest at lr 4e-3, 100 warmup steps and a cosine decay, batch 256, 1,500 steps), seed 0
unless a cell names more, with one thing changed at a time:
  target  tokens (one-hot sampled next tokens, the authors') | law (the exact next-token law of each context)
  init    laptop (N(0, 0.02) weights with N(0, 1) embeddings, the token recipe's) | paper (`tl`, the authors')
  eps     0 | 0.5, and for the chosen cell 0.1, 0.2, 0.3 (the noise expansion: 3 seeds at 0.2 and 0.5, else 1)
  batch   256 | 1,024 at equal sequences (375 steps) for law
  budget  1,500 steps | 4x (6,000 steps: the same warmup, the cosine over the longer budget) at every eps > 0 for the
          chosen cell (3 seeds at each): at 1,500 steps its held-out gap (4e-4 to 1e-3 nats) is not
          below every eps's fidelity cost, and how the dimension moves once a run is well below it is the question of
          the noise experiment (the law recipe's gap falls faster than 1/steps: 0.0019 at step 900, 0.0002 at 2,700 at
          eps 0, so 6,000 steps reach about 1e-4, below the cost at eps >= 0.2, 4.5e-4 to 8.6e-4, and near eps 0.1's
          1.6e-4)
  long    the `long` profile (the paper's init, sampled tokens, 20,000 steps, the laptop recipe otherwise) at eps 0
          and 0.5, seeds 0-2: does sampled-token training reach another geometry than the exact law? And eps 0.5
          at batch 1,024 over the same sequences (5,000 steps, warmup and checkpoints scaled alike), seeds 0-2:
          does less target noise per step let sampled tokens learn the Mess3 beliefs?
Runs are named by their condition (`canonical`, `eps0.5`) and live in outputs/runs/ like any run, so a run of
the chosen cell is the very run the notebooks load. Training is single-threaded (torch.set_num_threads(1)),
as `make run` trains, so the floats are the ones a fresh clone reproduces.

Scoring, the same for every run: the held-out gap at every logged step (metrics.jsonl); at every checkpoint
(the authors' log-spaced schedule, then every 250 steps) PCA dims@95 and dims@99 and the held-out R^2 and RMSE
of each factor's belief regression on 4,000 probe sequences (`probing.analyze_run`); at the last checkpoint
the vary-one overlap at k = 1, 2 against 5 random networks of the same init, the share of the activations'
variance the joint belief adds beyond beliefs, position and tokens (`probing.joint_belief_gain`), and the total
correlation of the network's own predicted law against the true law's (`probing.prediction_total_correlation`
against `theory.fidelity_cost`): how much of what factoring costs the network recovers.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from factored import parameters, probing, products, runs, theory, train
from factored.config import DataConfig, ModelConfig, RunConfig, TrainConfig, condition_name

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "target_study.json"
RECIPE = dict(steps=1500, batch_size=256, lr=4e-3, optimizer="muon", schedule="cosine", warmup_steps=100,
              eval_batch_size=4096, checkpoint_every=250, log_every=50)  # fmt: skip
RECURRENT = {"lstm": dict(lr=1e-2)}  # the LSTM's lr from the token recipe's own study (benchmarks/recipe.md)
INITS = {"laptop": dict(init="gpt2", embed_std=1.0), "paper": dict(init="tl")}
CHOSEN = ("paper", "law")  # the cell the profile takes (see report): (init, target)
NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.5)
EXPANSION_SEEDS = {0.1: (0,), 0.2: (0, 1, 2), 0.3: (0,), 0.5: (0, 1, 2)}  # 3 seeds where the paper's growth is largest
BUDGET, BUDGET_NOISE = 4, (0.1, 0.2, 0.3, 0.5)  # the longer runs: x the recipe's steps, at these eps (docstring)
# the longer runs answer the noise question: 3 seeds at every eps
BUDGET_SEEDS = {0.1: (0, 1, 2), 0.2: (0, 1, 2), 0.3: (0, 1, 2), 0.5: (0, 1, 2)}
LONG_NOISE, LONG_SEEDS = (0.0, 0.5), (0, 1, 2)  # the `long` profile's runs (docstring)
LONG_BATCH = 1024  # eps 0.5's long run at 4x the batch over the same sequences: less sampled-target noise per step
TC_SEQUENCES = 2_000  # probe sequences for the predicted law's total correlation
FIDELITY_SAMPLES = 100_000  # Monte-Carlo contexts of the true law's fidelity cost (standard error near 1%)


def cell(
    init: str, target: str, eps: float = 0.0, seed: int = 0, batch: int = 256, process: str = "", budget: int | str = 1
) -> str:
    """A run's name in the study; `process`: "" (the transformer on independent factors), "chain" or "lstm";
    budget: the multiple of the recipe's steps (named `-x4` when not 1), or "long": the `long` profile's run."""
    name = f"{init}-{target}-eps{eps:g}-b{batch}-s{seed}" + (f"-{process}" if process else "")
    return name + budget_suffix(budget)


def budget_suffix(budget: int | str) -> str:
    """How a run's name ends for its budget: "" (the recipe's steps), "-x4" (4x) or "-long" (the long profile)."""
    return "-long" if budget == "long" else f"-x{budget}" if budget != 1 else ""


def cells() -> list[str]:
    """Every run of the study, in the order they are trained: the cells that choose the profile, then the runs
    `make run` trains at the chosen cell (eps 0.2, the chain, the LSTM), then seeds, noise and the rest of the grid."""
    first = [cell(i, t) for i in ("paper", "laptop") for t in ("law", "tokens")]
    notebooks = [cell(*CHOSEN, 0.2), cell(*CHOSEN, process="chain"), cell(*CHOSEN, process="lstm")]
    seeds = [cell(*CHOSEN, seed=s) for s in (1, 2)]
    noisy = [cell(i, t, 0.5) for i in ("paper", "laptop") for t in ("law", "tokens")]
    expansion = [cell(*CHOSEN, eps, s) for eps in NOISE_LEVELS[1:] for s in EXPANSION_SEEDS[eps]]
    longer = [cell(*CHOSEN, eps, s, budget=BUDGET) for s in (0, 1, 2) for eps in BUDGET_NOISE if s in BUDGET_SEEDS[eps]]
    long = [cell("paper", "tokens", eps, s, budget="long") for s in LONG_SEEDS for eps in LONG_NOISE]
    long_batch = [cell("paper", "tokens", 0.5, s, batch=LONG_BATCH, budget="long") for s in LONG_SEEDS]
    grid = [*first, *notebooks, *seeds, *noisy[:2], *expansion, *noisy[2:], cell(*CHOSEN, batch=1024), *longer, *long,
            *long_batch]  # fmt: skip
    return list(dict.fromkeys(grid))


def at_equal_sequences(recipe: TrainConfig, batch: int) -> TrainConfig:
    """`recipe` at batch `batch`: its steps, warmup and checkpoint spacing scaled so every sequence count it trains,
    warms up over and checkpoints at stays the same."""
    scale = lambda n: n * recipe.batch_size // batch  # noqa: E731
    return replace(recipe, batch_size=batch, steps=scale(recipe.steps), warmup_steps=scale(recipe.warmup_steps),
                   checkpoint_every=scale(recipe.checkpoint_every), log_every=scale(recipe.log_every))  # fmt: skip


def run_config(name: str) -> RunConfig:
    init, target, eps, batch, seed, *rest = name.split("-")
    eps, batch, seed = float(eps[3:]), int(batch[1:]), int(seed[1:])
    if rest == ["long"]:  # the very run `python -m factored.train --profile long` trains, or it at equal sequences
        long = parameters.run_config({"profile": "long", "noise": eps, "seed": seed})
        return long if batch == 256 else replace(long, train=at_equal_sequences(long.train, batch))
    process = [p for p in rest if not p.startswith("x")]
    budget = int(next((p[1:] for p in rest if p.startswith("x")), 1))
    steps = RECIPE["steps"] * 256 // batch * budget  # equal sequences
    warmup = RECIPE["warmup_steps"] * 256 // batch
    data = DataConfig(noise=eps, structure="chain" if process == ["chain"] else "independent")
    model = ModelConfig(arch="lstm", d_model=32, n_layers=2) if process == ["lstm"] else ModelConfig(**INITS[init])
    recipe = RECIPE | dict(batch_size=batch, steps=steps, warmup_steps=warmup, seed=seed, target=target)
    recipe |= RECURRENT.get(model.arch, {})
    return RunConfig(condition_name(data, model), data, model, TrainConfig(**recipe))


def score(run: runs.Run, fidelity: float) -> dict:
    """The study's measurements of one run (plain numbers and lists; see the module docstring)."""
    acfg = probing.AnalysisConfig()
    trajectory = probing.analyze_run(run, acfg, progress=False)
    final = run.steps[-1]
    vary, random = probing.vary_one_at(run, [final], acfg), probing.random_init_overlaps(run, acfg)
    names = run.process.kinds
    steps = sorted(trajectory)
    data = probing.probe_data(run.process, TC_SEQUENCES, run.config.data.seq_len, acfg.seed)
    predicted_tc = probing.prediction_total_correlation(run.load_model(final), run.process, data.tokens)
    metrics = run.metrics()
    return {
        "config": run.config.to_dict(),
        "gap_steps": [m["step"] for m in metrics],
        "gap": [m["gap"] for m in metrics],
        "steps": steps,
        "dims95": [trajectory[s].dims95 for s in steps],
        "dims99": [trajectory[s].dims(0.99) for s in steps],
        "r2": [trajectory[s].r2 for s in steps],
        "rmse": [trajectory[s].rmse for s in steps],
        "kinds": list(names),
        "overlap": np.asarray(vary[final]["mean_overlap"][:2]).tolist(),
        "random_overlap": np.percentile(random[:, :2], [5, 50, 95], axis=0).tolist(),
        **probing.joint_belief_gain(run, acfg),
        "predicted_tc": float(predicted_tc.mean()),
        "fidelity_cost": fidelity,
    }


def fidelity_cost(data: DataConfig) -> float:
    """The true law's fidelity cost of factoring for the run's process, mean over the 8 positions (exactly 0 for
    independent noiseless factors)."""
    per_position, _ = theory.fidelity_cost(products.process_of(data), data.seq_len, n_samples=FIDELITY_SAMPLES)
    return float(np.mean(per_position))


def record(name: str, result: dict) -> None:
    with FileLock(str(RESULTS) + ".lock"):
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[name] = result
        runs.atomic_write_text(RESULTS, json.dumps(results, indent=1, sort_keys=True))


def train_cell(name: str) -> None:
    """Train (or load, or resume) one cell's run single-threaded, score it and record the result."""
    torch.set_num_threads(1)
    cfg = run_config(name)
    start = time.perf_counter()
    run = train.get_or_train(cfg, progress=False)
    seconds = time.perf_counter() - start
    result = score(run, fidelity_cost(cfg.data))
    record(name, {**result, "train_seconds": seconds, "run": run.dir.name})
    print(f"{name}: {run.dir.name} trained in {seconds / 60:.1f} min, final gap {result['gap'][-1]:+.5f}, "
          f"dims@95 {result['dims95'][-1]}", flush=True)  # fmt: skip


def train_lane(lane: int, n_lanes: int) -> None:
    done = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in [n for n in cells() if n not in done][lane::n_lanes]:  # lanes started together share what is left
        train_cell(name)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "report"
    if command == "train":
        train_lane(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    elif command == "report":
        from target_study_report import report

        report(json.loads(RESULTS.read_text()))
    else:
        raise SystemExit(__doc__)
