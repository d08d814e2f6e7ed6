"""Training: checkpoint schedule, a tiny end-to-end run, and exact resume after an interruption."""

import json
import math
import os
from contextlib import nullcontext

import pytest
import torch

from factored import parameters, runs, sampling
from factored import train as train_mod
from factored.config import make_config
from factored.models import pick_device
from factored.runs import open_run, saved_steps
from factored.train import checkpoint_steps, get_or_train


def test_checkpoint_schedule_is_the_authors_log_spacing():
    steps = checkpoint_steps(12_000)
    assert steps[:12] == list(range(11)) + [20]
    assert [s for s in steps if 480 <= s <= 1000] == [480, 490, 500, 600, 700, 800, 900, 1000]
    assert [s for s in steps if s > 1000] == [2000, 3000, 4000, 5000, 10_000, 12_000]
    assert checkpoint_steps(7) == list(range(8))
    assert checkpoint_steps(0) == [0]


def tiny(**overrides):
    base = dict(
        d_model=8,
        n_layers=1,
        n_heads=1,
        d_mlp=16,
        steps=25,
        batch_size=32,
        eval_batch_size=64,
        plateau_window=5,
        plateau_patience=0,
        lr=1e-2,
        device="cpu",
        init="gpt2",  # the init these sizes and step counts were calibrated with
    )
    return make_config("smoke", **{**base, **overrides})


def test_tiny_end_to_end_run_learns_and_records_everything(tmp_path):
    # big enough to beat the unigram plateau ln(432) in 300 steps: it has learned to use the context
    cfg = tiny(
        d_model=32,
        d_mlp=64,
        steps=300,
        batch_size=128,
        eval_batch_size=512,
        lr=3e-3,
        plateau_window=10,
        plateau_patience=10,
    )
    run = get_or_train(cfg, root=tmp_path, progress=False)
    assert run.finished and run.dir.name == cfg.run_id
    assert run.steps == checkpoint_steps(300)
    metrics = run.metrics()
    assert metrics[0]["step"] == 0 and metrics[-1]["step"] == 300
    assert metrics[-1]["eval_loss"] < math.log(432) - 0.003 < metrics[0]["eval_loss"]
    last = metrics[-1]
    assert last["gap"] == pytest.approx(last["eval_loss"] - last["eval_optimum"], abs=1e-9)
    # the held-out batch's own optimum is an unbiased draw around the exact expected optimum 5.92558
    assert last["eval_optimum"] == pytest.approx(5.92558, abs=0.05)
    assert all(m["eval_optimum"] == last["eval_optimum"] for m in metrics)  # one fixed held-out batch
    assert len(metrics[-1]["eval_loss_per_position"]) == 8
    assert json.loads((run.dir / "config.json").read_text()) == cfg.to_dict()
    state = torch.load(runs.checkpoint_path(run.dir, 300), weights_only=True)
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "step", "config", "loss_window"}
    assert state["config"] == cfg.to_dict()
    # a second call finds the finished run and trains nothing
    mtime = (run.dir / "metrics.jsonl").stat().st_mtime_ns
    assert get_or_train(cfg, root=tmp_path, progress=False).steps == run.steps
    assert (run.dir / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_resume_after_interrupt_matches_uninterrupted(tmp_path, monkeypatch):
    cfg = tiny(steps=25)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False)

    calls = {"n": 0}
    real_save = runs.atomic_save

    def save_then_die(obj, path):  # kill training right after the step-20 checkpoint is written
        real_save(obj, path)
        calls["n"] += 1
        if obj["step"] == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        get_or_train(cfg, root=tmp_path / "cut", progress=False)
    monkeypatch.setattr(runs, "atomic_save", real_save)
    cut_dir = open_run(cfg, root=tmp_path / "cut").dir
    assert saved_steps(cut_dir)[-1] == 20
    resumed = get_or_train(cfg, root=tmp_path / "cut", progress=False)

    a, b = whole.metrics(), resumed.metrics()
    assert [m["step"] for m in a] == [m["step"] for m in b]  # no duplicated or missing lines
    assert b[-1]["eval_loss"] == a[-1]["eval_loss"]  # bit-identical on CPU with the same seed
    assert b[-1]["train_loss"] == a[-1]["train_loss"]


def test_folder_with_other_config_is_not_overwritten(tmp_path):
    cfg = tiny()
    run = open_run(cfg, root=tmp_path)
    text = json.dumps({**cfg.to_dict(), "train": {**cfg.to_dict()["train"], "lr": 0.5}})
    (run.dir / "config.json").write_text(text)
    with pytest.raises(ValueError, match="holds a different config"):
        open_run(cfg, root=tmp_path)
    assert (run.dir / "config.json").read_text() == text


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"name": "canonical", "data": {', "not valid JSON (Expecting property name enclosed in double quotes"),
        ('{"name": "canonical"}', "'data' is missing"),
        ("[1, 2]", "a run config is a mapping with the keys ['name', 'data', 'model', 'train'], got a list"),
        ('{"name": "c", "data": {}, "model": {"width": 3}, "train": {}}', "unknown field 'width' in 'model'"),
        ('{"name": "c", "data": [], "model": {}, "train": {}}', "'data' must be a mapping of its fields, got a list"),
        ('{"name": "c", "data": {}, "model": {}, "train": {"lr": 5}}', "lr must be a number in (0, 1], got 5"),
    ],
)
def test_a_broken_config_file_is_one_line_naming_it_and_nothing_changes(tmp_path, text, problem):
    cfg = tiny()
    folder = runs.run_dir_for(cfg, tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(text)
    with pytest.raises(ValueError) as e:
        get_or_train(cfg, root=tmp_path, progress=False)
    message = str(e.value)
    assert str(folder / "config.json") in message and problem in message and len(message.splitlines()) == 1, message
    assert [p.name for p in folder.iterdir()] == ["config.json"] and (folder / "config.json").read_text() == text


def test_the_command_line_reports_a_broken_run_folder_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    folder = runs.run_dir_for(make_config("smoke", steps=5), tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("[1, 2]")
    assert train_mod.main(["--profile", "smoke", "--steps", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and str(folder / "config.json") in err[-1], err


def test_unavailable_device_is_a_clear_error():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available"):
            pick_device("cuda")
    assert pick_device("cpu").type == "cpu"


def test_an_unavailable_device_is_refused_before_a_run_folder_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    with pytest.raises(ValueError, match="device 'cuda' is not available here"):
        get_or_train(tiny(device="cuda"), root=tmp_path, progress=False)
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    assert train_mod.main(["--profile", "smoke", "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: device 'cuda' is not available here; choose 'auto' or 'cpu'"]
    assert not (tmp_path / "runs").exists()


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from factored.optim import cosine_factor

    assert [cosine_factor(s, 4, 20) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine_factor(12, 4, 20) == pytest.approx(0.5)  # half-way through the decay
    assert cosine_factor(20, 4, 20) == pytest.approx(0.0, abs=1e-12)
    values = [cosine_factor(s, 4, 20) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_cosine_run_ends_at_zero_lr_and_resumes_exactly(tmp_path):
    cfg = tiny(schedule="cosine", warmup_steps=5, steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    lrs = [m["lr"] for m in run.metrics()]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and max(lrs) == pytest.approx(cfg.train.lr, rel=0.05)
    # kill after step 10 (drop later checkpoints) and resume: the same final loss, bit for bit
    for step in run.steps:
        if step > 10:
            runs.checkpoint_path(run.dir, step).unlink()
    final = run.metrics()[-1]["eval_loss"]
    get_or_train(cfg, root=tmp_path, progress=False)
    assert run.metrics()[-1]["eval_loss"] == final


def test_checkpoint_every_adds_checkpoints():
    assert set(checkpoint_steps(3000, every=250)) >= set(range(0, 3001, 250)) | set(checkpoint_steps(3000))


def test_the_loss_is_logged_every_few_steps_and_three_times_a_decade():
    assert train_mod.log_steps(1500, 50) == [0, 1, 2, 5, 10, 20, *range(50, 1501, 50)]  # 100, 200, 500: multiples
    assert train_mod.log_steps(37, 50) == [0, 1, 2, 5, 10, 20, 37]  # and the last step, logged or not


def test_constant_schedule_warms_up_then_holds_and_beta2_reaches_adam(tmp_path):
    cfg = tiny(schedule="constant", warmup_steps=10, adam_beta2=0.95, steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    lrs = {m["step"]: m["lr"] for m in run.metrics()}
    assert lrs[5] == pytest.approx(cfg.train.lr * 6 / 10) and lrs[25] == pytest.approx(cfg.train.lr)
    state = runs.load_checkpoint(run.dir, 25)
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95)
    assert tiny().hash() == tiny(adam_beta2=0.999).hash()  # the default keeps every existing run's folder


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_checkpoint_is_set_aside_and_training_resumes_from_the_last_good_one(tmp_path):
    cfg = tiny(steps=25)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False)
    run = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    for step in run.steps:
        if step > 20:
            runs.checkpoint_path(run.dir, step).unlink()
    truncate(runs.checkpoint_path(run.dir, 20))  # the newest checkpoint of an interrupted run is torn
    with pytest.warns(UserWarning, match=r"step_0000020.pt is damaged: moved aside"):
        resumed = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    assert (run.dir / "checkpoints" / "step_0000020.pt.damaged").exists()
    assert resumed.finished and resumed.metrics()[-1]["eval_loss"] == whole.metrics()[-1]["eval_loss"]


def test_a_finished_run_with_a_damaged_final_checkpoint_retrains_its_last_segment(tmp_path):
    cfg = tiny(steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    final_loss = run.metrics()[-1]["eval_loss"]
    truncate(runs.checkpoint_path(run.dir, 25), keep=0.1)
    with pytest.raises(runs.DamagedCheckpoint, match=r"step_0000025.pt is damaged"):
        run.load_model(25)  # the analysis says which file is damaged
    with pytest.warns(UserWarning, match="damaged: moved aside"):
        again = get_or_train(cfg, root=tmp_path, progress=False)
    assert again.finished and again.load_model(25) is not None
    assert again.metrics()[-1]["eval_loss"] == final_loss


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_and_resume_proceeds(tmp_path):
    cfg = tiny(steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    for step in run.steps:
        if step > 20:
            runs.checkpoint_path(run.dir, step).unlink()
    with open(runs.metrics_path(run.dir), "a") as f:
        f.write('{"step": 26, "train_lo')  # a power cut in the middle of a line
    with pytest.warns(UserWarning, match=r"metrics.jsonl: dropped a torn last line"):
        resumed = get_or_train(cfg, root=tmp_path, progress=False)
    steps = [m["step"] for m in resumed.metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == 25
    (runs.metrics_path(run.dir)).write_text('{"step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not JSON"):
        resumed.metrics()


def test_leftover_lock_and_temp_files_are_cleaned_on_the_next_run(tmp_path):
    cfg = tiny(steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    (run.dir / ".lock").touch()  # filelock leaves its file behind after a release
    get_or_train(cfg, root=tmp_path, progress=False)  # finished: loads, and drops the stale lock file
    assert not (run.dir / ".lock").exists()
    runs.checkpoint_path(run.dir, 25).unlink()
    tmp = run.dir / "checkpoints" / ".step_0000025.pt.999.1.tmp"  # a kill during a save
    tmp.write_bytes(b"partial")
    get_or_train(cfg, root=tmp_path, progress=False)
    assert not tmp.exists() and run.finished


def test_the_command_line_trains_into_the_run_store_and_refuses_a_bad_field(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    assert train_mod.main(["--profile", "smoke", "--seed", "3", "--noise", "0.1", "--steps", "5", "--no-progress"]) == 0
    cfg = make_config("smoke", seed=3, noise=0.1, steps=5)
    assert cfg.run_id.startswith("eps0.1-") and runs.finished_run(cfg, tmp_path) is not None  # where notebooks look
    assert train_mod.main(["--profile", "smoke", "--nosie", "0.1"]) == 2
    assert "unknown config field 'nosie'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, values, model",
    [(["--d_model", "48"], {"d_model": 48}, dict(d_model=48, d_mlp=192)),  # the MLP follows the width, as in 05
     (["--arch", "lstm"], {"arch": "lstm"}, dict(arch="lstm", d_model=32, n_layers=2))],  # the authors' sizes
)  # fmt: skip
def test_the_command_line_trains_the_run_the_notebooks_load(args, values, model, tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    assert train_mod.main(["--profile", "smoke", *args, "--steps", "2", "--no-progress"]) == 0
    cfg = parameters.run_config({"profile": "smoke", "steps": 2, **values})  # notebooks' and sweeps' constructor
    assert {k: getattr(cfg.model, k) for k in model} == model
    assert runs.finished_run(cfg, tmp_path) is not None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="/dev/full (Linux) stands in for a full disk")
def test_a_full_disk_is_one_line_naming_the_folder_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path / "cut"))
    args = ["--profile", "smoke", "--steps", "12", "--no-progress"]
    whole = get_or_train(make_config("smoke", steps=12), root=tmp_path / "whole", progress=False)
    real_temp_path = runs._temp_path

    def full_at_step_10(path):  # the disk is full when the checkpoint of step 10 is written
        temp = real_temp_path(path)
        if path.name == "step_0000010.pt":
            temp.symlink_to("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
        return temp

    monkeypatch.setattr(runs, "_temp_path", full_at_step_10)
    assert train_mod.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    folder = runs.run_dir_for(make_config("smoke", steps=12), tmp_path / "cut")
    assert err[-1].startswith(f"error: no space left on the device of {folder / 'checkpoints'}: "), err
    assert "writing step_0000010.pt needs " in err[-1] and "Traceback" not in "\n".join(err)
    assert saved_steps(folder)[-1] == 9 and not list(folder.glob("checkpoints/.*"))  # no temp file left
    monkeypatch.setattr(runs, "_temp_path", real_temp_path)  # space freed
    assert train_mod.main(args) == 0
    assert runs.read_metrics(folder)[-1]["eval_loss"] == whole.metrics()[-1]["eval_loss"]


def test_the_command_line_refuses_an_outputs_folder_that_is_a_file_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "outputs").write_text("a file")
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path / "outputs"))
    assert train_mod.main(["--profile", "smoke", "--steps", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: FACTORED_OUTPUTS={tmp_path / 'outputs'} cannot be"), err
    assert (tmp_path / "outputs").read_text() == "a file"


def test_the_command_line_reads_1e_3_as_a_number_and_refuses_unreadable_values_in_one_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    assert train_mod.main(["--profile", "smoke", "--steps", "2", "--lr", "1e-3", "--no-progress"]) == 0
    assert runs.finished_run(make_config("smoke", steps=2, lr=0.001), tmp_path) is not None
    capsys.readouterr()
    marker = tmp_path / "code-ran"
    for value in ["[0.1", f"!!python/object/apply:os.system ['touch {marker}']"]:
        assert train_mod.main(["--profile", "smoke", "--noise", value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: noise: cannot read {value!r} ("), err
    assert not marker.exists()


def test_a_torn_metrics_row_of_the_checkpoint_resumed_from_is_restored(tmp_path):
    cfg = tiny(steps=25)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False).metrics()
    run = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    for step in run.steps:
        if step > 20:
            runs.checkpoint_path(run.dir, step).unlink()
    before = [m for m in run.metrics() if m["step"] <= 20]
    torn = json.dumps(before[-1])[:30]  # the row of step 20, the checkpoint resumed from, torn
    runs.metrics_path(run.dir).write_text("".join(json.dumps(m) + "\n" for m in before[:-1]) + torn)
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        resumed = get_or_train(cfg, root=tmp_path / "cut", progress=False).metrics()
    assert resumed[: len(before)] == before  # step 20's row is back as it was logged

    def timeless(rows):
        return [{k: v for k, v in m.items() if k != "tokens_per_s"} for m in rows]

    assert timeless(resumed) == timeless(whole)  # and every row as an uninterrupted run's


class Payload:
    """What a malicious checkpoint can hold: unpickling it runs a command (here, one that creates `marker`)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_cannot_be_loaded_safely_is_refused_set_aside_and_retrained(tmp_path):
    cfg = tiny(steps=25)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    final_loss = run.metrics()[-1]["eval_loss"]
    path, marker = runs.checkpoint_path(run.dir, 25), tmp_path / "code-ran"
    torch.save({**torch.load(path, weights_only=True), "payload": Payload(marker)}, path)
    with pytest.raises(runs.UnsafeCheckpoint) as refused:
        run.load_model(25)
    message = str(refused.value)
    assert "step_0000025.pt" in message and "could run code" in message and len(message.splitlines()) == 1
    assert "weights_only" not in message  # no advice to load an untrusted pickle
    with pytest.warns(UserWarning, match=r"step_0000025.pt cannot be loaded safely: moved aside to .*refused"):
        again = get_or_train(cfg, root=tmp_path, progress=False)
    assert (path.parent / "step_0000025.pt.refused").exists() and not marker.exists()
    assert again.finished and again.metrics()[-1]["eval_loss"] == final_loss


def test_muon_resume_after_interrupt_matches_uninterrupted(tmp_path):
    # Muon's momentum buffers are in the checkpoint: a resumed run ends exactly where an uninterrupted one does
    cfg = tiny(steps=25, optimizer="muon", muon_lr=2e-2, schedule="cosine", warmup_steps=3)
    whole = get_or_train(cfg, root=tmp_path / "whole", progress=False)
    run = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    for step in run.steps:
        if step > 12:
            runs.checkpoint_path(run.dir, step).unlink()
    resumed = get_or_train(cfg, root=tmp_path / "cut", progress=False)
    assert resumed.metrics()[-1]["eval_loss"] == whole.metrics()[-1]["eval_loss"]
    state = runs.load_checkpoint(resumed.dir, 25)
    assert state["muon_optimizer"]["state"] and state["muon_optimizer"]["param_groups"][0]["momentum"] == 0.95
    assert state["muon_scheduler"]["last_epoch"] == state["scheduler"]["last_epoch"] == 25


@pytest.mark.parametrize("arch", ["transformer", "rnn", "lstm", "gru"])
@pytest.mark.parametrize("compiled", [False, True], ids=["bf16", "bf16+compile"])
def test_the_accelerated_path_trains_every_architecture_on_the_cpu(tmp_path, arch, compiled):
    # what CUDA runs (bf16 autocast, torch.compile), forced on the CPU: one step changes the weights, finitely
    transformer = dict(n_heads=1, d_mlp=16, init="gpt2") if arch == "transformer" else {}
    cfg = make_config("smoke", arch=arch, d_model=8, n_layers=1, optimizer="muon", batch_size=16, eval_batch_size=32,
                      device="cpu", **transformer)  # fmt: skip
    session = train_mod.setup(cfg, tmp_path)
    session.forward, session.autocast = train_mod.speedups(session.model, session.device, compiled, accelerate=True)
    with session.autocast():
        assert session.forward(session.eval_inputs)[0].dtype == torch.bfloat16  # computed in bf16
    before = [p.detach().clone() for p in session.model.parameters()]
    loss = train_mod.train_step(session, *sampling.sample(session.run.process, 16, 8, seed=0))
    assert math.isfinite(loss) and all(p.dtype == torch.float32 for p in session.model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, session.model.parameters(), strict=True))
    assert train_mod.speedups(session.model, session.device, compiled) == (session.model, nullcontext)  # CPU default


def test_log_every_sets_the_evaluation_cadence_and_not_the_run(tmp_path):
    cfg = tiny(steps=25, log_every=10)
    assert cfg.hash() == tiny(steps=25).hash()  # bookkeeping: the same run folder
    run = get_or_train(cfg, root=tmp_path, progress=False)
    assert [m["step"] for m in run.metrics()] == [0, 1, 2, 5, 10, 20, 25]  # every 10 steps, 1-2-5 per decade, last
    other = get_or_train(tiny(steps=25), root=tmp_path / "b", progress=False)  # plateau_window 5
    assert [m["step"] for m in other.metrics()] == [0, 1, 2, 5, 10, 15, 20, 25]
    assert run.metrics()[-1]["eval_loss"] == other.metrics()[-1]["eval_loss"]  # the same training


def test_a_torn_last_metrics_row_of_a_finished_run_is_restored_when_it_is_loaded(tmp_path):
    cfg = tiny(steps=5)
    run = get_or_train(cfg, root=tmp_path, progress=False)
    rows = run.metrics()
    lines = runs.metrics_path(run.dir).read_text().splitlines(keepends=True)
    runs.metrics_path(run.dir).write_text("".join(lines[:-1]) + lines[-1][:30])  # the final row, torn
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        loaded = get_or_train(cfg, root=tmp_path, progress=False)
    assert loaded.metrics() == rows  # the final row is back, from the final checkpoint
    assert runs.metrics_path(run.dir).read_text() == "".join(lines)  # and the file whole again: no more warnings
