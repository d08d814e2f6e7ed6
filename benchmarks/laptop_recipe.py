"""Time-to-result study that chose the `laptop` profile: which init, lr, schedule and batch reach the targets first.

    python benchmarks/laptop_recipe.py throughput          # quiet-machine steps/s per batch size (2 threads)
    python benchmarks/laptop_recipe.py levers              # threads, torch.compile, data generation overlapped
    python benchmarks/laptop_recipe.py screen [NAME ...]   # the candidates at one token budget, one change each
    python benchmarks/laptop_recipe.py combine [NAME ...]  # combinations around the best screened change
    python benchmarks/laptop_recipe.py seeds [SEED ...]    # the chosen laptop profile, seeds 0, 1, 2, full budget
    python benchmarks/laptop_recipe.py optimizer [NAME[@SEED] ...]  # Muon against AdamW, one change at a time
    python benchmarks/laptop_recipe.py arch [NAME ...]     # each recurrent net: optimizer x lr, then the budget
    python benchmarks/laptop_recipe.py harder [NAME ...]   # eps 0.2, 0.5 and six factors on the chosen recipe
    python benchmarks/laptop_recipe.py long [NAME ...]     # long budgets for both optimizers, batch at equal tokens
    python benchmarks/laptop_recipe.py report              # benchmarks/recipe.md + recipe_<study>.png from what exists

Every candidate is the laptop model with one thing changed from the base (torch init, lr 1e-3, plateau schedule,
batch 512), trained on the same number of sequences with the same seed, and scored the same way: the held-out
gap to the optimal predictor on the same sequences (every 50 steps, from the run's metrics) and the held-out R^2
of each factor's belief regression on 4,000 probe sequences (`probing.trajectory_point`, every 250 steps at
batch 512). Wall minutes are steps divided by the quiet-machine training rate of that batch size (measured by
`throughput`), so a busy machine during the study does not distort them. Runs live in outputs/runs/ like any
other run (names `recipe_<candidate>`), so the study resumes where it stopped.

The screen changes one thing at a time; its best change (`init=gpt2, embed_std=1`: the authors'-style small
weights with torch's unit-scale embedding) is then the base of `combine`, which crosses it with lr, warmup,
schedule, batch and Adam's beta2 at the budget the profile may spend: 1.28M sequences (5,000 steps at batch 256,
2,500 at 512, about 8 quiet minutes). Decaying schedules (cosine) are budget-specific, so each runs its whole
budget; the table reports when the targets are first met within it. The later studies (`STUDIES`) start from the
chosen recipe the same way: one change at a time, seed 0, the same scoring (every 500 steps at batch 256).
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from bench_training import cpu_name, training_step_rate
from filelock import FileLock

from factored import config, probing, runs, train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "recipe.json"
GAP_TARGET, R2_TARGET = 0.015, 0.9  # the laptop profile's targets
SCREEN_SEQUENCES = 1500 * 512  # the screening budget: 1,500 steps at batch 512
SCORE_EVERY_SEQUENCES = 250 * 512

BASE = dict(init="torch", lr=1e-3, schedule="plateau", batch_size=512)
CANDIDATES: dict[str, dict] = {
    "base": {},
    "gpt2_embed1": dict(init="gpt2", embed_std=1.0),  # the authors'-style small weights, torch's big embedding
    "torch_embed0.02": dict(embed_std=0.02),  # torch's weights, a small embedding
    "lr2e-3": dict(lr=2e-3),
    "cosine": dict(schedule="cosine", warmup_steps=75),
    "batch1024": dict(batch_size=1024),
    "batch256": dict(batch_size=256),
    "lr3e-3": dict(lr=3e-3),
    "tl": dict(init="tl"),
    "gpt2": dict(init="gpt2"),
}

STUDY_SEQUENCES = 5000 * 256  # the combinations' budget: 1.28M sequences, about 8 quiet minutes at batch 256
SMALL_WEIGHTS = dict(init="gpt2", embed_std=1.0)
COMBINATIONS: dict[str, dict] = {  # every one: SMALL_WEIGHTS on top of BASE, then these (warmup in steps)
    "g_plateau_lr1e-3_b256": dict(batch_size=256),
    "g_cosine_lr3e-3_b256": dict(batch_size=256, lr=3e-3, schedule="cosine", warmup_steps=100),
    "g_cosine_lr2e-3_b256": dict(batch_size=256, lr=2e-3, schedule="cosine", warmup_steps=100),
    "g_cosine_lr3e-3_b256_beta95": dict(batch_size=256, lr=3e-3, schedule="cosine", warmup_steps=100, adam_beta2=0.95),
    "g_cosine_lr2e-3_b256_beta95": dict(batch_size=256, lr=2e-3, schedule="cosine", warmup_steps=100, adam_beta2=0.95),
    "g_constant_lr2e-3_b256": dict(batch_size=256, lr=2e-3, schedule="constant", warmup_steps=100),
    "g_plateau_lr2e-3_b256": dict(batch_size=256, lr=2e-3),
    "g_cosine_lr3e-3_b512": dict(batch_size=512, lr=3e-3, schedule="cosine", warmup_steps=50),
    "g_cosine_lr1e-3_b256": dict(batch_size=256, lr=1e-3, schedule="cosine", warmup_steps=100),
}


# The optimizer study: the AdamW laptop recipe (above) at a budget of OPT_STEPS steps is the base; `muon` moves
# the hidden matrices to Muon (optim.py). Every candidate changes one thing from the Muon centre (muon_lr 4e-3,
# AdamW lr 2e-3 for the rest, momentum 0.95, batch 256, OPT_STEPS): Muon's lr, the AdamW lr, momentum, the batch
# at the same number of sequences (warmup kept at the same number of sequences), the budget in steps.
OPT_STEPS = 3600  # 0.92M sequences: under 5 quiet minutes on 2 cores at batch 256
OPT_BASE = dict(
    init="gpt2", embed_std=1.0, schedule="cosine", lr=2e-3, batch_size=256, warmup_steps=100, optimizer="adamw"
)  # pinned: the laptop profile these start from has since moved to Muon
MUON = dict(optimizer="muon", muon_lr=4e-3)
RECIPE = dict(optimizer="muon", lr=4e-3)  # the chosen one: Muon and AdamW both at 4e-3 (the laptop profile)
OPTIMIZER_STUDY: dict[str, dict] = {
    "o_adamw": {},
    "o_muon_lr2e-3": MUON | dict(muon_lr=2e-3),
    "o_muon_lr4e-3": MUON,
    "o_muon_lr8e-3": MUON | dict(muon_lr=8e-3),
    "o_muon_adam1e-3": MUON | dict(lr=1e-3),
    "o_muon_adam4e-3": MUON | dict(lr=4e-3),
    "o_muon_mom0.9": MUON | dict(muon_momentum=0.9),
    "o_muon_mom0.98": MUON | dict(muon_momentum=0.98),
    "o_muon_b128": MUON | dict(batch_size=128),
    "o_muon_b512": MUON | dict(batch_size=512),
    "o_muon_2400": MUON | dict(steps=2400),
    "o_muon_4800": MUON | dict(steps=4800),
}

# Recipes per architecture: each recurrent net of the paper with AdamW and with Muon (muon_lr = lr: one lr for
# both parts) at three learning rates, on the laptop budget and schedule (the transformer-only init is not theirs).
RECURRENT_NETS = {"rnn32": ("rnn", 32), "rnn64": ("rnn", 64), "rnn256": ("rnn", 256), "lstm32": ("lstm", 32),
                  "gru32": ("gru", 32)}  # fmt: skip
ARCH_LRS = (3e-3, 1e-2, 3e-2)
ARCH_STUDY: dict[str, dict] = {
    f"a_{net}_{opt}_lr{lr:g}": dict(arch=arch, d_model=width, n_layers=2, lr=lr)
    | (dict(optimizer="muon", muon_lr=lr) if opt == "muon" else {})
    for net, (arch, width) in RECURRENT_NETS.items()
    for opt in ("adamw", "muon")
    for lr in ARCH_LRS
}
# A recurrent step costs a third to a half of a transformer step here (12-20 against 4.8 steps/s, two studies at
# once): twice the budget on Muon at lr 1e-2 stays within the transformer's wall time.
ARCH_STUDY |= {
    f"a_{net}_muon_lr0.01_7200": dict(arch=arch, d_model=width, n_layers=2, lr=1e-2, optimizer="muon", steps=7200)
    for net, (arch, width) in RECURRENT_NETS.items()
}
# The noisy processes and the largest number of factors, on the chosen recipe at one and two budgets.
HARDER_STUDY: dict[str, dict] = {
    f"h_{what}_{steps}": RECIPE | changes | dict(steps=steps)
    for what, changes in (("eps0.2", dict(noise=0.2)), ("eps0.5", dict(noise=0.5)), ("mess3x6", dict(n_mess3=6)))
    for steps in (OPT_STEPS, 2 * OPT_STEPS)
}
# Noise dilutes the learning signal: a fraction 1 - eps of the tokens carries it, so the gradient's signal-to-noise
# ratio per step falls as (1 - eps)^2 and the steps to learn grow as 1 / (1 - eps)^2 (tested here at 0.2 and 0.5)
HARDER_STUDY |= {
    f"h_eps{eps:g}_{steps}": RECIPE | dict(noise=eps, steps=steps) for eps, steps in ((0.2, 5600), (0.5, 14400))
}
# ... which falls short at eps 0.2 (Bloch R^2 0.87-0.89 at 1.6x and 2x): three times the steps, and the batch doubled
HARDER_STUDY |= {"h_eps0.2_10800": RECIPE | dict(noise=0.2, steps=10_800),
                 "h_eps0.2_b512_3600": RECIPE | dict(noise=0.2, steps=7200, batch_size=512)}  # fmt: skip
# Long budgets for both optimizers (cosine to 0 at each budget) and the batch at equal training sequences.
LONG_STUDY: dict[str, dict] = {
    "l_adamw_10000": dict(steps=10_000),
    "l_adamw_20000": dict(steps=20_000),
    "l_muon_10000": RECIPE | dict(steps=10_000),
    "l_muon_20000": RECIPE | dict(steps=20_000),
    "l_muon_b1024_5000": RECIPE | dict(steps=20_000, batch_size=1024),  # 20,000 x 256 sequences in 5,000 steps
}
STUDIES = {"optimizer": OPTIMIZER_STUDY, "arch": ARCH_STUDY, "harder": HARDER_STUDY, "long": LONG_STUDY}

PROFILE_ROWS = {  # rows that are whole profiles rather than candidates, by name without the seed
    "laptop_seed": "the laptop profile (init=gpt2, embed_std=1, Muon + AdamW at lr 4e-3, cosine, batch 256, 3,600 "
    "steps)",
    "adamw_laptop_seed": "the earlier laptop profile (init=gpt2, embed_std=1, AdamW cosine lr 2e-3, batch 256, "
    "4,800 steps)",
    "torch_plateau_seed": "the earlier laptop profile (torch init, plateau lr 1e-3, batch 512, 5,000 steps)",
}


def candidate_changes(name: str) -> dict:
    """What a screened or combined candidate changes from BASE (an optimizer candidate: from OPT_BASE)."""
    for study in STUDIES.values():
        if name in study:
            return study[name]
    return CANDIDATES[name] if name in CANDIDATES else SMALL_WEIGHTS | COMBINATIONS[name]


def study_config(name: str, seed: int = 0) -> config.RunConfig:
    """A candidate of one of STUDIES: OPT_BASE with its changes; the batch changes the steps and warmup, not the
    number of sequences (steps are given at batch 256); a recurrent net drops the transformer's init."""
    over = OPT_BASE | dict(steps=OPT_STEPS) | candidate_changes(name)
    if over.get("arch", "transformer") != "transformer":
        del over["init"]
    scale = 256 / over["batch_size"]
    over["steps"], over["warmup_steps"] = round(over["steps"] * scale), round(over["warmup_steps"] * scale)
    suffix = f"_seed{seed}" if seed else ""
    return config.make_config(
        "laptop", name=f"recipe_{name.replace('.', '')}{suffix}", seed=seed,
        checkpoint_every=SCORE_EVERY_SEQUENCES // over["batch_size"], **over,
    )  # fmt: skip


def candidate_config(name: str, sequences: int) -> config.RunConfig:
    over = BASE | candidate_changes(name)
    batch = over["batch_size"]
    steps = sequences // batch
    if over.get("schedule") == "cosine" and name in CANDIDATES:  # the screen's warmup is given at batch 512
        over["warmup_steps"] = round(over.get("warmup_steps", 0) * 512 / batch)
    return config.make_config(
        "laptop", name=f"recipe_{name.replace('.', '')}", steps=steps,
        checkpoint_every=SCORE_EVERY_SEQUENCES // batch, **over,
    )  # fmt: skip


def scored_steps(run: runs.Run) -> list[int]:
    """The checkpoints a run is scored at: every SCORE_EVERY_SEQUENCES training sequences, and the last."""
    every = SCORE_EVERY_SEQUENCES // run.config.train.batch_size
    return [s for s in run.steps if (s % every == 0 and s > 0) or s == run.config.train.steps]


def score(run: runs.Run) -> dict:
    """Curves of one run: gap every 50 steps, R^2 per factor and dims@95 at the scored checkpoints."""
    steps = scored_steps(run)
    trajectory = probing.analyze_run(run, probing.AnalysisConfig(), steps=steps, progress=False)
    metrics = [m for m in run.metrics() if m["step"] > 0]
    final = run.steps[-1]
    vary, random = (
        probing.vary_one_at(run, [final], probing.AnalysisConfig()),
        probing.random_init_overlaps(run, probing.AnalysisConfig()),
    )
    return {
        "overlap_k12": vary[final]["mean_overlap"][:2].tolist(),
        "random_overlap_k12": np.median(random, axis=0)[:2].tolist(),
        "config": run.config.to_dict(),
        "batch_size": run.config.train.batch_size,
        "gap": [[m["step"], m["gap"]] for m in metrics],
        "r2": [[s, trajectory[s].r2] for s in steps],
        "dims95": [[s, trajectory[s].dims95] for s in steps],
    }


def canonical_process(r: dict) -> bool:
    """A transformer on the paper's five noiseless factors (where Bloch R^2 against the gap is compared)."""
    data, model = r["config"]["data"], r["config"]["model"]
    return (
        data.get("noise", 0) == 0  # records keep only the fields that differ from the defaults
        and data.get("n_mess3", 0) == 0
        and data.get("structure", "independent") == "independent"
        and model.get("arch", "transformer") == "transformer"
    )


def bloch_against_gap(r: dict) -> list[tuple[float, float]]:
    """(held-out gap, worst Bloch R^2) at every scored step of one run of the canonical process (none for another
    process): whether recipes differ in how Bloch is learned, or only in how fast the loss falls (then every run
    lies on one curve)."""
    if not canonical_process(r):
        return []
    gap = dict((step, g) for step, g in r["gap"])
    return [(gap[step], min(v[3:])) for step, v in r["r2"] if step in gap]


def bloch_gap_fit(results: dict, below: float = 0.04, optimizer: str | None = None) -> dict:
    """Worst Bloch R^2 = a + b ln(gap), fitted over every scored step of every run (of `optimizer`, or all) with a
    gap below `below` (the late, near-linear part of the curve), and the gap at which the fit reaches R2_TARGET."""
    chosen = [
        r for r in results["runs"].values() if optimizer in (None, r["config"]["train"].get("optimizer", "adamw"))
    ]
    pts = np.array([p for r in chosen for p in bloch_against_gap(r) if p[0] < below])
    X = np.column_stack([np.ones(len(pts)), np.log(pts[:, 0])])
    (a, b), *_ = np.linalg.lstsq(X, pts[:, 1], rcond=None)
    fitted = X @ np.array([a, b])
    r2 = 1 - ((pts[:, 1] - fitted) ** 2).sum() / ((pts[:, 1] - pts[:, 1].mean()) ** 2).sum()
    return {"a": a, "b": b, "fit_r2": r2, "points": len(pts), "gap_at_target": float(np.exp((R2_TARGET - a) / b))}


def first_step(pairs: list, ok) -> int | None:
    return next((step for step, value in pairs if ok(value)), None)


def measure_throughput(batches=(256, 512, 1024)) -> dict:
    """Training steps/s of the laptop model per batch size, data generation included, 2 threads (the best of
    three medians: the quiet-machine rate)."""
    torch.set_num_threads(2)
    out = {}
    for batch in batches:
        seconds = min(
            training_step_rate(torch.device("cpu"), batch, nullcontext, False, True, 30, lambda: None)[0]
            for _ in range(3)
        )
        out[str(batch)] = 1.0 / seconds
        print(f"batch {batch}: {out[str(batch)]:.2f} steps/s")
    return out


def measure_levers(batch: int = 256, repeats: int = 30) -> dict:
    """Quiet-machine steps/s of the laptop model at `batch` under each throughput lever: 1 or 2 torch threads,
    torch.compile on the CPU, and the next batch generated in a background thread while the step runs (the
    sampler's share of a step is what overlapping can save at most)."""
    import queue
    import threading

    from bench_training import timed

    from factored import products, sampling

    cpu, noop = torch.device("cpu"), lambda: None
    out = {}

    def rate(threads: int, compile_: bool = False, with_data: bool = True) -> float:
        torch.set_num_threads(threads)
        best = min(training_step_rate(cpu, batch, nullcontext, compile_, with_data, repeats, noop)[0] for _ in range(3))
        return 1.0 / best

    out["eager, 1 thread"] = rate(1)
    out["eager, 2 threads"] = rate(2)
    out["eager, 2 threads, fixed batch (no data generation)"] = rate(2, with_data=False)
    process, gen = products.paper_process(), torch.Generator().manual_seed(0)
    out["data generation alone, 2 threads (batches/s)"] = 1.0 / timed(
        lambda: sampling.sample(process, batch, 8, generator=gen), repeats=repeats, best=True
    )
    try:
        out["torch.compile, 2 threads"] = rate(2, compile_=True)
    except Exception as e:  # a CPU compile needs a working C++ toolchain; report, don't fail the study
        out["torch.compile, 2 threads"] = f"failed: {type(e).__name__}"

    # overlapped: a producer thread keeps one batch ready (torch ops release the GIL); 1 thread each
    torch.set_num_threads(1)
    ready: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        g = torch.Generator().manual_seed(1)
        while not stop.is_set():
            ready.put(sampling.sample(process, batch, 8, generator=g)[0])

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    from factored.models import build_model, inputs_and_targets

    torch.manual_seed(0)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)

    def step() -> None:
        inputs, targets = inputs_and_targets(process, ready.get(), True)
        loss = torch.nn.functional.cross_entropy(model(inputs)[0].flatten(0, 1), targets.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out["data in a background thread, 1 torch thread"] = 1.0 / timed(step, repeats=repeats, best=True)
    stop.set()
    ready.get_nowait() if not ready.empty() else None
    torch.set_num_threads(2)
    for name, value in out.items():
        print(f"{name}: {value if isinstance(value, str) else f'{value:.2f}'}")
    return out


def load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}


def save(results: dict) -> None:
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def record(name: str, scored: dict, machine: str) -> dict:
    """Add one run's curves to recipe.json under a file lock: several study processes may finish at once."""
    with FileLock(str(RESULTS) + ".lock"):
        results = load() | {"machine": machine}
        results["runs"][name] = scored
        save(results)
    return results


# The results page's sections: (title, what the runs changed, which runs) in study order.
SECTIONS = (
    ("The first study: init, lr, schedule and batch, with AdamW", "from the first base (torch init, plateau lr "
     "1e-3, batch 512)", lambda n: n in CANDIDATES or n in COMBINATIONS or n.startswith(("torch_plateau",
                                                                                          "adamw_laptop")), "first"),
    ("The optimizer study", "from OPT_BASE (the AdamW recipe at 3,600 steps); Muon candidates change one thing from "
     "muon_lr 4e-3, lr 2e-3, momentum 0.95, batch 256", lambda n: n.startswith(("o_", "laptop_seed")), "optimizer"),
    ("Recipes per architecture", "the recurrent nets on the laptop budget and schedule", lambda n: n.startswith("a_"),
     "arch"),
    ("Noise and six factors on the chosen recipe", "the laptop recipe (Muon and AdamW at 4e-3) on harder processes",
     lambda n: n.startswith("h_"), "harder"),
    ("Long budgets and the batch", "the laptop recipe and the AdamW one over longer cosine budgets",
     lambda n: n.startswith("l_"), "long"),
)  # fmt: skip


def row(name: str, r: dict, rate: float | None) -> str:
    """One run's line: what it changed, its final numbers, and when it first met the targets."""
    gap_step = first_step(r["gap"], lambda g: g <= GAP_TARGET)
    r2_step = first_step(r["r2"], lambda v: min(v) >= R2_TARGET)
    last = r["r2"][-1][1]
    mess3, bloch = (last[:3], last[3:]) if len(last) == 5 else (last, [])  # the paper's process: 3 Mess3, 2 Bloch
    span = lambda v: f"{min(v):.2f}-{max(v):.2f}" if v else "-"  # noqa: E731
    minutes = lambda step: "-" if step is None or not rate else f"{step / rate / 60:.1f}"  # noqa: E731
    known = any(name in study for study in STUDIES.values()) or name in CANDIDATES or name in COMBINATIONS
    changed = ", ".join(f"{k}={v}" for k, v in (candidate_changes(name) if known else {}).items()) or (
        "(none: the base)" if name in ("base", "o_adamw") else PROFILE_ROWS[name.rstrip("0123456789")]
    )
    overlap = r.get("overlap_k12")
    shown = "-" if not overlap else (
        f"{overlap[0]:.1e}, {overlap[1]:.1e} ({r['random_overlap_k12'][0] / overlap[0]:.0f}x, "
        f"{r['random_overlap_k12'][1] / overlap[1]:.0f}x)"
    )  # fmt: skip
    return (
        f"| {name} | {changed} | {r['batch_size']} | {r['gap'][-1][0]} | {r['gap'][-1][1]:.4f} | {span(mess3)} | "
        f"{span(bloch)} | {r['dims95'][-1][1]} | {shown} | {gap_step or '-'} ({minutes(gap_step)}) | "
        f"{r2_step or '-'} ({minutes(r2_step)}) |"
    )


def report(results: dict) -> str:
    """The results page: machine, rates, one table and one figure per study, then what limits the Bloch factors
    and the throughput levers."""
    rates = results.get("throughput", {})
    machine = results.get("machine", "")
    rate_text = ", ".join(f"batch {b}: {v:.2f} steps/s" for b, v in rates.items())
    lines = [
        "# Laptop recipe: time-to-result study",
        "",
        f"Machine: {machine}. Quiet-machine training rates (2 threads, data generation included): {rate_text}.",
        "Produced by `python benchmarks/laptop_recipe.py report` from `recipe.json`; the study and its method are",
        "described in that script's docstring. Columns: final gap and R^2 (Mess3 factors, Bloch factors; six Mess3",
        "factors in the first column) at the run's last step; the mean vary-one overlap of the factor subspaces at",
        "k = 1, 2 at the last step and how many times below the random-init band of the same init it lies; the",
        f"step (and quiet-machine minutes) at which the held-out gap first reached <= {GAP_TARGET} nats and at which",
        f"every factor's held-out R^2 first reached >= {R2_TARGET} ('-': not within the run).",
        "",
    ]
    for title, base, member, key in SECTIONS:
        names = [n for n in results["runs"] if member(n)]
        if not names:
            continue
        lines += [f"## {title}", "", f"Changes {base}.", ""]
        lines += [
            "| run | changed | batch | steps | final gap | Mess3 R^2 | Bloch R^2 | dims@95 | overlap k = 1, 2 "
            f"(x below random) | gap <= {GAP_TARGET} at step (min) | all R^2 >= {R2_TARGET} at step (min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [row(n, results["runs"][n], rates.get(str(results["runs"][n]["batch_size"]))) for n in names]
        lines += ["", f"![curves](recipe_{key}.png)", ""]
    return "\n".join([*lines, *bloch_section(results), *levers_section(results.get("levers"))])


def bloch_section(results: dict) -> list[str]:
    """What limits the Bloch factors' R^2: the last panel of the figure, in numbers."""
    fit = bloch_gap_fit(results)
    return [
        "## What limits the Bloch factors",
        "",
        f"Every run, whatever its recipe, lies on one curve of worst Bloch R^2 against the held-out gap at the same"
        f" step (last panel): over the {fit['points']} scored steps with a gap below 0.04, worst Bloch R^2 ="
        f" {fit['a']:.3f} {fit['b']:+.3f} ln(gap), which explains {fit['fit_r2']:.0%} of their variance. Recipes"
        " differ in how fast the loss falls, not in how the Bloch beliefs are learned for a given loss; at the"
        f" gap target of {GAP_TARGET} the curve gives Bloch R^2 of about"
        f" {fit['a'] + fit['b'] * np.log(GAP_TARGET):.2f}, and it reaches {R2_TARGET} only at a gap of about"
        f" {fit['gap_at_target']:.3f} nats.",
        "",
    ]


def levers_section(levers: dict | None) -> list[str]:
    """The throughput levers (`measure_levers`) as a table, or nothing if they were not measured."""
    if not levers:
        return []
    rows = [f"| {k} | {v if isinstance(v, str) else f'{v:.2f}'} |" for k, v in levers.items() if k != "batch"]
    return [
        f"## Throughput levers (batch {levers['batch']}, quiet machine, steps/s unless stated)",
        "",
        "| lever | steps/s |",
        "|---|---|",
        *rows,
        "",
    ]


def figures(results: dict) -> None:
    """One figure per study (`SECTIONS`): recipe_<key>.png."""
    for _, _, member, key in SECTIONS:
        chosen = {n: r for n, r in results["runs"].items() if member(n)}
        if chosen:
            figure({**results, "runs": chosen}, HERE / f"recipe_{key}.png")


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_gap, ax_m, ax_b, ax_gb) = plt.subplots(1, 4, figsize=(20, 4.2))
    for name, r in results["runs"].items():
        seqs = lambda pairs, b=r["batch_size"]: [s * b / 1e6 for s, _ in pairs]  # noqa: E731
        (line,) = ax_gap.plot(seqs(r["gap"]), [g for _, g in r["gap"]], label=name, lw=1)
        ax_m.plot(seqs(r["r2"]), [min(v[:3]) for _, v in r["r2"]], color=line.get_color(), marker=".", lw=1)
        ax_b.plot(seqs(r["r2"]), [min(v[3:]) for _, v in r["r2"]], color=line.get_color(), marker=".", lw=1)
        pairs = bloch_against_gap(r)
        ax_gb.plot([g for g, _ in pairs], [b for _, b in pairs], color=line.get_color(), marker=".", lw=1)
    ax_gap.axhline(GAP_TARGET, color="k", ls=":")
    ax_gap.set(yscale="log", xlabel="training sequences (millions)", ylabel="held-out gap to optimum (nats)")
    for ax, what in ((ax_m, "Mess3"), (ax_b, "Bloch")):
        ax.axhline(R2_TARGET, color="k", ls=":")
        ax.set(xlabel="training sequences (millions)", ylabel=f"worst {what} factor's held-out R^2", ylim=(0, 1))
    ax_gb.axhline(R2_TARGET, color="k", ls=":")
    ax_gb.axvline(GAP_TARGET, color="k", ls=":")
    ax_gb.set(xscale="log", xlabel="held-out gap at the scored step (nats)", ylabel="worst Bloch factor's R^2",
              ylim=(0, 1), title="Bloch R^2 against how far the loss has come")  # fmt: skip
    ax_gb.invert_xaxis()
    ax_gap.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("throughput", "levers", "screen", "combine", "seeds", *STUDIES, "report"))
    parser.add_argument(
        "names", nargs="*", help=f"screen: these candidates (default all: {list(CANDIDATES)}); seeds: these seeds"
    )
    args = parser.parse_args()
    results = load()
    results["machine"] = f"{cpu_name()}, torch {torch.__version__}"
    if args.what == "throughput":
        results["throughput"] = measure_throughput()
    elif args.what == "levers":
        results["levers"] = {"batch": 256, **measure_levers()}
    elif args.what == "screen":
        for name in args.names or list(CANDIDATES):
            run = train.get_or_train(candidate_config(name, SCREEN_SEQUENCES))
            results = record(name, score(run), results["machine"])
    elif args.what == "combine":
        for name in args.names or list(COMBINATIONS):
            run = train.get_or_train(candidate_config(name, STUDY_SEQUENCES))
            results = record(name, score(run), results["machine"])
    elif args.what in STUDIES:  # NAME or NAME@SEED
        for item in args.names or list(STUDIES[args.what]):
            name, _, seed = item.partition("@")
            run = train.get_or_train(study_config(name, int(seed or 0)))
            results = record(item if seed else name, score(run), results["machine"])
    elif args.what == "seeds":
        for seed in [int(n) for n in args.names] or [0, 1, 2]:
            run = train.get_or_train(config.make_config("laptop", seed=seed))
            results = record(f"laptop_seed{seed}", score(run), results["machine"])
    with FileLock(str(RESULTS) + ".lock"):  # merged with what other study processes recorded meanwhile
        results = load() | {k: v for k, v in results.items() if k != "runs"}
        save(results)
    (HERE / "recipe.md").write_text(report(results))
    figures(results)


if __name__ == "__main__":
    main()
