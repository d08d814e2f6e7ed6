"""The SAE baseline of notebook 08 trained two ways, over dictionary size x sparsity, on one finished run.

    FACTORED_OUTPUTS=/path/to/outputs python benchmarks/sae_scan.py                # the laptop canonical run
    FACTORED_OUTPUTS=/path/to/outputs python benchmarks/sae_scan.py --run recipe_o_muon_lr4e-3-ff0daa35

Both trainers see the same activations as notebook 08 (the run's last checkpoint, its default site, the laptop
analysis' held-out sequences, BOS dropped) and go through the same clustering and scoring: `sae.sae_factors`
(our TopK SAE) and `sae.sae_factors(trainer="saelens")` (SAELens' TopKTrainingSAE and SAETrainer), each scored by
`discovery_eval.score_against_truth` against the vary-one subspaces. Independent subspace analysis
(`discovery.scan_and_choose`) on the same activations is the first row. Nothing is written into the run folder
(the vary-one subspaces are computed, not cached). Writes benchmarks/sae_scan.md (--out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from factored import config, discovery, discovery_eval, probing, runs, sae

sys.path.insert(0, str(Path(__file__).parent))
from bench_training import cpu_name  # noqa: E402

SAME = 0.9  # a factor counts as recovered here when its matched found subspace overlaps its plane this much


def open_finished_run(name: str | None) -> runs.Run:
    """The run folder `name` under $FACTORED_OUTPUTS/runs (default: the laptop profile's canonical run), finished."""
    path = runs.run_dir_for(config.make_config("laptop")) if name is None else runs.outputs_dir() / "runs" / name
    if not (path / "config.json").exists():
        raise SystemExit(f"no run at {path} (set FACTORED_OUTPUTS to the outputs folder that holds it)")
    run = runs.Run(path, config.RunConfig.from_dict(json.loads((path / "config.json").read_text())))
    if not run.finished:
        raise SystemExit(f"{path.name} is not finished: last checkpoint {run.steps[-1:]} of {run.config.train.steps}")
    return run


def matched_overlaps(found: list[np.ndarray], reference: list[np.ndarray]) -> list[float]:
    """Each true factor's overlap (rank 2) with the found subspace paired to it, 0 when none is: list[N]."""
    pairs, overlap = discovery_eval.match_subspaces(found, reference)
    out = [0.0] * len(reference)
    for f, t in pairs:
        out[t] = float(overlap[f, t])
    return out


def score_row(method: str, found: list[np.ndarray], acts, beliefs, reference, **extra) -> dict:
    score = discovery_eval.score_against_truth(found, acts, beliefs, reference)
    overlaps = matched_overlaps(found, reference)
    return {
        "method": method,
        **extra,
        "recovered": sum(o >= SAME for o in overlaps),
        "found (>0.5)": score["n_recovered"],
        "spurious": score["n_spurious"],
        "subspaces": score["n_found"],
        "overlaps": overlaps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run folder name under $FACTORED_OUTPUTS/runs (default: the canonical run)")
    parser.add_argument("--latents", type=int, nargs="+", default=[4, 8, 16], help="latents per dimension")
    parser.add_argument("--k", type=int, nargs="+", default=[4, 6, 12], help="active latents per input")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "sae_scan.md")
    args = parser.parse_args()

    run = open_finished_run(args.run)
    model = run.load_model(device="cpu")
    acfg = probing.analysis_config("laptop")
    site, seq_len, process = acfg.site_for(model), run.config.data.seq_len, run.process
    data = probing.probe_data(process, acfg.n_sequences, seq_len, acfg.seed)
    acts = probing.activations(model, process, data.tokens, site)  # [B, L-1, d]
    beliefs = probing.paired_beliefs(data.beliefs, seq_len)
    reference = list(probing.vary_one(model, process, acfg, seq_len, site)["directions"])
    names = process.names
    d = acts.shape[-1]
    print(f"{run.dir.name} step {run.steps[-1]}, {site}: activations {acts.shape}", flush=True)

    t = time.perf_counter()
    k_isa, scan = discovery.scan_and_choose(acts, seed=args.seed)
    rows = [score_row("independent subspaces", scan[k_isa].subspaces, acts, beliefs, reference, d_sae="-", k="-",
                      fvu=float("nan"), seconds=time.perf_counter() - t)]  # fmt: skip
    print(rows[-1], flush=True)
    for per_dim in args.latents:
        for k in args.k:
            for method, trainer in (("TopK SAE (ours)", "ours"), ("TopK SAE (SAELens)", "saelens")):
                t = time.perf_counter()
                found = sae.sae_factors(
                    acts, trainer=trainer, n_latents=per_dim * d, k=k, steps=args.steps, seed=args.seed
                )
                seconds = time.perf_counter() - t
                rows.append(score_row(method, found.subspaces, acts, beliefs, reference, d_sae=per_dim * d, k=k,
                                      fvu=found.fvu, seconds=seconds))  # fmt: skip
                print(rows[-1], flush=True)

    import sae_lens  # only for its version

    lines = [
        "# The SAE baseline, trained by us and by SAELens, over dictionary size x sparsity",
        "",
        f"`python benchmarks/sae_scan.py --run {run.dir.name}`: run `{run.dir.name}` at step {run.steps[-1]} "
        f"(of {run.config.train.steps}), site `{site}`, activations {acts.shape[0]:,} sequences x {acts.shape[1]} "
        f"positions x {d} (notebook 08's), {args.steps} SAE steps of 512 rows, Adam lr 1e-3, seed {args.seed}.",
        f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads (other jobs running: wall seconds are "
        f"for comparison within this table), torch {torch.__version__}, sae-lens {sae_lens.__version__}; "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        f"recovered: true factors whose matched found subspace overlaps their vary-one plane >= {SAME} "
        "(rank-2 overlap, Hungarian pairing); found (>0.5): `score_against_truth`'s n_recovered (overlap > 0.5); "
        "spurious: found subspaces paired with no true factor; FVU: fraction of variance of the prepared "
        "activations left unexplained by the SAE's reconstruction; overlaps: each factor's matched overlap.",
        "",
        f"| method | d_sae | k | recovered (of {len(reference)}) | found (>0.5) | spurious | subspaces | FVU | "
        f"overlaps {', '.join(names)} | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fvu = "-" if np.isnan(r["fvu"]) else f"{r['fvu']:.3f}"
        overlaps = " ".join(f"{o:.2f}" for o in r["overlaps"])
        lines.append(f"| {r['method']} | {r['d_sae']} | {r['k']} | {r['recovered']} | {r['found (>0.5)']} | "
                     f"{r['spurious']} | {r['subspaces']} | {fvu} | {overlaps} | {r['seconds']:.0f} |")  # fmt: skip
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
