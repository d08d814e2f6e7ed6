"""Analysis speed: one checkpoint on 100k activations (PCA + regression + vary-one), and a whole run.

    python benchmarks/bench_analysis.py                      # the canonical model at init, 100k activations
    python benchmarks/bench_analysis.py --run-all            # also every checkpoint of the laptop run (must exist)

Appends a Markdown section to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from factored import analysis, config, probing, runs

sys.path.insert(0, str(Path(__file__).parent))
from bench_training import cpu_name, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-all", action="store_true", help="time the trajectory analysis of the laptop run")
    args = parser.parse_args()
    cfg = config.make_config("laptop")
    blank = runs.Run(Path("."), cfg)
    process = blank.process
    torch.manual_seed(0)
    model = blank.new_model().eval()
    acfg = probing.AnalysisConfig(n_sequences=100_000 // (cfg.data.seq_len - 1) + 1)
    site = model.default_site

    t0 = time.perf_counter()
    data = probing.probe_data(process, acfg.n_sequences, cfg.data.seq_len, acfg.seed)
    t1 = time.perf_counter()
    acts = probing.activations(model, process, data.tokens, site)
    t2 = time.perf_counter()
    flat = acts.reshape(-1, acts.shape[-1])
    beliefs = [b.reshape(-1, b.shape[-1]) for b in probing.paired_beliefs(data.beliefs, cfg.data.seq_len)]
    analysis.pca_summary(flat)
    t3 = time.perf_counter()
    analysis.belief_regression(flat, beliefs)
    t4 = time.perf_counter()
    probing.vary_one(model, process, acfg, cfg.data.seq_len, site)
    t5 = time.perf_counter()

    lines = [
        f"\n## Analysis of one checkpoint: canonical transformer, {len(flat):,} activations x {flat.shape[1]}",
        f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, "
        f"numpy {np.__version__}, torch {torch.__version__}; {time.strftime('%Y-%m-%d')}",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| sample {acfg.n_sequences:,} sequences with beliefs | {t1 - t0:.2f} |",
        f"| activations (forward, no_grad) | {t2 - t1:.2f} |",
        f"| PCA (dims@80/90/95/99) | {t3 - t2:.2f} |",
        f"| belief regression (rcond sweep, held-out) | {t4 - t3:.2f} |",
        f"| vary-one: 5 factors x {acfg.vary_settings} x {acfg.vary_sequences} sequences, overlaps | {t5 - t4:.2f} |",
        f"| **total** | **{t5 - t0:.2f}** |",
    ]
    if args.run_all:
        run = runs.open_run(cfg)
        if not run.finished:
            raise SystemExit(f"--run-all needs the finished laptop run in {run.dir} (make run)")
        fresh = replace(probing.AnalysisConfig(), seed=int(time.time()))  # a new cache key: nothing cached
        t0 = time.perf_counter()
        probing.analyze_run(run, fresh, progress=False)
        seconds = time.perf_counter() - t0
        for p in (run.dir / "analysis").glob(f"*-{fresh.hash()}.json"):
            p.unlink()
        lines.append(
            f"| trajectory analysis of all {len(run.steps)} checkpoints of the laptop run "
            f"({fresh.n_sequences:,} sequences each) | {seconds:.1f} |"
        )
    report(lines)


if __name__ == "__main__":
    main()
