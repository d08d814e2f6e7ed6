"""Throughput of the batched torch sampler (tokens together with every factor's beliefs).

    python benchmarks/bench_generation.py                  # this CPU: batch 25,000 x 8, 1 and all threads
    python benchmarks/bench_generation.py --device cuda    # a GPU

Target: >= 2 million tokens/s with beliefs for the paper process at B = 25,000, L = 8 on a 2-core CPU (one
training batch in <= 0.1 s). Reported per setting: median and best wall time over --repeats runs after
--warmup runs, the median CPU time of this process (robust to other jobs sharing the cores when one thread is
used) and tokens/s from the median wall time. Prints a Markdown table; results live in generation.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from factored import products, sampling


def bench(process, batch: int, seq_len: int, device: torch.device, repeats: int, warmup: int) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(warmup):
        sampling.sample(process, batch, seq_len, seed=i, device=device)
    sync()
    wall, cpu = [], []
    for i in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        sampling.sample(process, batch, seq_len, seed=1000 + i, device=device)
        sync()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    median = statistics.median(wall)
    return dict(median=median, best=min(wall), cpu=statistics.median(cpu), rate=batch * seq_len / median)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=25_000)
    ap.add_argument("--seq-len", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="*", help="CPU thread counts (default: 1 and all)")
    args = ap.parse_args()
    device = torch.device(args.device)
    threads = args.threads or sorted({1, torch.get_num_threads()})
    if device.type != "cpu":
        threads = [torch.get_num_threads()]
    processes = {
        "independent": products.paper_process(),
        "chain": products.paper_process("chain"),
        "independent, noise 0.1": products.paper_process(noise=0.1),
    }
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device {device}, ")
    print(f"B = {args.batch}, L = {args.seq_len}, median of {args.repeats} after {args.warmup} warmup runs")
    print(f"load average before: {os.getloadavg()}\n")
    print("| process | threads | median wall (s) | best wall (s) | median CPU (s) | Mtok/s (median wall) |")
    print("|---|---|---|---|---|---|")
    for n_threads in threads:
        torch.set_num_threads(n_threads)  # benchmark script only: the library never sets threads
        for name, process in processes.items():
            r = bench(process, args.batch, args.seq_len, device, args.repeats, args.warmup)
            print(
                f"| {name} | {n_threads} | {r['median']:.4f} | {r['best']:.4f} | {r['cpu']:.4f} "
                f"| {r['rate'] / 1e6:.2f} |",
                flush=True,
            )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
