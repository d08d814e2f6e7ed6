"""The run store under faults: a restart from scratch, checkpoints that are not this run's or were corrupted, a
read-only store, and run folders or outputs folders that are not what they seem."""

import builtins
import errno
import io
import os
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from test_train import tiny, truncate

from factored import runs
from factored import train as train_mod
from factored.train import get_or_train


def steps_of(run) -> list[int]:
    return [m["step"] for m in run.metrics()]


# ------------------------------------------------------------------------------- a restart from scratch
def test_a_restart_from_scratch_rewrites_the_metrics_and_keeps_the_old_ones_aside(tmp_path):
    cfg = tiny(steps=12)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    old = runs.metrics_path(run.dir).read_text()
    for step in run.steps:  # no checkpoint readable: every one torn
        truncate(runs.checkpoint_path(run.dir, step), keep=0.3)
    with pytest.warns(UserWarning) as caught:
        again = get_or_train(cfg, root=tmp_path, progress=False)
    assert steps_of(again) == steps_of(whole)  # every step once
    assert again.metrics()[-1]["eval_loss"] == whole.metrics()[-1]["eval_loss"]
    aside = [p for p in run.dir.iterdir() if p.name.startswith("metrics.jsonl.")]
    assert len(aside) == 1 and aside[0].read_text() == old
    messages = [str(w.message) for w in caught]
    assert any("metrics.jsonl" in m and aside[0].name in m for m in messages), messages


def test_a_second_restart_keeps_both_old_metrics_files(tmp_path):
    cfg = tiny(steps=3)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    for _ in range(2):
        for step in run.steps:
            runs.checkpoint_path(run.dir, step).unlink()
        with pytest.warns(UserWarning, match="metrics.jsonl"):
            get_or_train(cfg, root=tmp_path, progress=False)
    assert len([p for p in run.dir.iterdir() if p.name.startswith("metrics.jsonl.")]) == 2
    assert steps_of(run) == [0, 1, 2, 3]


# ------------------------------------------------------------------- checkpoints that are not this run's
def _cut_to(run, step):
    for s in run.steps:
        if s > step:
            runs.checkpoint_path(run.dir, s).unlink()


@pytest.mark.parametrize("where", ["middle", "final"])
@pytest.mark.parametrize("fault", ["not a training checkpoint", "a tensor of another shape"])
def test_a_checkpoint_that_loads_but_is_not_this_runs_is_set_aside_and_training_resumes(tmp_path, where, fault):
    cfg = tiny(steps=25)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False)
    run = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    step = 20 if where == "middle" else 25
    if where == "middle":
        _cut_to(run, 20)
    path = runs.checkpoint_path(run.dir, step)
    if fault == "not a training checkpoint":
        torch.save({"hello": 1}, path)
    else:
        state = torch.load(path, weights_only=True)
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3, 5)
        torch.save(state, path)
    with pytest.warns(
        UserWarning, match=rf"step_00000{step}.pt is damaged: moved aside to step_00000{step}.pt.damaged"
    ):
        again = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    assert (path.parent / f"{path.name}.damaged").exists()
    assert again.finished and again.load_model() is not None
    assert again.metrics()[-1]["eval_loss"] == whole.metrics()[-1]["eval_loss"]
    assert steps_of(again) == steps_of(whole)


def test_loading_a_foreign_checkpoint_is_one_line_naming_it(tmp_path):
    run = get_or_train(tiny(steps=3), root=tmp_path, progress=False)
    torch.save({"hello": 1}, runs.checkpoint_path(run.dir, 2))
    with pytest.raises(runs.DamagedCheckpoint, match=r"step_0000002.pt is not a training checkpoint") as e:
        run.load_model(2)
    assert len(str(e.value).splitlines()) == 1


def flip_a_byte_of_tensor_data(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor record of a torch checkpoint (a zip archive)."""
    data = bytearray(path.read_bytes())
    record = max((i for i in zipfile.ZipFile(path).infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[record.header_offset + 26 : record.header_offset + 30])
    start = record.header_offset + 30 + name_len + extra_len
    data[start + record.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_checkpoint_fails_its_checksum_and_is_set_aside(tmp_path):
    cfg = tiny(steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    final_loss = run.metrics()[-1]["eval_loss"]
    path = runs.checkpoint_path(run.dir, 25)
    assert "checksum" in torch.load(path, weights_only=True)
    flip_a_byte_of_tensor_data(path)
    with pytest.raises(runs.DamagedCheckpoint, match=r"step_0000025.pt .*checksum"):
        run.load_model(25)
    with pytest.warns(UserWarning, match=r"step_0000025.pt is damaged: moved aside"):
        again = get_or_train(cfg, root=tmp_path, progress=False)
    assert again.finished and again.metrics()[-1]["eval_loss"] == final_loss


def test_a_checkpoint_written_before_checksums_still_loads(tmp_path):
    run = get_or_train(tiny(steps=3), root=tmp_path, progress=False)
    path = runs.checkpoint_path(run.dir, 3)
    state = torch.load(path, weights_only=True)
    del state["checksum"]
    torch.save(state, path)
    assert run.verified() and run.load_model(3) is not None


def test_checksums_change_nothing_a_run_computes(tmp_path):
    state = {"model": {"w": torch.arange(6.0).view(2, 3)}, "rng": {"data": torch.zeros(4, dtype=torch.uint8)}}
    assert runs.tensor_checksum(state) == runs.tensor_checksum({**state, "checksum": "x"})
    assert runs.tensor_checksum(state) != runs.tensor_checksum({**state, "model": {"w": torch.arange(6.0)}})


# ------------------------------------------------------------------------------------ a read-only store
@contextmanager
def read_only(root: Path):
    """Every write, create, rename or delete under `root` fails with EROFS, as on a read-only mount (the tests
    run as root, for whom file modes do not stop a write)."""
    root = str(Path(root).resolve())

    def inside(path) -> bool:
        return str(Path(os.fsdecode(path)).absolute()).startswith(root)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real = {name: getattr(os, name) for name in ("open", "unlink", "remove", "replace", "rename", "mkdir", "rmdir")}
    real_open = builtins.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def os_open(path, flags, *args, **kwargs):
        if flags & writes and inside(path):
            refuse(path)
        return real["open"](path, flags, *args, **kwargs)

    def py_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guard(name):
        def call(path, *args, **kwargs):
            if inside(path) or (args and isinstance(args[0], (str, os.PathLike)) and inside(args[0])):
                refuse(path)
            return real[name](path, *args, **kwargs)

        return call

    patched = {"open": os_open, **{name: guard(name) for name in real if name != "open"}}
    with pytest.MonkeyPatch.context() as mp:
        for name, fn in patched.items():
            mp.setattr(os, name, fn)
        mp.setattr(builtins, "open", py_open)
        mp.setattr(io, "open", py_open)
        yield


def test_a_finished_run_in_a_read_only_store_loads_without_writing(tmp_path, monkeypatch, capsys):
    cfg = tiny(steps=5)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    (run.dir / ".lock").touch()  # what filelock leaves behind
    rows = run.metrics()
    with read_only(tmp_path):
        loaded = get_or_train(cfg, root=tmp_path, progress=False)
        assert loaded.metrics() == rows and loaded.load_model() is not None
    assert (run.dir / ".lock").exists()  # untouched
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    args = ["--profile", "smoke", "--steps", "3", "--no-progress"]
    assert train_mod.main(args) == 0
    with read_only(tmp_path):
        assert train_mod.main(args) == 0, capsys.readouterr().err


def test_training_in_a_read_only_store_is_one_line_saying_the_folder_must_be_writable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    (tmp_path / "runs").mkdir()
    with read_only(tmp_path):
        assert train_mod.main(["--profile", "smoke", "--steps", "3", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and err[-1].startswith("error: ") and "read-only" in err[-1].lower()


def test_a_finished_run_with_a_torn_last_row_in_a_read_only_store_still_loads(tmp_path):
    cfg = tiny(steps=5)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    text = runs.metrics_path(run.dir).read_text()
    runs.metrics_path(run.dir).write_text(text[:-20])  # the final row, torn
    with read_only(tmp_path), pytest.warns(UserWarning, match="dropped a torn last line"):
        loaded = get_or_train(cfg, root=tmp_path, progress=False)
    assert loaded.finished and runs.metrics_path(run.dir).read_text() == text[:-20]  # nothing written
