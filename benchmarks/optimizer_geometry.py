"""Does the optimizer change the geometry? AdamW against Muon at equal held-out gap, and what sets the final
dimension (the runs of the recipe study, benchmarks/laptop_recipe.py: `optimizer` and `long`).

    python benchmarks/optimizer_geometry.py      # benchmarks/geometry.md, geometry.png, geometry_projections.png

Every run is the laptop model, seed 0, the same data and held-out scoring; the optimizers differ, and each run's
cosine schedule ends at its own budget. Runs are compared where their held-out gaps are equal: at the end of
training (each AdamW budget beside the Muon budget whose final gap is nearest) and along training (dims@95
against the gap at every scored checkpoint). For each run: dims@95, the vary-one overlap at k = 1, 2 against
the random-init band of the same init, and what the final activations' variance holds (nested linear models of
`probing.variance_decomposition`: beliefs, position, tokens, within-factor products, then the joint belief).
"""

from __future__ import annotations

import json
from pathlib import Path

import laptop_recipe as study
import numpy as np
from bench_training import cpu_name

from factored import analysis, plots, probing, runs

HERE = Path(__file__).resolve().parent
ADAMW = ["o_adamw", "l_adamw_10000", "l_adamw_20000"]
MUON = ["o_muon_2400", "o_muon_lr2e-3", "o_muon_lr4e-3", "o_muon_adam4e-3", "o_muon_4800", "l_muon_10000",
        "l_muon_20000"]  # fmt: skip
BATCH = ["o_muon_b128", "o_muon_b512", "l_muon_b1024_5000"]  # Muon at other batch sizes
ACFG = probing.AnalysisConfig()


def finished(name: str) -> runs.Run | None:
    return runs.finished_run(study.study_config(name))


def measure(run: runs.Run) -> dict:
    """The geometry of one finished run (every analysis cached in its folder)."""
    trajectory = probing.analyze_run(run, ACFG, steps=study.scored_steps(run), progress=False)  # the study's, cached
    final = run.steps[-1]
    vary, random = probing.vary_one_at(run, [final], ACFG), probing.random_init_overlaps(run, ACFG)
    gaps = {m["step"]: m["gap"] for m in run.metrics()}
    settings = {"acfg": ACFG.hash(), "n_sequences": 2000}
    shares = runs.load_summary(run, "geometry_variance", settings)
    if shares is None:
        data = probing.probe_data(run.process, 2000, run.config.data.seq_len, ACFG.seed)
        model = run.load_model(final)
        probed = probing.probe(model, run.process, data, ACFG.site_for(model))
        shares = probing.variance_decomposition(probed, run.process, data.tokens, ACFG.seed)
        runs.save_summary(run, "geometry_variance", shares, settings)
    overlap, band = vary[final]["mean_overlap"], np.median(random, axis=0)
    return {
        "optimizer": run.config.train.optimizer,
        "steps": run.config.train.steps,
        "batch": run.config.train.batch_size,
        "gap": run.metrics()[-1]["gap"],
        "worst_r2": float(min(trajectory[final].r2)),
        "dims95": trajectory[final].dims95,
        "overlap_k12": overlap[:2].tolist(),
        "band_k12": band[:2].tolist(),
        "overlap_curve": overlap.tolist(),
        "band_curve": [np.percentile(random, q, axis=0).tolist() for q in (5, 50, 95)],
        "shares": [[r["features"], r["r2"]] for r in shares],
        "along": [[gaps[s], trajectory[s].dims95] for s in sorted(trajectory) if s in gaps and s > 0],
    }


def equal_gap_pairs(rows: dict[str, dict]) -> list[tuple[str, str]]:
    """Each AdamW run beside the Muon run (batch 256) whose final held-out gap is nearest in log terms."""
    muon = [n for n in MUON if n in rows]
    return [
        (a, min(muon, key=lambda m, a=a: abs(np.log(rows[m]["gap"] / rows[a]["gap"]))))
        for a in ADAMW
        if a in rows and muon
    ]


def report(rows: dict[str, dict], machine: str) -> str:
    share_names = [f for f, _ in next(iter(rows.values()))["shares"]]
    lines = [
        "# Does the optimizer change the geometry? AdamW against Muon",
        "",
        f"Machine: {machine}. Produced by `python benchmarks/optimizer_geometry.py` from the runs of the recipe",
        "study (seed 0, the laptop model and data; each run's cosine schedule ends at its own budget). Overlap:",
        "the mean vary-one overlap of the factor subspaces at k = 1, 2; band: the median over 5 randomly initialised",
        "networks of the same init. Shares: held-out share of the final activations' variance explained as feature",
        "sets are added (beliefs, then position, then tokens, ..., the last column what the joint belief adds).",
        "",
        "| run | optimizer | batch | steps | final gap | worst R^2 | dims@95 | overlap k=1, 2 | x below band | "
        "beliefs | + position, tokens | joint belief adds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        shares = dict(r["shares"])
        before_joint = r["shares"][-2][1]
        lines.append(
            f"| {name} | {r['optimizer']} | {r['batch']} | {r['steps']} | {r['gap']:.4f} | {r['worst_r2']:.3f} | "
            f"{r['dims95']} | {r['overlap_k12'][0]:.1e}, {r['overlap_k12'][1]:.1e} | "
            f"{r['band_k12'][0] / r['overlap_k12'][0]:.0f}, {r['band_k12'][1] / r['overlap_k12'][1]:.0f} | "
            f"{shares[share_names[0]]:.3f} | {before_joint:.3f} | {r['shares'][-1][1] - before_joint:+.4f} |"
        )
    lines += ["", "## At equal held-out gap (end of training)", ""]
    lines += [
        "| AdamW run | gap | dims@95 | overlap k=1 | Muon run | gap | dims@95 | overlap k=1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a, m in equal_gap_pairs(rows):
        ra, rm = rows[a], rows[m]
        lines.append(
            f"| {a} | {ra['gap']:.4f} | {ra['dims95']} | {ra['overlap_k12'][0]:.1e} | {m} | {rm['gap']:.4f} | "
            f"{rm['dims95']} | {rm['overlap_k12'][0]:.1e} |"
        )
    lines += ["", "![geometry](geometry.png)", "", "![projections](geometry_projections.png)", ""]
    return "\n".join(lines)


def final_points(recipe: dict) -> dict[str, list[tuple[float, float, int, str]]]:
    """(final gap, final dims@95, batch, name) of every run of the recipe study on the canonical process with the
    laptop init (small weights, unit-scale embeddings), by optimizer: each budget's end point, whatever the run."""
    out: dict[str, list] = {"adamw": [], "muon": []}
    for name, r in recipe["runs"].items():
        c = r["config"]
        if not study.canonical_process(r) or c["model"]["init"] != "gpt2" or c["model"]["embed_std"] != 1.0:
            continue
        out[c["train"].get("optimizer", "adamw")].append((r["gap"][-1][1], r["dims95"][-1][1], r["batch_size"], name))
    return out


def figure(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_along, ax_final, ax_overlap) = plt.subplots(1, 3, figsize=(17, 4.5))
    colors = {"adamw": "tab:blue", "muon": "tab:red"}
    for r in rows.values():
        gaps, dims = np.array(r["along"]).T
        style = "--" if r["batch"] != 256 else "-"
        ax_along.plot(gaps, dims, style, color=colors[r["optimizer"]], alpha=0.5, lw=1)
    for optimizer, points in final_points(study.load()).items():
        for gap, dims, batch, name in points:
            ax_final.scatter(gap, dims, color=colors[optimizer], marker="o" if batch == 256 else "s")
            ax_final.annotate(name, (gap, dims), fontsize=6)
    for ax in (ax_along, ax_final):
        ax.set(xscale="log", xlabel="held-out gap to the optimal predictor (nats)", ylabel="dims@95")
        ax.invert_xaxis()
    ax_along.set_title("along training (blue AdamW, red Muon)", fontsize=9)
    ax_final.set_title("end of training, every run (squares: another batch)", fontsize=9)
    for a, m in equal_gap_pairs(rows)[-1:]:
        k = np.arange(1, len(rows[a]["overlap_curve"]) + 1)
        low, mid, high = rows[a]["band_curve"]
        ax_overlap.fill_between(k, low, high, color="0.85", label="random init (5-95%)")
        for name in (a, m):
            ax_overlap.plot(k, rows[name]["overlap_curve"], color=colors[rows[name]["optimizer"]], marker=".",
                            label=f"{name} (gap {rows[name]['gap']:.3f})")  # fmt: skip
        ax_overlap.set(yscale="log", xlabel="rank k", ylabel="mean vary-one overlap",
                       title="factor subspace overlap")  # fmt: skip
        ax_overlap.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def projections(rows: dict[str, dict], path: Path) -> None:
    """Each factor's final activations projected on its top-2 vary-one directions, for the last equal-gap pair."""
    import matplotlib

    matplotlib.use("Agg")
    pairs = equal_gap_pairs(rows)
    if not pairs:
        return
    figs = []
    for name in pairs[-1]:
        run = finished(name)
        final = run.steps[-1]
        vary = probing.vary_one_at(run, [final], ACFG)
        data = probing.probe_data(run.process, 1000, run.config.data.seq_len, ACFG.seed)
        model = run.load_model(final)
        probed = probing.probe(model, run.process, data, ACFG.site_for(model))
        shown = [analysis.project(probed.flat_acts, V, k=2) for V in vary[final]["directions"]]
        kinds = list(run.process.kinds)
        fig = plots.projection_grid(probed.flat_beliefs, shown, kinds, run.process.names)
        fig.suptitle(f"{name}: gap {rows[name]['gap']:.4f}", y=1.02)
        figs.append(fig)
    for i, fig in enumerate(figs):
        fig.savefig(path.with_name(f"{path.stem}_{i}.png") if i else path, dpi=70, bbox_inches="tight")


def main() -> None:
    rows = {}
    for name in ADAMW + MUON + BATCH:
        run = finished(name)
        if run is not None:
            rows[name] = measure(run)
            print(f"{name}: gap {rows[name]['gap']:.4f}, dims@95 {rows[name]['dims95']}")
    machine = f"{cpu_name()}, torch {__import__('torch').__version__}"
    (HERE / "geometry.json").write_text(json.dumps(rows, indent=1) + "\n")
    (HERE / "geometry.md").write_text(report(rows, machine))
    figure(rows, HERE / "geometry.png")
    projections(rows, HERE / "geometry_projections.png")


if __name__ == "__main__":
    main()
