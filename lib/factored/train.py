"""Training: fresh batches every step, AdamW + an lr schedule, log-spaced checkpoints, exact resume, and
`get_or_train`, the one call notebooks make for a run.

Runs are stored by `runs` (the run folder: config, metrics, checkpoints, lock). Each checkpoint carries model,
optimizer, scheduler, RNG states, the loss window and its own metrics row, so training killed at any moment
continues from the last checkpoint, with every metrics row up to it, and (on a CPU, same seed) ends with exactly
the loss an uninterrupted run reaches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import optim, products, runs, sampling, theory, verdicts
from .config import RunConfig
from .models import INFERENCE_BATCH, pick_device
from .paths import pin_outputs_dir, restore_ctrl_c
from .products import inputs_and_targets, target_positions
from .profiles import PROFILES
from .runs import Run

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


def log_steps(total: int, every: int) -> list[int]:
    """The steps whose held-out loss is evaluated and logged: every `every` steps, 1, 2 and 5 times each power of
    ten (a few points per decade draw a loss curve on a log axis; the checkpoints' dense early schedule is for the
    geometry, and an evaluation of the held-out batch costs several training steps), step 0 and the last."""
    decades = {m * 10**e for e in range(len(str(total))) for m in (1, 2, 5)}
    return sorted({0, total, *range(0, total + 1, every), *(s for s in decades if s <= total)})


def per_position_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats at each position: [T]. targets: the next tokens [B, T] (long), or a law over the
    model's vocabulary at every position [B, T, V_model] (float; `law_targets`)."""
    logits, _ = model(inputs)
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(0, 1), reduction="none")
    return ce.view(targets.shape[:2]).mean(0)


def law_targets(process: products.FactoredProcess, beliefs: list[torch.Tensor], uses_bos: bool) -> torch.Tensor:
    """The exact next-token law at every trained position, over the model's vocabulary: beliefs list[N] of
    [B, L+1, S_n] (the sampler's) -> [B, T, V_model], with no mass on BOS.

    The law is the expectation of the one-hot target given the context, so the cross-entropy against it has the
    one-hot loss's expectation and expected gradient, without the noise of the sampled target."""
    positions = target_positions(beliefs[0].shape[1] - 1, uses_bos)
    law = sampling.next_token_law(process, [b[:, positions] for b in beliefs])  # [B, T, V]
    return F.pad(law.float(), (0, process.model_vocab_size - process.vocab_size))


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


@dataclass
class Session:
    """Everything one run holds while it trains: its config and folder, the model (and the compiled forward that
    runs it), the optimizers and their lr schedules, the training data's random stream, the loss window of the
    plateau schedule, and the fixed held-out batch with the optimal predictor's loss on it."""

    cfg: RunConfig
    run: Run
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    schedulers: list
    data_rng: torch.Generator
    eval_inputs: torch.Tensor
    eval_targets: torch.Tensor
    eval_optimum: np.ndarray  # [T] the Bayes-optimal loss per position on the held-out batch
    autocast: Callable[[], AbstractContextManager] = nullcontext  # the precision every forward pass runs in
    window: list[float] = field(default_factory=list)


def speedups(
    model: torch.nn.Module, device: torch.device, compile_: bool, accelerate: bool | None = None
) -> tuple[torch.nn.Module, Callable[[], AbstractContextManager]]:
    """(the module that runs the forward pass, the precision context it runs in): with `accelerate`, bf16 autocast
    on `device` and, if `compile_`, torch.compile; without, the model itself in float32. accelerate defaults to
    "on CUDA only": on a CPU neither pays at these sizes (benchmarks/recipe.md). The tests force it on the CPU,
    so the GPU path's dtype and compile logic runs without a GPU."""
    if not (device.type == "cuda" if accelerate is None else accelerate):
        return model, nullcontext
    autocast = partial(torch.autocast, device.type, dtype=torch.bfloat16)
    return (torch.compile(model) if compile_ else model), autocast


# Checkpoint keys of the optimizers' and their schedulers' states, in `optim.make_optimizers`' order (an AdamW
# run's checkpoint has the first of each only, as before Muon existed).
OPTIMIZER_KEYS = ("optimizer", "muon_optimizer")
SCHEDULER_KEYS = ("scheduler", "muon_scheduler")


def setup(cfg: RunConfig, run_dir: Path) -> Session:
    """A fresh session: the seeded model and optimizers, the data stream, and the held-out batch (drawn from its
    own seed, never used for training) with its optimal loss."""
    t = cfg.train
    device = pick_device(t.device)
    run = runs.Run(Path(run_dir), cfg)
    process = run.process
    torch.manual_seed(t.seed)
    model = run.new_model().to(device)
    optimizers = optim.make_optimizers(model, t)  # [AdamW] or [AdamW, Muon]
    eval_rng = torch.Generator(device=device).manual_seed(t.seed + 1)
    eval_tokens, eval_beliefs = sampling.sample(
        process, t.eval_batch_size, cfg.data.seq_len, generator=eval_rng, device=device
    )
    eval_inputs, eval_targets = inputs_and_targets(process, eval_tokens, model.uses_bos)
    positions = target_positions(cfg.data.seq_len, model.uses_bos)
    forward, autocast = speedups(model, device, t.compile)
    return Session(
        cfg=cfg,
        run=run,
        device=device,
        model=model,
        forward=forward,
        autocast=autocast,
        optimizers=optimizers,
        schedulers=[optim.make_scheduler(o, t) for o in optimizers],
        data_rng=torch.Generator(device=device).manual_seed(t.seed),
        eval_inputs=eval_inputs,
        eval_targets=eval_targets,
        eval_optimum=batch_optimal_loss(process, eval_tokens, eval_beliefs, positions),
    )


def resume(session: Session) -> int | None:
    """Restore the session from the run's latest readable checkpoint (damaged, foreign or unsafe ones set aside,
    leftover temp files removed) and its metrics up to that checkpoint: the rows logged after it are dropped
    (training logs them again), and the checkpoint's row (the last one logged up to it), kept in the checkpoint,
    is put back if the file lost it (a torn last line). Returns that checkpoint's step, or None for a run with no
    checkpoint (its old metrics then set aside: `restart_metrics`)."""
    run_dir = session.run.dir
    runs.remove_leftovers(run_dir)
    resumed = runs.last_good_checkpoint(run_dir, session.device, runs.model_shapes(session.model))
    if resumed is None:
        restart_metrics(run_dir)
        return None
    step, state = resumed
    session.model.load_state_dict(state["model"])
    for optimizer, scheduler, o_key, s_key in zip(
        session.optimizers, session.schedulers, OPTIMIZER_KEYS, SCHEDULER_KEYS, strict=False
    ):
        optimizer.load_state_dict(state[o_key])
        scheduler.load_state_dict(state[s_key])
    session.data_rng.set_state(state["rng"]["data"].cpu())
    torch.set_rng_state(state["rng"]["torch"].cpu())
    session.window[:] = list(state["loss_window"])
    runs.write_metrics(run_dir, runs.metrics_until(session.run.metrics(), step, state.get("metrics")))
    return step


def restart_metrics(run_dir: Path) -> None:
    """Before training starts again from step 0 (no checkpoint readable, or a full disk before the first one was
    saved), set aside the metrics logged before (`runs.StaleMetrics`, one warning naming where), so that
    metrics.jsonl holds every step once."""
    path = runs.metrics_path(run_dir)
    if path.exists() and path.stat().st_size:
        runs.set_aside(path, runs.StaleMetrics)
    else:
        path.unlink(missing_ok=True)


def train_step(session: Session, tokens: torch.Tensor, beliefs: list[torch.Tensor]) -> float:
    """One optimizer step on a batch of tokens [B, L] with their beliefs (list[N] of [B, L+1, S_n]); the lr
    schedules advance (the plateau schedule once per window of steps). Returns the batch's training loss: the
    cross-entropy against the run's target, the sampled tokens or (target `law`) the exact next-token law, whose
    value is the token loss's expectation given these contexts."""
    t = session.cfg.train
    process, uses_bos = session.run.process, session.model.uses_bos
    inputs, targets = inputs_and_targets(process, tokens, uses_bos)
    if t.target == "law":
        targets = law_targets(process, beliefs, uses_bos)
    with session.autocast():
        loss = per_position_loss(session.forward, inputs, targets).mean()
    for optimizer in session.optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in session.optimizers:
        optimizer.step()
    value = loss.item()
    session.window.append(value)
    full = len(session.window) == t.plateau_window
    for scheduler in session.schedulers:
        if t.schedule != "plateau":
            scheduler.step()
        elif full:
            scheduler.step(sum(session.window) / len(session.window))
    if full:
        session.window.clear()
    return value


def evaluate(session: Session) -> np.ndarray:
    """The model's held-out loss per position: [T] nats (in passes of `INFERENCE_BATCH` sequences)."""
    session.model.eval()
    inputs, targets, total = session.eval_inputs, session.eval_targets, 0.0
    with torch.no_grad(), session.autocast():
        for start in range(0, len(inputs), INFERENCE_BATCH):
            chunk = slice(start, start + INFERENCE_BATCH)
            total = total + per_position_loss(session.forward, inputs[chunk], targets[chunk]) * len(inputs[chunk])
    session.model.train()
    return (total / len(inputs)).cpu().numpy()


def log(session: Session, step: int, train_loss: float, tokens_per_s: float) -> dict:
    """Evaluate and append one metrics row (the gap: held-out loss minus the optimal predictor's on the same
    sequences); returns the row."""
    held_out = evaluate(session)
    row = {
        "step": step,
        "train_loss": train_loss,
        "eval_loss": float(held_out.mean()),
        "eval_optimum": float(session.eval_optimum.mean()),
        "gap": float(held_out.mean() - session.eval_optimum.mean()),
        "eval_loss_per_position": [float(v) for v in held_out],
        "lr": session.optimizers[0].param_groups[0]["lr"],
        "tokens_per_s": tokens_per_s,
    }
    runs.append_metrics(session.run.dir, row)
    return row


def save(session: Session, step: int, row: dict) -> None:
    """Checkpoint everything `resume` needs to continue exactly: model, optimizers, schedules, random states,
    loss window, and the last metrics row logged up to this step (`row`, so that resume can rebuild a torn last
    line of metrics.jsonl); an atomic write."""
    state = {"model": session.model.state_dict()}
    state |= {k: o.state_dict() for k, o in zip(OPTIMIZER_KEYS, session.optimizers, strict=False)}
    state |= {k: s.state_dict() for k, s in zip(SCHEDULER_KEYS, session.schedulers, strict=False)}
    state |= {
        "rng": {"data": session.data_rng.get_state(), "torch": torch.get_rng_state()},
        "loss_window": list(session.window),
        "step": step,
        "config": session.cfg.to_dict(),
        "metrics": row,
    }
    runs.atomic_save(runs.with_checksum(state), runs.checkpoint_path(session.run.dir, step))


def train(cfg: RunConfig, run_dir: Path, progress: bool = True) -> Path:
    """Train `cfg` in `run_dir`, resuming from its latest checkpoint if there is one. Returns run_dir.

    Read top to bottom: set up, resume (or log and save step 0), then step through fresh batches, logging on
    `log_steps` (every `log_every`, or `plateau_window`, steps), saving on the log-spaced checkpoint schedule."""
    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    t = cfg.train
    session = setup(cfg, run_dir)
    start = resume(session)
    if start is None:
        row = log(session, 0, float("nan"), 0.0)
        save(session, 0, row)
        start = 0
    else:
        row = session.run.metrics()[-1]

    checkpoints = set(checkpoint_steps(t.steps, t.checkpoint_every))
    logged = set(log_steps(t.steps, t.log_every or t.plateau_window))
    tokens_per_step = t.batch_size * session.eval_inputs.shape[1]
    quiet = {} if progress else {"disable": True}  # progress=True leaves the choice to TQDM_DISABLE
    bar = tqdm(total=t.steps, initial=start, desc=cfg.run_id, dynamic_ncols=True, **quiet)
    clock, last_logged, step = time.perf_counter(), start, start
    try:
        for step in range(start + 1, t.steps + 1):
            tokens, beliefs = sampling.sample(
                session.run.process, t.batch_size, cfg.data.seq_len, generator=session.data_rng, device=session.device
            )
            loss = train_step(session, tokens, beliefs)
            bar.update(1)
            if step in logged:
                rate = tokens_per_step * (step - last_logged) / max(time.perf_counter() - clock, 1e-9)
                row = log(session, step, loss, rate)
                clock, last_logged = time.perf_counter(), step
                bar.set_postfix(loss=f"{loss:.4f}", gap=f"{row['gap']:+.4f}", lr=f"{row['lr']:.1e}")
            if step in checkpoints:
                save(session, step, row)
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged at step {step} (loss {loss}); try a smaller lr")
    except KeyboardInterrupt:  # Ctrl-C: one line at the command line (`main`), not a traceback from the loop
        raise Interrupted(step) from None
    finally:
        bar.close()
    return run_dir


def loss_milestones(metrics: list[dict], plateau: float, margin: float = 0.01) -> dict:
    """Where training leaves the unigram plateau and how close it gets to the optimum, from metrics rows.

    escape_step: first logged step whose held-out loss is `margin` nats below the plateau (None if never);
    first_within_0.02: first step with gap <= 0.02 nats; final_*: the last logged row.
    """
    rows = [m for m in metrics if m["step"] > 0]
    below = [m["step"] for m in rows if m["eval_loss"] < plateau - margin]
    close = [m["step"] for m in rows if m["gap"] <= verdicts.LEARNED_GAP]
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


def get_or_train(cfg: RunConfig, root: Path | None = None, progress: bool = True, timeout: float | None = None) -> Run:
    """A finished run for cfg: loaded if done, resumed if interrupted, trained from scratch if new.

    A finished run loads at once. Otherwise the run folder's lock is held while checking and training, so two
    processes asking for one run train it once: the second waits (up to `timeout` seconds, None: no limit;
    TimeoutError after that), then loads it. A device this machine does not have is refused (ValueError) before
    a run folder is created."""
    pick_device(cfg.train.device)
    path = runs.run_dir_for(cfg, root)
    if (path / "config.json").exists():
        run = runs.open_run(cfg, root)  # checks the stored config
        if run.verified():  # finished with a readable last checkpoint: loads at once, whoever holds the lock
            runs.remove_lock_file(path)
            return run
    path.mkdir(parents=True, exist_ok=True)
    with runs.run_lock(path, timeout):
        run = runs.open_run(cfg, root)  # under the lock: config.json is written by one process only
        if not run.finished:  # another process may have finished it while this one waited
            train(cfg, run.dir, progress=progress)
    return run


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) while training; `step` is the step it was on. Every checkpoint saved before it stays, so
    the same call (or command) resumes from the last one."""

    def __init__(self, step: int) -> None:
        super().__init__(f"interrupted at step {step}")
        self.step = step


def run_fields_help() -> str:
    """The run fields the command line takes, by part of the run config (what `--help` lists)."""
    import textwrap

    from .config import field_owners

    owners = field_owners()
    parts = {part: [name for name, p in owners.items() if p == part] for part in dict.fromkeys(owners.values())}
    lines = [textwrap.fill(", ".join(names), 100, initial_indent=f"  {part}: ", subsequent_indent=" " * 9)
             for part, names in parts.items()]  # fmt: skip
    return ("run fields, each at most once as --<field> value (n_ctx, the context length with BOS, sets seq_len):\n"
            + "\n".join(lines))  # fmt: skip


def run_field_pairs(rest: list[str]) -> list[tuple[str, str]]:
    """[(field, value text)] from the arguments after the command line's own: `--<field> value` pairs, each field
    once (`--steps 5 --steps 3` is refused, not read as 3; `--n-ctx` and `--n_ctx` are one field). ValueError
    saying what is wrong."""
    if len(rest) % 2 or not all(k.startswith("--") for k in rest[::2]):
        raise ValueError(f"run fields come as --<field> value pairs, got {rest}")
    pairs = [(k[2:].replace("-", "_"), v) for k, v in zip(rest[::2], rest[1::2], strict=True)]
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen:
            raise ValueError(f"run field {name} given twice ({seen[name]}, then {value}); give each field once")
        seen[name] = value
    return pairs


def main(argv: list[str] | None = None) -> int:
    """`python -m factored.train --profile paper --seed 0 --noise 0.2 ...`: train one run into the run store, the
    same folder the notebooks read (they then load it instead of training). Any field of the run config may be
    given once as --<field> value (read as YAML, numbers as Python reads them: 0.2, 1e-3, true); a bad one is one
    error naming it, before training. Ctrl-C stops at once (exit 130); run the same command again to resume."""
    import argparse
    import sys

    from . import config, parameters

    parser = argparse.ArgumentParser(
        prog="python -m factored.train", description=main.__doc__, epilog=run_fields_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--profile", default="", help=f"one of {PROFILES} (default: $FACTORED_PROFILE, laptop)")
    parser.add_argument("--name", default="", help="the run's name (default: its condition, as the notebooks name it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args, rest = parser.parse_known_args(argv)
    try:
        fields = {name: parameters.parse_value(name, v) for name, v in run_field_pairs(rest)}
        pin_outputs_dir()  # a relative FACTORED_OUTPUTS is this working folder's; an outputs file is refused here
        # the notebooks' own constructor, so `--d_model 480` or `--arch lstm` trains the very run they load
        cfg = parameters.run_config({"profile": args.profile, **fields}, strict=True)
        if args.name:
            cfg = config.RunConfig(args.name, cfg.data, cfg.model, cfg.train)
        pick_device(cfg.train.device)  # an unavailable device is a bad value too: refused before "training ..."
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"training {cfg.run_id} into {runs.relative(runs.run_dir_for(cfg))}", file=sys.stderr)
    try:
        run = get_or_train(cfg, progress=not args.no_progress)
    except KeyboardInterrupt as e:  # exit status 128 + SIGINT, as a shell reports a command it stopped
        at = f" at step {e.step}" if isinstance(e, Interrupted) else ""
        print(f"interrupted{at}; run it again to resume", file=sys.stderr)
        return 130
    except ValueError as e:  # a run folder holding another config or a broken config.json
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk (DiskFull says where and how much), a folder that cannot be written
        print(f"error: {f'{e.filename}: {e.strerror}' if e.filename else e}", file=sys.stderr)
        return 1
    last = run.metrics()[-1]
    print(f"{runs.relative(run.dir)}: step {last['step']}, held-out loss {last['eval_loss']:.5f}, "
          f"gap {last['gap']:+.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    restore_ctrl_c()  # the command line's own process only: main() called from Python keeps its handlers
    raise SystemExit(main())
