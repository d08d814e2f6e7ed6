"""The run store: one folder per config under outputs/runs/<name>-<hash>/, and `get_or_train` on top of it.

A folder is never overwritten by a different config: its name carries the config hash, and config.json is
checked against the requested config before anything is trained there. Only one process trains in a folder at a
time: `get_or_train` holds a lock on <run>/.lock while it checks and trains, so a second process asking for the
same run (another sweep point, a notebook) waits and then loads what the first trained.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from .config import RunConfig
from .train import (
    atomic_write_text,
    checkpoint_path,
    model_of,
    pick_device,
    process_of,
    read_metrics,
    saved_steps,
    train,
)


def outputs_dir() -> Path:
    """FACTORED_OUTPUTS if set, else outputs/ at the root of this checkout."""
    env = os.environ.get("FACTORED_OUTPUTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "outputs"


def relative(path: Path) -> str:
    """`path` relative to the project root when it lies inside it (what notebooks print), else as it is."""
    root = Path(__file__).resolve().parents[2]
    path = Path(path).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@dataclass(frozen=True)
class Run:
    """A trained (or training) run: its folder, its config and lazy access to metrics and checkpoints."""

    dir: Path
    config: RunConfig

    @property
    def steps(self) -> list[int]:
        """Checkpointed steps, ascending."""
        return saved_steps(self.dir)

    @property
    def finished(self) -> bool:
        steps = self.steps
        return bool(steps) and steps[-1] == self.config.train.steps

    def metrics(self) -> list[dict]:
        return read_metrics(self.dir)

    @cached_property
    def process(self):
        return process_of(self.config)

    def load_model(self, step: int | None = None, device: str | torch.device = "auto") -> torch.nn.Module:
        """The model at checkpoint `step` (default: the last), in eval mode, on `device`."""
        steps = self.steps
        step = steps[-1] if step is None else step
        if step not in steps:
            raise ValueError(f"step must be one of the checkpointed steps {steps[0]}..{steps[-1]}, got {step}")
        dev = pick_device(device) if isinstance(device, str) else device
        model = model_of(self.config, self.process).to(dev)
        state = torch.load(checkpoint_path(self.dir, step), map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        return model.eval()


def run_dir_for(cfg: RunConfig, root: Path | None = None) -> Path:
    return (root or outputs_dir()) / "runs" / cfg.run_id


def open_run(cfg: RunConfig, root: Path | None = None) -> Run:
    """The run folder for cfg, created with its config.json if new; an existing folder must hold the same config."""
    path = run_dir_for(cfg, root)
    config_file = path / "config.json"
    if config_file.exists():
        stored = RunConfig.from_dict(json.loads(config_file.read_text()))
        if stored.hash() != cfg.hash():  # the hash leaves out device and compile: they change speed, not results
            raise ValueError(f"{path} holds a different config; refusing to overwrite it")
    else:
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config_file, json.dumps(cfg.to_dict(), indent=2) + "\n")
    return Run(path, cfg)


@contextmanager
def run_lock(run_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold <run_dir>/.lock: at once if free, else after waiting up to `timeout` seconds (None: as long as it
    takes) for the process that holds it. An OS file lock, released when its holder exits, even by a crash."""
    lock = FileLock(run_dir / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process to finish training {run_dir.name} ...", file=sys.stderr, flush=True)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise TimeoutError(
                f"{run_dir} is being trained by another process (it holds {run_dir / '.lock'}); gave up after "
                f"{timeout} s. Wait for that process, or call get_or_train with a longer timeout (None: no limit)"
            ) from None
    try:
        yield
    finally:
        lock.release()


def get_or_train(cfg: RunConfig, root: Path | None = None, progress: bool = True, timeout: float | None = None) -> Run:
    """A finished run for cfg: loaded if done, resumed if interrupted, trained from scratch if new.

    A finished run loads at once. Otherwise the run folder's lock is held while checking and training, so two
    processes asking for one run train it once: the second waits (up to `timeout` seconds, None: no limit;
    TimeoutError after that), then loads it."""
    path = run_dir_for(cfg, root)
    if (path / "config.json").exists():
        run = open_run(cfg, root)
        if run.finished:
            return run
    path.mkdir(parents=True, exist_ok=True)
    with run_lock(path, timeout):
        run = open_run(cfg, root)  # under the lock: config.json is written by one process only
        if not run.finished:  # another process may have finished it while this one waited
            train(cfg, run.dir, progress=progress)
    return run


def finished_run(cfg: RunConfig, root: Path | None = None) -> Run | None:
    """The finished run of cfg if one is stored, else None; creates and trains nothing."""
    run = Run(run_dir_for(cfg, root), cfg)
    return run if (run.dir / "config.json").exists() and run.finished else None
