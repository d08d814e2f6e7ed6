"""benchmarks/target_study.md and its figures from target_study.json (`python benchmarks/target_study.py report`)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from bench_training import cpu_name

from factored import paper, seeds, verdicts

HERE = Path(__file__).resolve().parent
FACTORED_DIMS = 10  # the five-factor process: 3 x 2 (Mess3) + 2 x 2 (Bloch)


def learned_at(r: dict) -> int | None:
    """The first checkpoint at which the network has learned its beliefs by the library's rule (every factor's
    held-out R^2 >= 0.9 and gap <= 0.02), or None."""
    gap = dict(zip(r["gap_steps"], r["gap"], strict=True))
    for step, r2 in zip(r["steps"], r["r2"], strict=True):
        if step > 0 and step in gap and verdicts.learning(r2, gap[step]).learned:
            return step
    return None


def first_gap_below(r: dict, level: float) -> int | None:
    return next((s for s, g in zip(r["gap_steps"], r["gap"], strict=True) if s > 0 and g <= level), None)


def by_kind(values: list[float], kinds: list[str], kind: str) -> str:
    picked = [v for v, k in zip(values, kinds, strict=True) if k == kind]
    return f"{min(picked):.2f}-{max(picked):.2f}" if len(picked) > 1 else f"{picked[0]:.3f}"


def collapse(r: dict) -> tuple[int, int]:
    """(smallest dims@95 after step 0, its step), as `probing.stages` finds the collapse."""
    i = min(range(1, len(r["steps"])), key=lambda i: (r["dims95"][i], r["steps"][i]))
    return r["dims95"][i], r["steps"][i]


def describe(name: str) -> str:
    init, target, eps, batch, seed, *rest = name.split("-")
    process = [p for p in rest if not p.startswith("x") and p != "long"] or ["transformer"]
    long = "long (20,000 x 256 sequences)"
    budget = [f"{p[1:]}x steps" if p.startswith("x") else long for p in rest if p not in process]
    return " ".join([*process, f"init {init}", target, eps, batch, seed, *budget])


def grid_row(name: str, r: dict) -> str:
    kinds = r["kinds"]
    low, at = collapse(r)
    overlap = r["overlap"]
    median = r["random_overlap"][1]
    below = ", ".join(f"{m / o:.0f}x" for o, m in zip(overlap, median, strict=False) if o > 0)
    learned = verdicts.learning(r["r2"][-1], r["gap"][-1])
    cells = [
        describe(name),
        f"{r['gap'][-1]:+.5f}",
        str(first_gap_below(r, 0.01) or "-"),
        by_kind(r["r2"][-1], kinds, "simplex") if "simplex" in kinds else "-",
        by_kind(r["r2"][-1], kinds, "bloch") if "bloch" in kinds else "-",
        by_kind(r["rmse"][-1], kinds, "simplex") if "simplex" in kinds else "-",
        by_kind(r["rmse"][-1], kinds, "bloch") if "bloch" in kinds else "-",
        "yes" if learned.learned else "no",
        str(learned_at(r) or "-"),
        f"{low} (step {at})",
        f"{r['dims95'][-1]} / {r['dims99'][-1]}",
        ", ".join(f"{o:.1e}" for o in overlap) + f" ({below} below)",
        f"{100 * r['beliefs_r2']:.0f}% / {100 * (r['before_joint_r2'] - r['beliefs_r2']):+.0f}% / "
        f"{100 * r['joint_gain']:+.1f}%",
        f"{r['predicted_tc']:.5f} / {r['fidelity_cost']:.5f}",
        f"{r['train_seconds'] / 60:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


GRID_COLUMNS = (
    "run", "final gap", "gap <= 0.01 at step", "R² Mess3", "R² Bloch", "RMSE Mess3", "RMSE Bloch", "learned",
    "learned at step", "collapse: min dims@95", "final dims@95 / @99", "overlap k = 1, 2 (x below random median)",
    "variance: beliefs / + position, tokens, within-factor / + joint", "predicted TC / true fidelity cost",
    "train min",
)  # fmt: skip
GRID_HEADER = "| " + " | ".join(GRID_COLUMNS) + " |\n|" + "---|" * len(GRID_COLUMNS)


def spread(values) -> str:
    """The mean over seeds, its 95% interval and the range; one seed: its value."""
    if len(values) == 1:
        return f"{values[0]:.3g}"
    mean, low, high = seeds.seed_interval(values)
    interval = f" [{low:.3g}, {high:.3g}]" if np.isfinite(low) else ""
    return f"{mean:.3g}{interval} (range {min(values):.3g} to {max(values):.3g})"


SEED_COLUMNS = (
    "eps", "steps", "seeds", "learned", "final gap (nats)", "gap below the fidelity cost", "final dims@95",
    "final dims@99", "collapse dims@95", "joint-belief gain (%)", "predicted TC (nats)",
    "share of the cost recovered (%)", "true fidelity cost (nats)", "paper dims@95",
)  # fmt: skip


def seeds_of(results: dict, chosen: str, eps: float, budget: int | str = 1, batch: int = 256) -> list[dict]:
    """Every seed's result of a cell ("init-target") at eps on the independent process, at `budget` x the recipe's
    steps ("long": the `long` profile's runs) and batch `batch`."""
    from target_study import budget_suffix

    pattern = re.escape(f"{chosen}-eps{eps:g}-b{batch}-s") + r"\d+" + re.escape(budget_suffix(budget))
    return [r for n, r in results.items() if re.fullmatch(pattern, n)]


def seed_table(groups: list[tuple[float, list[dict]]], target: bool = False) -> list[str]:
    """One row per (eps, runs over seeds): means with 95% intervals over seeds where there are several; `target`:
    a first column naming the runs' training target and worst factor R² (mean over seeds)."""
    columns = (("target", "worst R²") if target else ()) + SEED_COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for eps, runs in groups:
        if not runs:
            continue
        first = [runs[0]["config"]["train"]["target"], spread([min(r["r2"][-1]) for r in runs])] if target else []
        gaps, costs = [r["gap"][-1] for r in runs], [r["fidelity_cost"] for r in runs]
        learned = sum(verdicts.learning(r["r2"][-1], r["gap"][-1]).learned for r in runs)
        recovered = [r["predicted_tc"] / r["fidelity_cost"] for r in runs if r["fidelity_cost"] > 0]
        cells = [
            *first, f"{eps:g}", f"{runs[0]['steps'][-1]:,}", str(len(runs)), f"{learned} of {len(runs)}", spread(gaps),
            f"{sum(g < c for g, c in zip(gaps, costs, strict=True))} of {len(runs)}",
            spread([r["dims95"][-1] for r in runs]), spread([r["dims99"][-1] for r in runs]),
            spread([collapse(r)[0] for r in runs]), spread([100 * r["joint_gain"] for r in runs]),
            spread([r["predicted_tc"] for r in runs]), spread([100 * v for v in recovered]) if recovered else "-",
            f"{costs[0]:.5f}", str(paper.NOISE_FINAL_DIMS95[eps].value),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def at_gap(r: dict, level: float) -> str:
    """dims@95 and the worst R^2 at the first checkpoint whose held-out gap is <= level ('-': never)."""
    gap = dict(zip(r["gap_steps"], r["gap"], strict=True))
    for step, dims, r2 in zip(r["steps"], r["dims95"], r["r2"], strict=True):
        if step > 0 and gap.get(step, 1.0) <= level:
            return f"{dims}, {min(r2):.2f} (step {step})"
    return "-"


EQUAL_GAPS = (0.1, 0.05, 0.04, 0.02, 0.01, 0.002)  # from the plateau's end to the law runs' last gaps


def equal_gap_table(results: dict, names: list[str]) -> list[str]:
    lines = ["| run | " + " | ".join(f"gap <= {g:g}" for g in EQUAL_GAPS) + " |", "|" + "---|" * (len(EQUAL_GAPS) + 1)]
    lines += [f"| {describe(n)} | " + " | ".join(at_gap(results[n], g) for g in EQUAL_GAPS) + " |" for n in names]
    return lines


def curves(results: dict, names: list[str], path: Path, title: str) -> None:
    """Gap, worst factor R^2, dims@95 and dims@99 over training, one line per run; the x axis counts sequences in
    steps of 256, so runs at another batch sit where they have seen as many sequences."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for name in names:
        r = results[name]
        at = r["config"]["train"]["batch_size"] / 256
        steps, gap_steps = np.multiply(r["steps"][1:], at), np.multiply(r["gap_steps"][1:], at)
        style = dict(label=describe(name), ls="--" if "tokens" in name else "-", lw=1.2)
        axes[0].plot(gap_steps, np.maximum(r["gap"][1:], 1e-5), **style)
        axes[1].plot(steps, [min(v) for v in r["r2"][1:]], **style)
        axes[2].plot(steps, r["dims95"][1:], **style)
        axes[3].plot(steps, r["dims99"][1:], **style)
    axes[0].axhline(verdicts.LEARNED_GAP, color="grey", lw=0.8, ls=":")
    axes[1].axhline(verdicts.LEARNED_R2, color="grey", lw=0.8, ls=":")
    for ax in axes[2:]:
        ax.axhspan(FACTORED_DIMS - verdicts.FACTORED_TOL, FACTORED_DIMS + verdicts.FACTORED_TOL, color="grey",
                   alpha=0.15)  # fmt: skip
    labels = ["held-out gap (nats, log)", "worst factor's R²", "dims@95", "dims@99"]
    for ax, label in zip(axes, labels, strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("sequences trained / 256 (the step at batch 256)")
        ax.set_title(label)
    axes[0].set_yscale("log")
    axes[1].set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict) -> None:
    from target_study import (
        BUDGET,
        BUDGET_NOISE,
        CHOSEN,
        LONG_BATCH,
        LONG_NOISE,
        LONG_SEEDS,
        NOISE_LEVELS,
        RECIPE,
        cell,
        cells,
    )

    chosen = "-".join(CHOSEN)
    batches = [cell("paper", "tokens", 0.5, s, batch=b, budget="long") for s in LONG_SEEDS for b in (256, LONG_BATCH)]
    done = [n for n in cells() if n in results]
    lines = [
        "# The training target study",
        "",
        f"Machine: {cpu_name()}; every run single-threaded, two at a time, beside other work (the minutes are",
        "wall time on a busy machine; `make run`'s measured time in the README is the quiet one).",
        "Produced by `python benchmarks/target_study.py report` from `target_study.json`; the runs by",
        "`python benchmarks/target_study.py train 0` and `... train 1` (two lanes). Method: that script's docstring.",
        f"Recipe of every run: {RECIPE}.",
        "",
        "## Every run",
        "",
        GRID_HEADER,
        *[grid_row(n, results[n]) for n in done],
        "",
        "![target and init](target_study.png)",
        "",
        "## The geometry at equal gap",
        "",
        "dims@95, worst factor R² (and the step) at the first checkpoint where the held-out gap reached each level.",
        "",
        *equal_gap_table(results, [n for n in done if n.endswith("-s0") and "-eps0-" in n]),
        "",
        f"## The chosen cell ({chosen}) over seeds and noise",
        "",
        *seed_table([(eps, seeds_of(results, chosen, eps)) for eps in NOISE_LEVELS]),
        "",
        "![noise](target_study_noise.png)",
        "",
        f"## Below the fidelity cost: {BUDGET}x the steps at eps {' and '.join(map('{:g}'.format, BUDGET_NOISE))}",
        "",
        "The chosen cell trained for the recipe's steps and for four times as many (the same warmup, the cosine over",
        "the longer budget), over its seeds: does the dimension grow once the held-out gap is well below what",
        "factoring costs? Each cell: the mean over seeds, its 95% interval (Student t) and the range.",
        "",
        *seed_table([(e, seeds_of(results, chosen, e, b)) for e in BUDGET_NOISE for b in (1, BUDGET)]),
        "",
        "![budget](target_study_budget.png)",
        "",
        "## Sampled tokens over 20,000 steps (the `long` profile) beside the exact law",
        "",
        "The authors' init and target (sampled next tokens) trained 13x longer than the law recipe, at eps 0 and",
        "0.5 (`python -m factored.train --profile long --noise EPS --seed S` trains the same runs): does sampled-token",
        "training reach another geometry than the exact law, and does it learn every factor's belief on the way?",
        "",
        *seed_table(
            [
                (e, seeds_of(results, c, e, b))
                for e in LONG_NOISE
                for c, b in ((chosen, 1), (chosen, BUDGET), ("paper-tokens", "long"))
            ],
            target=True,
        ),
        "",
        "![long](target_study_long.png)",
        "",
        f"### {LONG_BATCH:,} sequences a step over the same sequences (eps 0.5)",
        "",
        f"The eps 0.5 token runs again at batch {LONG_BATCH:,} for a quarter of the steps, their warmup, checkpoints",
        "and evaluations at the same sequence counts, seed for seed. One change: each step's gradient averages 4x as",
        "many sequences, a quarter of the variance of its sampled-target noise (the exact law removes all of it). The",
        "grid's steps are each run's own (x 4 for a batch-1,024 run's sequences in steps of 256); the figure puts",
        "both on sequences (seed 0).",
        "",
        *seed_table([(0.5, seeds_of(results, "paper-tokens", 0.5, "long", b)) for b in (256, LONG_BATCH)], target=True),
        "",
        GRID_HEADER,
        *[grid_row(n, results[n]) for n in batches if n in results],
        "",
        "![batch](target_study_batch.png)",
    ]
    (HERE / "target_study.md").write_text("\n".join(lines) + "\n")
    first = [n for n in done if n.split("-")[2] in ("eps0", "eps0.5") and n.endswith("s0")]
    curves(results, first, HERE / "target_study.png", "target x init, eps 0 and 0.5 (seed 0)")
    noisy = [n for n in done if n.startswith(chosen) and n.count("-") == 4 and n.endswith("-b256-s0")]
    curves(results, noisy, HERE / "target_study_noise.png", f"{chosen}: eps 0 to 0.5 (seed 0)")
    longer = [
        n for eps in BUDGET_NOISE for n in (f"{chosen}-eps{eps:g}-b256-s0", f"{chosen}-eps{eps:g}-b256-s0-x{BUDGET}")
    ]
    curves(results, [n for n in longer if n in results], HERE / "target_study_budget.png",
           f"{chosen}: {BUDGET}x the steps at eps {', '.join(f'{e:g}' for e in BUDGET_NOISE)} (seed 0)")  # fmt: skip
    long = [n for n in done if n.endswith("-long") and "-b256-" in n]
    law = [n for n in (f"{chosen}-eps0-b256-s0", f"{chosen}-eps0.5-b256-s0-x{BUDGET}") if n in results]
    curves(results, law + long, HERE / "target_study_long.png",
           "sampled tokens over 20,000 steps (dashed, every seed) beside the exact law (seed 0)")  # fmt: skip
    curves(results, [n for n in batches[:2] if n in results], HERE / "target_study_batch.png",
           f"sampled tokens at eps 0.5 (seed 0): batch 256 and {LONG_BATCH:,} over the same sequences")  # fmt: skip
