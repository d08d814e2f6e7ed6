"""No-grad forward passes of the canonical transformer: seconds per 4,096 sequences against the chunk size.

    python benchmarks/bench_inference.py      # this CPU, one torch thread (as `make run` trains and analyses)

Evaluation (`train.evaluate`) and probing (`probing.activations`) run the model without gradients over thousands
of sequences; this measures which chunk size `models.INFERENCE_BATCH` should be. Results are appended as a
Markdown section to benchmarks/results.md.
"""

from __future__ import annotations

import datetime

import torch
from bench_training import cpu_name, report, timed  # the sibling script's helpers

from factored import config, products, sampling
from factored.models import INFERENCE_BATCH, build_model
from factored.products import inputs_and_targets

SEQUENCES = 4096
CHUNKS = (4096, 2048, 1024, 512, 256)


def main() -> None:
    torch.set_num_threads(1)
    cfg = config.make_config("laptop")
    process = products.process_of(cfg.data)
    model = build_model(cfg.model, process.model_vocab_size, cfg.data.seq_len + 1).eval()
    tokens, _ = sampling.sample(process, SEQUENCES, cfg.data.seq_len, seed=0)
    inputs, _ = inputs_and_targets(process, tokens, model.uses_bos)

    def passes(chunk: int):
        with torch.no_grad():
            for start in range(0, SEQUENCES, chunk):
                model(inputs[start : start + chunk])

    lines = [
        f"## No-grad forward passes: canonical transformer, cpu, {SEQUENCES:,} sequences x {cfg.data.seq_len} tokens",
        f"machine: {cpu_name()}, 1 torch thread, torch {torch.__version__}; {datetime.date.today()}",
        "",
        "| chunk (sequences per pass) | seconds per 4,096 sequences |",
        "|---|---|",
    ]
    for chunk in CHUNKS:
        mark = " (INFERENCE_BATCH)" if chunk == INFERENCE_BATCH else ""
        lines.append(f"| {chunk:,}{mark} | {timed(lambda c=chunk: passes(c), repeats=5):.3f} |")
    report(lines)


if __name__ == "__main__":
    main()
