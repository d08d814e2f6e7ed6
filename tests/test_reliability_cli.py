"""The training command line under faults: Ctrl-C however it was started, run and outputs folders that are not
what they seem, repeated fields, and a help that lists what can be set."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from factored import paths, runs
from factored import train as train_mod
from factored.config import field_owners, make_config


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err), err
    assert err and err[-1].startswith("error: "), err
    return err[-1]


# --------------------------------------------------------------------------------------------------- Ctrl-C
def test_training_started_with_sigint_ignored_stops_on_it_in_one_line_and_resumes(tmp_path):
    # a script's background job (`python -m factored.train ... &`) inherits an ignored SIGINT
    env = {**os.environ, "FACTORED_OUTPUTS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cfg = make_config("smoke", steps=100_000)
    metrics = runs.metrics_path(runs.run_dir_for(cfg, tmp_path))
    cmd = [sys.executable, "-m", "factored.train", "--profile", "smoke", "--steps", "100000", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) > 12):
            time.sleep(0.2)
        assert metrics.exists(), "training never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(lines) == 2, err  # "training ... into ...", then the one line
    step = int(lines[-1].split("interrupted at step ")[1].split(";")[0])
    assert lines[-1] == f"interrupted at step {step}; run it again to resume" and step > 10
    # the signal may land after the step it names was logged (while it is saved), never before it began
    steps = [m["step"] for m in runs.read_metrics(metrics.parent)]
    assert steps == sorted(set(steps)) and steps[-1] <= step


# ----------------------------------------------------------------------------- folders that are not folders
def test_a_config_json_nested_too_deep_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    folder = runs.run_dir_for(make_config("smoke", steps=3), tmp_path)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    assert train_mod.main(["--profile", "smoke", "--steps", "3", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "config.json" in line and "nested" in line


def test_a_config_json_that_is_a_folder_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    folder = runs.run_dir_for(make_config("smoke", steps=3), tmp_path)
    (folder / "config.json").mkdir(parents=True)
    assert train_mod.main(["--profile", "smoke", "--steps", "3", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "config.json" in line and "a folder" in line


@pytest.mark.parametrize("link", ["a loop", "dangling", "a loop above it"])
def test_an_outputs_folder_behind_a_broken_symlink_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, link):
    if link == "dangling":
        (tmp_path / "out").symlink_to(tmp_path / "nowhere")
        outputs = tmp_path / "out"
    else:
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        outputs = tmp_path / "a" if link == "a loop" else tmp_path / "a" / "outputs"
    monkeypatch.setenv("FACTORED_OUTPUTS", str(outputs))
    with pytest.raises(ValueError, match="symbolic link"):
        paths.outputs_dir()
    assert train_mod.main(["--profile", "smoke", "--steps", "3", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert f"FACTORED_OUTPUTS={outputs} cannot be the outputs folder" in line
    assert ("does not exist" if link == "dangling" else "loop") in line


# -------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("args", [["--steps", "5", "--steps", "3"], ["--n-ctx", "5", "--n_ctx", "6"]])
def test_a_repeated_run_field_is_refused_in_one_line(tmp_path, monkeypatch, capsys, args):
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path))
    assert train_mod.main(["--profile", "smoke", *args]) == 2
    line = one_error_line(capsys)
    assert "given twice" in line and args[0].lstrip("-").replace("-", "_") in line
    assert not (tmp_path / "runs").exists()


def test_help_lists_the_run_fields_by_part(capsys):
    with pytest.raises(SystemExit):
        train_mod.main(["--help"])
    text = capsys.readouterr().out
    for part in ("data", "model", "train"):
        names = [n for n, p in field_owners().items() if p == part]
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{part}:"))
        assert all(n in text for n in names) and names[0] in line
    assert "--name value" not in text  # --name is the run's name, not a placeholder


def test_config_read_errors_name_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps([[[]]]))
    with pytest.raises(ValueError, match="config.json is not a readable run config"):
        runs.read_config(path)
