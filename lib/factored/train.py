"""The training loop: fresh batches every step, AdamW + reduce-on-plateau, log-spaced checkpoints, exact resume.

A run folder holds everything: `config.json`, `metrics.jsonl` (one JSON line per logged step) and
`checkpoints/step_XXXXXXX.pt`. Each checkpoint carries model, optimizer, scheduler, RNG states and the loss
window, so training killed at any moment continues from the last checkpoint and (on a CPU, same seed) ends with
exactly the loss an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import products, sampling, theory
from .config import RunConfig
from .models import build_model

CHECKPOINT_SCHEDULE = ((10, 1), (500, 10), (1000, 100), (5000, 1000))  # (up to step, every); then every 5000
LATE_EVERY = 5000


def checkpoint_steps(total: int, every: int = 0) -> list[int]:
    """The authors' log-spaced schedule: every step to 10, every 10 to 500, every 100 to 1k, every 1k to 5k,
    then every 5k; always step 0 (initialisation) and the final step; and every `every` steps if > 0."""
    steps, start = set(range(0, total + 1, every)) if every else set(), 0
    for stop, every in CHECKPOINT_SCHEDULE:
        steps.update(range(start, min(stop, total) + 1, every))
        start = stop
    steps.update(range(start, total + 1, LATE_EVERY))
    steps.add(total)
    return sorted(s for s in steps if s <= total)


def pick_device(requested: str = "auto") -> torch.device:
    """cuda > mps > cpu for "auto"; an explicit request that this machine cannot honour is an error."""
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if requested == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if available[d]))
    if not available.get(requested, False):
        raise ValueError(f"device {requested!r} is not available here; choose 'auto' or 'cpu'")
    return torch.device(requested)


def process_of(cfg: RunConfig) -> products.FactoredProcess:
    """The process a run trains on: the paper's five factors, or n_mess3 independent Mess3 factors if > 0."""
    if cfg.data.n_mess3:
        return products.mess3_factors(cfg.data.n_mess3, noise=cfg.data.noise)
    return products.paper_process(structure=cfg.data.structure, noise=cfg.data.noise)


def model_of(cfg: RunConfig, process: products.FactoredProcess) -> torch.nn.Module:
    return build_model(**asdict(cfg.model), vocab_size=process.model_vocab_size, n_ctx=cfg.data.seq_len + 1)


def inputs_and_targets(
    process: products.FactoredProcess, tokens: torch.Tensor, uses_bos: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, L] -> (inputs, targets): [BOS, x1..x_{L-1}] -> [x1..xL] with BOS, else [x1..x_{L-1}] -> [x2..xL]."""
    if uses_bos:
        return products.add_bos(process, tokens)[:, :-1], tokens
    return tokens[:, :-1], tokens[:, 1:]


def target_positions(seq_len: int, uses_bos: bool) -> slice:
    """Which of the L token positions the model is trained to predict (all with BOS, 2..L without)."""
    return slice(0, seq_len) if uses_bos else slice(1, seq_len)


def per_position_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats at each position: [T]."""
    logits, _ = model(inputs)
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view(targets.shape).mean(0)


def expected_optimal_loss(cfg: RunConfig, process: products.FactoredProcess, uses_bos: bool) -> np.ndarray:
    """The Bayes-optimal loss at each trained position (exact for independent noiseless factors, else Monte Carlo)."""
    per_position, _ = theory.optimal_loss(process, cfg.data.seq_len)
    return np.asarray(per_position)[target_positions(cfg.data.seq_len, uses_bos)]


def batch_optimal_loss(
    process: products.FactoredProcess, tokens: torch.Tensor, beliefs: list[torch.Tensor], positions: slice
) -> np.ndarray:
    """The Bayes-optimal predictor's mean loss on these very tokens, per target position: [T] float64.

    -log P(x_t | past) under the true next-token law; subtracting it from a model's loss on the same batch
    gives a gap with far less sampling noise than comparing against the expected optimum."""
    beliefs64 = [b.double().cpu() for b in beliefs]
    out = []
    for t in range(tokens.shape[1])[positions]:
        law = sampling.next_token_law(process, [b[:, t] for b in beliefs64])  # [B, V]
        out.append(-torch.log(law.gather(1, tokens[:, t : t + 1].cpu())).mean().item())
    return np.array(out)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig):
    """The lr schedule: reduce-on-plateau of the windowed training loss (the authors'), or a linear warmup over
    `warmup_steps` followed by a cosine decay to 0 at the last step (cosine) or by the constant lr (constant);
    the last two are stepped once per step."""
    t = cfg.train
    if t.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=t.plateau_factor, patience=t.plateau_patience
        )
    if t.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, t.warmup_steps)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, t.warmup_steps, t.steps))


def cosine_factor(step: int, warmup: int, total: int) -> float:
    """lr multiplier after `step` optimizer steps: (step + 1) / warmup during warmup, then cosine from 1 to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _temp_path(path: Path) -> Path:
    """A temp file beside `path`, private to this process and thread, so concurrent writers of one file (two
    notebooks analysing the same run) never rename each other's half-written temp file."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_save(obj: object, path: Path) -> None:
    tmp = _temp_path(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = _temp_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:07d}.pt"


def saved_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.pt"))


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _batches(process, batch_size: int, seq_len: int, generator: torch.Generator, device) -> Iterator[torch.Tensor]:
    while True:
        tokens, _ = sampling.sample(process, batch_size, seq_len, generator=generator, device=device)
        yield tokens


def train(cfg: RunConfig, run_dir: Path, progress: bool = True) -> Path:
    """Train `cfg` in `run_dir`, resuming from its latest checkpoint if there is one. Returns run_dir."""
    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    t = cfg.train
    device = pick_device(t.device)
    process = process_of(cfg)

    torch.manual_seed(t.seed)
    model = model_of(cfg, process).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=(0.9, t.adam_beta2), weight_decay=t.weight_decay)
    scheduler = make_scheduler(optimizer, cfg)
    data_rng = torch.Generator(device=device).manual_seed(t.seed)
    eval_rng = torch.Generator(device=device).manual_seed(t.seed + 1)  # held out: never used for training
    eval_tokens, eval_beliefs = sampling.sample(
        process, t.eval_batch_size, cfg.data.seq_len, generator=eval_rng, device=device
    )
    eval_inputs, eval_targets = inputs_and_targets(process, eval_tokens, model.uses_bos)
    positions = target_positions(cfg.data.seq_len, model.uses_bos)
    eval_optimum = batch_optimal_loss(process, eval_tokens, eval_beliefs, positions)

    window: list[float] = []
    done = saved_steps(run_dir)
    start = done[-1] if done else 0
    if done:
        state = torch.load(checkpoint_path(run_dir, start), map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        data_rng.set_state(state["rng"]["data"].cpu())
        torch.set_rng_state(state["rng"]["torch"].cpu())
        window = list(state["loss_window"])
        # drop metrics logged after the checkpoint we resume from: they will be logged again
        kept = [m for m in read_metrics(run_dir) if m["step"] <= start]
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in kept))

    forward_model = torch.compile(model) if (t.compile and device.type == "cuda") else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    schedule = set(checkpoint_steps(t.steps, t.checkpoint_every))
    log_every = t.plateau_window
    batches = _batches(process, t.batch_size, cfg.data.seq_len, data_rng, device)
    tokens_per_step = t.batch_size * (eval_inputs.shape[1])

    def evaluate() -> np.ndarray:
        model.eval()
        with torch.no_grad(), autocast:
            loss = per_position_loss(forward_model, eval_inputs, eval_targets)
        model.train()
        return loss.cpu().numpy()

    def log(step: int, train_loss: float, tokens_per_s: float) -> dict:
        eval_pp = evaluate()
        row = {
            "step": step,
            "train_loss": train_loss,
            "eval_loss": float(eval_pp.mean()),
            "eval_optimum": float(eval_optimum.mean()),  # the Bayes-optimal loss on the same held-out batch
            "gap": float(eval_pp.mean() - eval_optimum.mean()),
            "eval_loss_per_position": [float(v) for v in eval_pp],
            "lr": optimizer.param_groups[0]["lr"],
            "tokens_per_s": tokens_per_s,
        }
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def save(step: int) -> None:
        atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"data": data_rng.get_state(), "torch": torch.get_rng_state()},
                "loss_window": list(window),
                "step": step,
                "config": cfg.to_dict(),
            },
            checkpoint_path(run_dir, step),
        )

    if not done:
        log(0, float("nan"), 0.0)
        save(0)

    bar = tqdm(total=t.steps, initial=start, desc=cfg.run_id, disable=not progress, dynamic_ncols=True)
    clock, last_logged, loss_value = time.perf_counter(), start, float("nan")
    for step in range(start + 1, t.steps + 1):
        inputs, targets = inputs_and_targets(process, next(batches), model.uses_bos)
        with autocast:
            loss = per_position_loss(forward_model, inputs, targets).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        window.append(loss_value)
        if t.schedule != "plateau":
            scheduler.step()
        elif len(window) == t.plateau_window:
            scheduler.step(sum(window) / len(window))
        if len(window) == t.plateau_window:
            window.clear()
        bar.update(1)
        if step % log_every == 0 or step in schedule:
            elapsed = time.perf_counter() - clock
            row = log(step, loss_value, tokens_per_step * (step - last_logged) / max(elapsed, 1e-9))
            clock, last_logged = time.perf_counter(), step
            bar.set_postfix(loss=f"{loss_value:.4f}", gap=f"{row['gap']:+.4f}", lr=f"{row['lr']:.1e}")
        if step in schedule:
            save(step)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training diverged at step {step} (loss {loss_value}); try a smaller lr")
    bar.close()
    return run_dir


def loss_milestones(metrics: list[dict], plateau: float, margin: float = 0.01) -> dict:
    """Where training leaves the unigram plateau and how close it gets to the optimum, from metrics rows.

    escape_step: first logged step whose held-out loss is `margin` nats below the plateau (None if never);
    first_within_0.02: first step with gap <= 0.02 nats; final_*: the last logged row.
    """
    rows = [m for m in metrics if m["step"] > 0]
    below = [m["step"] for m in rows if m["eval_loss"] < plateau - margin]
    close = [m["step"] for m in rows if m["gap"] <= 0.02]
    last = metrics[-1]
    return {
        "plateau": plateau,
        "escape_step": below[0] if below else None,
        "first_within_0.02": close[0] if close else None,
        "final_step": last["step"],
        "final_eval_loss": last["eval_loss"],
        "final_eval_optimum": last["eval_optimum"],
        "final_gap": last["gap"],
    }
