"""Training throughput of the canonical transformer, and how close it comes to the machine's matmul peak.

    python benchmarks/bench_training.py                 # this CPU, laptop batch size
    python benchmarks/bench_training.py --device cuda   # a GPU: bf16, with and without torch.compile, batch 25,000

Model FLOPs per step = 6 x (matmul parameters) x tokens (forward 2, backward 4; embeddings are lookups, so they
do not count; attention scores add < 2% at T = 8 and are left out, making the estimate conservative).
The peak is a large float32 (CPU) or bf16 (GPU) matmul timed by this same script.
Results are appended as a Markdown section to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from factored import products, sampling
from factored.models import build_model, inputs_and_targets

RESULTS = Path(__file__).with_name("results.md")


def timed(fn, repeats: int, warmup: int = 3, sync=lambda: None, best: bool = False) -> float:
    """Median (or best) seconds per call of fn()."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times) if best else statistics.median(times)


def report(lines: list[str]) -> None:
    """Print a Markdown section and append it to benchmarks/results.md."""
    text = "\n".join(lines) + "\n"
    print(text)
    with open(RESULTS, "a") as f:
        f.write(text)


def cpu_name() -> str:
    """Model name from /proc/cpuinfo (Linux), else what platform knows, with the core count."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, sync) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b, repeats=20, sync=sync, best=True)  # a peak: the best of 20


def matmul_params(model: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def training_step_rate(device, batch: int, dtype_ctx, compile_: bool, with_data: bool, repeats: int, sync):
    process = products.paper_process()
    torch.manual_seed(0)
    model = build_model().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    fwd = torch.compile(model) if compile_ else model
    gen = torch.Generator(device=device).manual_seed(0)
    fixed = sampling.sample(process, batch, 8, generator=gen, device=device)[0]

    def step():
        tokens = sampling.sample(process, batch, 8, generator=gen, device=device)[0] if with_data else fixed
        inputs, targets = inputs_and_targets(process, tokens, True)
        with dtype_ctx():
            logits, _ = fwd(inputs)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = timed(step, repeats=repeats, warmup=5 if not compile_ else 10, sync=sync)
    return seconds, matmul_params(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=None, help="sequences per step (cpu: 512, cuda: 25000)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    batch = args.batch or (25_000 if cuda else 512)
    tokens = batch * 8

    peak_dtype = torch.bfloat16 if cuda else torch.float32
    sizes = (4096, 8192) if cuda else (1024, 2048)
    # a shared VM's speed drifts: the peak is the best of several sizes, measured before and after the runs
    peak = max(matmul_peak(device, peak_dtype, n, sync) for n in sizes)
    machine = torch.cuda.get_device_name() if cuda else cpu_name()
    lines = [
        f"\n## Training throughput: canonical transformer, {device.type}, batch {batch} x 8 tokens",
        f"machine: {machine}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"python {platform.python_version()}; {time.strftime('%Y-%m-%d')}",
        f"matmul peak ({'bf16' if cuda else 'float32'}): {peak / 1e9:.1f} GFLOP/s",
        "",
        "| variant | s/step | steps/s | tokens/s | model GFLOP/s | % of matmul peak |",
        "|---|---|---|---|---|---|",
    ]
    results = []
    variants = [("eager, fixed batch", False, False), ("eager, fresh batch from the sampler", False, True)]
    if cuda:
        variants += [("compiled, fresh batch", True, True)]
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
    for label, compile_, with_data in variants:
        results.append(
            (
                label,
                compile_,
                with_data,
                *training_step_rate(device, batch, ctx, compile_, with_data, args.repeats, sync),
            )
        )
    peak = max(peak, *(matmul_peak(device, peak_dtype, n, sync) for n in sizes))
    lines[2] = f"matmul peak ({'bf16' if cuda else 'float32'}): {peak / 1e9:.1f} GFLOP/s"
    for label, _, with_data, seconds, n_mm in results:
        flops = 6 * n_mm * tokens / seconds
        lines.append(
            f"| {label}{', bf16 autocast' if cuda else ''} | {seconds:.4f} | {1 / seconds:.2f} | "
            f"{tokens / seconds:,.0f} | {flops / 1e9:.1f} | {100 * flops / peak:.0f}% |"
        )
        if cuda and with_data:
            lines.append(f"|   projected paper budget (500k steps) | | | | | {500_000 * seconds / 3600:.1f} h |")
    if not cuda and not torch.cuda.is_available():
        lines.append(
            "\nGPU: none on this machine, so no bf16/compile numbers and no projection of the paper budget here; "
            "on a CUDA machine run `python benchmarks/bench_training.py --device cuda` (batch 25,000, bf16 autocast, "
            "eager and compiled, projected wall time of 500k steps)."
        )
    report(lines)


if __name__ == "__main__":
    main()
