"""The run store: one folder per config under outputs/runs/<name>-<hash>/, and everything read from or written to it.

A run folder holds `config.json`, `metrics.jsonl` (one JSON line per logged step), `checkpoints/step_XXXXXXX.pt`
and the analyses made of it (`analysis-*.json` caches, `summaries/<name>-<settings hash>.json`). This module owns
its paths, its atomic writes and its lock; training (`train`) and analysis (`probing`) sit on top of it.

A folder is never overwritten by a different config: its name carries the config hash, and config.json is
checked against the requested config before anything is written there. Only one process trains in a folder at
a time: `run_lock` holds <run>/.lock, an OS file lock released when its holder exits, even by a crash.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from .config import RunConfig
from .models import build_model, pick_device
from .paths import outputs_dir, relative
from .products import FactoredProcess, process_of


# ----------------------------------------------------------------------------------------------- atomic writes
class DiskFull(OSError):
    """No space left where a run store file is written; the message names the folder and the space the write needs.
    Nothing saved before is lost: a run resumes from its last checkpoint once there is space."""


def _size(n: float) -> str:
    """A byte count for people: 812 B, 35.2 kB, 1.4 MB."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"


def disk_full(path: Path, needed: int) -> DiskFull:
    """The one-line error for a write of `needed` bytes to `path` that found its device full."""
    try:
        free = f", {_size(shutil.disk_usage(path.parent).free)} free"
    except OSError:
        free = ""
    return DiskFull(
        f"no space left on the device of {relative(path.parent)}: writing {path.name} needs {_size(needed)}{free}; "
        "free some space there and run again (a run resumes from its last checkpoint)"
    )


def _temp_path(path: Path) -> Path:
    """A temp file beside `path`, private to this process and thread, so concurrent writers of one file (two
    notebooks analysing the same run) never rename each other's half-written temp file."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a temp file, then rename it: a reader sees the old file or the whole new one, never a part. A full
    device is DiskFull (the temp file removed)."""
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise disk_full(path, len(data)) from None
        raise
    os.replace(tmp, path)


def atomic_save(obj: object, path: Path) -> None:
    """torch.save, atomically (`atomic_write_bytes`: serialised in memory first, so a full disk is one clear error,
    not an error from inside torch's writer)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, data: object) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


# ------------------------------------------------------------------------------------ checkpoints and metrics
def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"


def saved_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (Path(run_dir) / "checkpoints").glob("step_*.pt"))


class DamagedCheckpoint(RuntimeError):
    """A checkpoint file that cannot be read (truncated by a full disk or a kill outside `atomic_save`)."""

    state = "is damaged"  # what `set_aside` says of the file
    suffix = ".damaged"  # what it appends to the file's name


class UnsafeCheckpoint(DamagedCheckpoint):
    """A checkpoint holding more than tensors and plain data, which torch.load(weights_only=True) refuses because
    unpickling it could run code. It is never loaded: it is set aside like a damaged one."""

    state = "cannot be loaded safely"
    suffix = ".refused"


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "rng", "loss_window", "step")  # what resume reads


def tensor_checksum(state: object) -> str:
    """sha256 over everything in a checkpoint's state (each tensor's name, dtype, shape and bytes, each plain
    value's repr, in key order), its own "checksum" entry left out. torch.load reads a flipped byte inside tensor
    data without complaint; this catches it. Hashing reads the tensors and changes nothing training computes."""
    digest = hashlib.sha256()

    def visit(obj: object, name: str) -> None:
        if isinstance(obj, torch.Tensor):
            data = obj.detach().cpu().contiguous()
            digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
            digest.update(data.view(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                if not (name == "" and key == "checksum"):
                    visit(obj[key], f"{name}/{key}")
        elif isinstance(obj, list | tuple):
            for i, item in enumerate(obj):
                visit(item, f"{name}/{i}")
        else:  # plain data (a step, a learning rate, the loss window): exact through pickle, so its repr is too
            digest.update(f"{name}={obj!r};".encode())

    visit(state, "")
    return digest.hexdigest()


def with_checksum(state: dict) -> dict:
    """The state to save, with the checksum `load_checkpoint` verifies."""
    return {**state, "checksum": tensor_checksum(state)}


def checkpoint_problem(state: object, step: int, shapes: dict[str, tuple] | None = None) -> str | None:
    """What makes a state torch.load read safely unfit to resume `step` from, or None: not a training checkpoint
    (a mapping with CHECKPOINT_KEYS and this step), a checksum that does not match its tensors (absent in
    checkpoints saved before checksums: those load as before), or model tensors whose names or shapes differ from
    `shapes` (the run's model, when given)."""
    if (
        not isinstance(state, dict)
        or not all(k in state for k in CHECKPOINT_KEYS)
        or not isinstance(state["model"], dict)
    ):
        return "is not a training checkpoint (no model, optimizer and random states)"
    if state["step"] != step:
        return f"is not a training checkpoint of step {step} (it says step {state['step']})"
    if "checksum" in state and state["checksum"] != tensor_checksum(state):
        return "does not match its checksum (its tensors were altered on disk)"
    if shapes is not None:
        found = {k: tuple(v.shape) for k, v in state["model"].items() if isinstance(v, torch.Tensor)}
        wrong = sorted(set(found) ^ set(shapes)) or [k for k in shapes if found[k] != shapes[k]]
        if wrong:
            name = wrong[0]
            return (f"is not a training checkpoint of this run's model (tensor {name}: "
                    f"{found.get(name, 'missing')} in the file, {shapes.get(name, 'none')} in the model)")  # fmt: skip
    return None


def load_checkpoint(
    run_dir: Path, step: int, device: str | torch.device = "cpu", shapes: dict[str, tuple] | None = None
) -> dict:
    """The state saved at `step` (model, optimizers, schedulers, rng, loss_window, step, config, metrics,
    checksum), checked by `checkpoint_problem` (with the model's tensor `shapes`, if given); a file that cannot
    be read, or that is no checkpoint of this run, raises DamagedCheckpoint naming it, one that cannot be read
    safely UnsafeCheckpoint."""
    path = checkpoint_path(run_dir, step)
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpoint(
            f"checkpoint {relative(path)} holds more than tensors and plain data{_refused_object(e)}; "
            "refused, since unpickling it could run code"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise DamagedCheckpoint(f"checkpoint {relative(path)} is damaged and cannot be read ({e})") from None
    problem = checkpoint_problem(state, step, shapes)
    if problem is not None:
        raise DamagedCheckpoint(f"checkpoint {relative(path)} {problem}")
    return state


def _refused_object(error: Exception) -> str:
    """` (<what torch refused>)` from torch's refusal, without its advice to load the file unsafely; "" if none."""
    lines = [line.strip() for line in str(error).splitlines()]
    refused = [line for line in lines if "global" in line.lower() and "weights_only" not in line]
    return f" ({refused[0]})" if refused else ""


class StaleMetrics(DamagedCheckpoint):
    """The metrics of a run that restarts from step 0 (no checkpoint was readable, or none was ever saved): kept
    aside, so that the new metrics.jsonl holds every step once."""

    state = "belongs to training that restarts from step 0"
    suffix = ".before-restart"


def aside_path(path: Path, suffix: str) -> Path:
    """<name><suffix>, or <name><suffix>.2, .3, ... if that is taken: nothing set aside before is overwritten."""
    aside, n = path.with_name(path.name + suffix), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}{suffix}.{n}")
    return aside


def set_aside(path: Path, problem: type[DamagedCheckpoint] = DamagedCheckpoint) -> Path:
    """Rename a damaged (or unsafe) checkpoint to <name>.damaged (<name>.refused), or stale metrics to
    <name>.before-restart: kept for inspection, no longer read; one warning line names both."""
    aside = aside_path(path, problem.suffix)
    os.replace(path, aside)
    warnings.warn(f"{relative(path)} {problem.state}: moved aside to {aside.name}", stacklevel=2)
    return aside


def model_shapes(model: torch.nn.Module) -> dict[str, tuple]:
    """{name: shape} of a model's state: what a checkpoint of its run must hold."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def last_good_checkpoint(
    run_dir: Path, device: str | torch.device = "cpu", shapes: dict[str, tuple] | None = None
) -> tuple[int, dict] | None:
    """(step, state) of the latest readable checkpoint of this run (of the model `shapes`, if given), setting
    aside every damaged, foreign or unsafe one after it; None if none."""
    for step in reversed(saved_steps(run_dir)):
        try:
            return step, load_checkpoint(run_dir, step, device, shapes)
        except DamagedCheckpoint as e:
            set_aside(checkpoint_path(run_dir, step), type(e))
    return None


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete the temp files a process killed while writing left in a run folder (call under the run lock:
    no other process writes checkpoints or metrics then). Returns what was removed."""
    run_dir = Path(run_dir)
    left = [*run_dir.glob("checkpoints/.*.tmp"), *run_dir.glob(".metrics.jsonl.*.tmp")]
    for path in left:
        path.unlink(missing_ok=True)
    return left


def metrics_path(run_dir: Path) -> Path:
    return Path(run_dir) / "metrics.jsonl"


def read_metrics(run_dir: Path) -> list[dict]:
    """The logged rows, in order. A torn last line (a full disk, a power cut while appending) is dropped with a
    warning naming the file; a bad line before the last is an error naming the file and line."""
    path = metrics_path(run_dir)
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{relative(path)} line {i + 1} is not JSON; the file is damaged") from None
            warnings.warn(f"{relative(path)}: dropped a torn last line (an interrupted write)", stacklevel=2)
    return rows


def append_metrics(run_dir: Path, row: dict) -> None:
    """Append one row; on a full device, DiskFull, and the file cut back to its rows before (no torn line)."""
    path, line = metrics_path(run_dir), (json.dumps(row) + "\n").encode()
    size = path.stat().st_size if path.exists() else 0
    try:
        with open(path, "ab") as f:
            f.write(line)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        with suppress(OSError):  # cutting a file back needs no space; if it fails, a torn line stays
            os.truncate(path, size)
        raise disk_full(path, len(line)) from None


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(metrics_path(run_dir), "".join(json.dumps(m) + "\n" for m in rows))


# ------------------------------------------------------------------------------------------------------ runs
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

    def verified(self) -> bool:
        """Finished, and its final checkpoint readable. A damaged or unsafe final checkpoint is set aside (so that
        training resumes from the last good one) and the run counts as unfinished; a torn last metrics row is put
        back from the final checkpoint, which keeps its own row (where the folder can be written)."""
        if not self.finished:
            return False
        last = self.steps[-1]
        try:
            state = load_checkpoint(self.dir, last, shapes=self.shapes)
        except DamagedCheckpoint as e:
            set_aside(checkpoint_path(self.dir, last), type(e))
            return False
        rows = self.metrics()
        if not any(m["step"] == last for m in rows) and state.get("metrics") is not None:  # a torn last row
            with suppress(OSError):  # a read-only store: the file stays as it is (its torn row dropped on reading)
                write_metrics(self.dir, metrics_until(rows, last, state["metrics"]))
        return True

    def metrics(self) -> list[dict]:
        return read_metrics(self.dir)

    @cached_property
    def shapes(self) -> dict[str, tuple]:
        """The tensor shapes of this run's model (built on the meta device, leaving torch's random state as it
        was): a checkpoint of another architecture or size is not this run's."""
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            return model_shapes(self.new_model())

    @cached_property
    def process(self) -> FactoredProcess:
        return process_of(self.config.data)

    def new_model(self) -> torch.nn.Module:
        """A freshly initialised model of this run's architecture (the init of the current torch seed)."""
        return build_model(self.config.model, self.process.model_vocab_size, self.config.data.seq_len + 1)

    def load_model(self, step: int | None = None, device: str | torch.device = "auto") -> torch.nn.Module:
        """The model at checkpoint `step` (default: the last), in eval mode, on `device`."""
        steps = self.steps
        step = steps[-1] if step is None else step
        if step not in steps:
            raise ValueError(f"step must be one of the checkpointed steps {steps[0]}..{steps[-1]}, got {step}")
        dev = pick_device(device) if isinstance(device, str) else device
        model = self.new_model().to(dev)
        model.load_state_dict(load_checkpoint(self.dir, step, dev, model_shapes(model))["model"])
        return model.eval()


def metrics_until(rows: list[dict], step: int, checkpoint_row: dict | None) -> list[dict]:
    """The metrics rows up to `step`, ending with the checkpoint's row (`checkpoint_row`, the last row logged up to
    that checkpoint; None in checkpoints written before it was kept there) when `rows` lost it."""
    kept = [m for m in rows if m["step"] <= step]
    if checkpoint_row is not None and not any(m["step"] == checkpoint_row["step"] for m in kept):
        kept.append(checkpoint_row)
    return kept


def run_dir_for(cfg: RunConfig, root: Path | None = None) -> Path:
    return (root or outputs_dir()) / "runs" / cfg.run_id


def read_config(path: Path) -> RunConfig:
    """The RunConfig in a run folder's config.json `path`; a file that is not one is a one-line ValueError naming
    it and saying what is wrong (the file is left as it is)."""
    try:
        return RunConfig.from_dict(json.loads(Path(path).read_text()))
    except json.JSONDecodeError as e:
        problem = f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
    except UnicodeDecodeError:
        problem = "not text (UTF-8)"
    except RecursionError:
        problem = "nested too deeply to be a run config"
    except IsADirectoryError:
        problem = "a folder, not a file"
    except ValueError as e:
        problem = str(e)
    raise ValueError(f"{relative(path)} is not a readable run config: {problem}; repair it or move its run folder away")


def open_run(cfg: RunConfig, root: Path | None = None) -> Run:
    """The run folder for cfg, created with its config.json if new; an existing folder must hold the same config."""
    path = run_dir_for(cfg, root)
    config_file = path / "config.json"
    if config_file.exists():
        stored = read_config(config_file)
        if stored.hash() != cfg.hash():  # the hash leaves out device and compile: they change speed, not results
            raise ValueError(f"{path} holds a different config; refusing to overwrite it")
    else:
        path.mkdir(parents=True, exist_ok=True)
        write_json(config_file, cfg.to_dict())
    return Run(path, cfg)


def finished_run(cfg: RunConfig, root: Path | None = None) -> Run | None:
    """The finished run of cfg if one is stored, else None; creates and trains nothing."""
    run = Run(run_dir_for(cfg, root), cfg)
    return run if (run.dir / "config.json").exists() and run.finished else None


@contextmanager
def run_lock(run_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold <run_dir>/.lock: at once if free, else after waiting up to `timeout` seconds (None: as long as it
    takes) for the process that holds it. An OS file lock, released when its holder exits, even by a crash."""
    lock = FileLock(Path(run_dir) / ".lock")
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


def remove_lock_file(run_dir: Path) -> None:
    """Delete a finished run's leftover .lock file where the folder can be written. Safe: nobody trains a finished
    run, so a process that still waits on the old file finds the run finished once it gets the lock, and trains
    nothing. In a read-only store (shared, archived) the file stays: loading a finished run writes nothing."""
    lock = Path(run_dir) / ".lock"
    if lock.exists() and os.access(run_dir, os.W_OK):
        with suppress(OSError):  # a read-only mount that os.access did not see: the leftover is harmless
            lock.unlink()


# ------------------------------------------------------------------------------------------------- summaries
def settings_hash(settings: dict) -> str:
    """8 hex digits naming a set of analysis settings (site, sizes, seeds)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


def summary_path(run: Run, name: str, settings: dict) -> Path:
    return run.dir / "summaries" / f"{name}-{settings_hash(settings)}.json"


def save_summary(run: Run, name: str, data: dict, settings: dict) -> Path:
    """Save a notebook's results for this run as summaries/<name>-<settings hash>.json, recording the settings
    (site, analysis sizes) they were computed with: results at other settings never overwrite each other."""
    path = summary_path(run, name, settings)
    path.parent.mkdir(exist_ok=True)
    write_json(path, {"name": name, "settings": settings, "results": data})
    return path


def load_summary(run: Run, name: str, settings: dict) -> dict | None:
    """The results `save_summary` saved under this name and these settings, or None (also for a damaged file,
    which `read_cache` sets aside)."""
    path = summary_path(run, name, settings)
    saved = read_cache(path, lambda d: isinstance(d, dict) and isinstance(d.get("results"), dict))
    return None if saved is None else saved["results"]


def read_cache(path: Path, valid: Callable[[object], bool]) -> object | None:
    """The JSON cached at `path`, or None when there is none. A file that is not what its reader expects (torn
    or empty JSON, or `valid` false: `[]` or a null entry where a dict is expected) is set aside as
    <name>.damaged, named in one warning line, and None returned, so that the result is computed again."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        damaged = not valid(data)
    except (ValueError, UnicodeDecodeError):  # torn or empty
        data, damaged = None, True
    if damaged:
        set_aside(path)
        return None
    return data


def cached_json(path: Path, compute: Callable[[], object], valid: Callable[[object], bool]) -> object:
    """The JSON value cached at `path` (`read_cache`), else `compute()`, written there atomically and returned."""
    data = read_cache(path, valid)
    if data is None:
        data = compute()
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, json.dumps(data))
    return data


def cached(run: Run, key: str, settings: dict, compute: Callable[[], dict]) -> dict:
    """A result of this run, computed once per `settings`: `load_summary(run, key, settings)`, else `compute()`,
    saved with `save_summary` and returned (a damaged summary is set aside and computed again)."""
    data = load_summary(run, key, settings)
    if data is None:
        data = compute()
        save_summary(run, key, data, settings)
    return data
