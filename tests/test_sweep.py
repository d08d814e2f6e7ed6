"""Sweeps: grid validation, the local pool and Dask runners (outputs, skips on rerun, failures reported), the run lock
(two requests for one run train it once), and stopping (Ctrl-C, a killed runner, errors in one line)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import notebook_runs
import pytest
import yaml
from filelock import FileLock

from factored import across_runs, config, paths, runs, sweep, sweep_spec, train

ROOT = Path(__file__).resolve().parents[1]


def tiny_notebook(path: Path) -> Path:
    """A notebook with three parameters that fails for x < 0 and prints the torch thread budget its kernel got."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x: float = 0.0\nseed: int = 0\nlabel: str = ''")
    params.metadata["tags"] = ["parameters"]
    body = (
        "import os\n"
        "if x < 0:\n"
        "    raise ValueError(f'x must be >= 0, got {x}')\n"
        "print('OMP_NUM_THREADS', os.environ['OMP_NUM_THREADS'], 'x', x, 'seed', seed)"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook(tmp_path):
    return tiny_notebook(tmp_path / "tiny.ipynb")


@pytest.fixture(autouse=True)
def outputs(tmp_path, monkeypatch):
    """Every run and sweep output of these tests goes to tmp_path (kernels and pool workers inherit the env)."""
    monkeypatch.setenv("FACTORED_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def make_sweep(notebook: Path, grid, fixed=None, name="tiny") -> sweep_spec.Sweep:
    return sweep_spec.from_dict({"notebook": str(notebook), "grid": grid, "fixed": fixed or {}}, name)


def printed(path: Path) -> str:
    return notebook_runs.printed(nbformat.read(path, as_version=4))


# --- grids and their validation ---------------------------------------------------------------------------------


def test_points_cover_the_grid_in_order_with_fixed_values(notebook):
    s = make_sweep(notebook, {"x": [0.5, 1.0], "seed": [0, 1, 2]}, {"label": "a b"})
    pts = sweep_spec.points(s)
    assert [p.name for p in pts][:4] == ["x=0.5_seed=0", "x=0.5_seed=1", "x=0.5_seed=2", "x=1.0_seed=0"]
    assert len(pts) == 6 and pts[-1].parameters == {"label": "a b", "x": 1.0, "seed": 2}
    # a list of grids is the union of their products (values that only make sense together)
    union = make_sweep(notebook, [{"x": [0.5], "seed": [0, 1]}, {"label": ["rnn/64"], "seed": [0]}])
    assert [p.name for p in sweep_spec.validate(union)] == ["x=0.5_seed=0", "x=0.5_seed=1", "label=rnn-64_seed=0"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"notebook": "99_nothing", "grid": {"seed": [0]}}, "unknown notebook notebooks/99_nothing.ipynb"),
        ({"notebook": None, "grid": {"x": [1.0]}}, "missing key 'notebook'"),
        ({"grid": {"x": []}}, "grid axis 'x' must be a non-empty list of values, got []"),
        ({"grid": {"x": 1.0}}, "grid axis 'x' must be a non-empty list of values, got 1.0"),
        ({"grid": {}}, "each grid must be a non-empty mapping"),
        (
            {"grid": {"nosie": [0.1]}},
            "'nosie' is not a parameter of tiny.ipynb; its parameters are ['label', 'seed', 'x']",
        ),
        ({"grid": {"seed": [0.5]}}, "seed must be an integer (`seed: int` in tiny.ipynb), got 0.5"),
        ({"grid": {"x": ["high"]}}, "x must be a number (`x: float` in tiny.ipynb), got 'high'"),
        ({"grid": {"x": [1.0]}, "fixed": {"x": 2.0}}, "'x' is both a grid axis and fixed"),
        ({"grid": {"x": [1.0]}, "sweep": 1}, "unknown key 'sweep'"),
        ({"grid": [{"x": [1.0]}, {"x": [1.0]}]}, "the point x=1.0 comes up 2 times"),
        ({"grid": {"x": [[1, 2]]}}, "x values must be numbers, strings or booleans"),
    ],
)
def test_grid_errors_are_clear_and_come_before_anything_runs(notebook, outputs, spec, message):
    spec = {k: v for k, v in {"notebook": str(notebook), **spec}.items() if v is not None}
    with pytest.raises(ValueError) as e:
        sweep_spec.validate(sweep_spec.from_dict(spec, "bad"))
    assert str(e.value).startswith("sweep 'bad': ") and message in str(e.value)
    assert not (outputs / "sweeps").exists()


def test_run_config_values_are_checked_against_the_notebook_semantics():
    s = sweep_spec.from_dict(
        {"notebook": "02_training", "grid": {"seed": [0, -1]}, "fixed": {"profile": "smoke"}}, "seeds"
    )
    with pytest.raises(ValueError, match=r"point seed=-1: seed must be an integer in \[0, 2\*\*63\)"):
        sweep_spec.validate(s)
    s = sweep_spec.from_dict({"notebook": "02_training", "grid": {"profile": ["smoke", "huge"]}}, "profiles")
    with pytest.raises(ValueError, match="point profile=huge: profile must be one of"):
        sweep_spec.validate(s)
    # 0 means "the profile's size" in the notebooks: not an out-of-range d_model
    ok = sweep_spec.from_dict(
        {"notebook": "02_training", "grid": {"d_model": [0, 24]}, "fixed": {"profile": "smoke"}}, "ok"
    )
    assert len(sweep_spec.validate(ok)) == 2


def test_split_cores_never_oversubscribes():
    assert sweep.split_cores(9, cores=2) == (2, 1)  # one single-threaded point per core
    assert sweep.split_cores(1, cores=2) == (1, 2)  # a lone point gets every core
    assert sweep.split_cores(9, threads=2, cores=8) == (4, 2)
    assert sweep.split_cores(9, workers=3, cores=8) == (3, 2)
    with pytest.raises(ValueError, match="2 workers x 2 torch threads = 4 exceeds the 2 cores here"):
        sweep.split_cores(9, workers=2, threads=2, cores=2)
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        sweep.split_cores(9, workers=0, cores=2)


# --- running -------------------------------------------------------------------------------------------------------


def test_local_pool_runs_every_point_then_skips_them(notebook, outputs):
    s = make_sweep(notebook, {"x": [1.0, 2.0]}, {"seed": 7})
    ran = sweep.run(s, progress=False)
    assert [(r.name, r.status) for r in ran] == [("x=1.0", "done"), ("x=2.0", "done")]
    folder = outputs / "sweeps" / "tiny"
    assert sorted(p.name for p in folder.glob("*.ipynb")) == ["x=1.0.ipynb", "x=2.0.ipynb"]  # no partial left
    _, threads = sweep.split_cores(2)
    assert f"OMP_NUM_THREADS {threads} x 2.0 seed 7" in printed(folder / "x=2.0.ipynb")

    again = sweep.run(s, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert "2 points: 0 done, 2 skipped, 0 failed" in sweep.summary_table(again)

    folders = sweep.sweep_folders(outputs)
    assert folders[["sweep", "done", "failed"]].values.tolist() == [["tiny", 2, 0]]
    assert folders["point_minutes"][0] > 0 and folders["wall_minutes"][0] > 0

    # another fixed value would be mistaken for done under the same point names: refused
    with pytest.raises(ValueError, match="holds points run with"):
        sweep.run(make_sweep(notebook, {"x": [1.0, 2.0]}, {"seed": 8}), progress=False)


def test_a_failing_point_is_reported_and_the_other_completes(notebook, outputs, tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"notebook": str(notebook), "grid": {"x": [1.0, -1.0]}}))
    assert sweep.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "x=-1.0  failed" in out and "ValueError: x must be >= 0, got -1.0 (cell In [" in out
    assert "2 points: 1 done, 0 skipped, 1 failed" in out
    folder = outputs / "sweeps" / "tiny"
    assert (folder / "x=1.0.ipynb").exists() and not (folder / "x=-1.0.ipynb").exists()
    assert "x must be >= 0, got -1.0" in (folder / "x=-1.0.failed.txt").read_text()
    assert (folder / "x=-1.0.failed.ipynb").exists()

    # a rerun does only what is left: the done point is skipped, the failed one tried again
    assert sweep.main([str(path)]) == 1
    assert "2 points: 0 done, 1 skipped, 1 failed" in capsys.readouterr().out
    assert sweep.main([str(path), "--dry-run"]) == 0
    assert "failed before  x=-1.0" in capsys.readouterr().out


def test_a_relative_outputs_folder_holds_both_the_sweep_and_its_points_runs(notebook, tmp_path, monkeypatch):
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[-1].source = "from factored import paths\nprint('outputs', paths.outputs_dir())"  # where runs go
    nbformat.write(nb, notebook)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({"notebook": str(notebook), "grid": {"x": [1.0]}}))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # the user's working folder; kernels work in the notebook's
    monkeypatch.setenv("FACTORED_OUTPUTS", "relout")
    assert sweep.main([str(tmp_path / "tiny.yaml")]) == 0
    done = tmp_path / "work" / "relout" / "sweeps" / "tiny" / "x=1.0.ipynb"
    assert f"outputs {tmp_path / 'work' / 'relout'}" in printed(done)


def test_dask_local_cluster_runs_the_same_sweep(notebook, outputs):
    distributed = pytest.importorskip("distributed")
    s = make_sweep(notebook, {"x": [1.0, 2.0]})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ran = sweep.run(s, scheduler=cluster.scheduler_address, progress=False)
        assert [r.status for r in ran] == ["done", "done"]
        # two single-slot workers on one machine: each point gets half its cores
        threads = max(1, sweep.available_cores() // 2)
        assert f"OMP_NUM_THREADS {threads} x 1.0" in printed(outputs / "sweeps" / "tiny" / "x=1.0.ipynb")
        again = sweep.run(s, scheduler=cluster.scheduler_address, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_a_real_notebook_at_smoke_trains_one_run_per_point(outputs):
    s = sweep_spec.from_dict(
        {"notebook": "02_training", "grid": {"seed": [0, 1]}, "fixed": {"profile": "smoke", "compare_target": False}},
        "training_seeds",
    )
    ran = sweep.run(s, progress=False)
    assert [r.status for r in ran] == ["done", "done"], sweep.summary_table(ran)
    trained = across_runs.finished_runs(outputs)
    assert sorted(r.config.train.seed for r in trained) == [0, 1]


def test_the_committed_sweeps_match_their_notebooks():
    files = sorted(paths.SWEEPS_DIR.glob("*.yaml"))
    assert files, "no sweep files in params/sweeps"
    for path in files:
        s = sweep_spec.load(path)
        pts = sweep_spec.validate(s)
        assert len(pts) >= 2, path.name


# --- the run lock -------------------------------------------------------------------------------------------------


def tiny_config(**overrides):
    base = dict(d_model=8, n_layers=1, n_heads=1, d_mlp=16, steps=5, batch_size=16, eval_batch_size=32)
    return config.make_config("smoke", plateau_window=5, device="cpu", **{**base, **overrides})


REQUEST = """
import json, sys, time
from pathlib import Path
from factored import train
from factored.config import RunConfig

cfg, root, log = RunConfig.from_dict(json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
real_train = train.train

def counted_train(*args, **kwargs):
    with log.open("a") as f:
        f.write("trained\\n")
    time.sleep(1.0)  # hold the lock a while
    return real_train(*args, **kwargs)

train.train = counted_train
(root / f"ready-{sys.argv[4]}").touch()
while len(list(root.glob("ready-*"))) < 2:  # both processes ask at the same moment
    time.sleep(0.01)
print(train.get_or_train(cfg, root=root, progress=False).finished)
"""


def test_two_concurrent_requests_for_one_run_train_it_once(tmp_path):
    cfg, log = tiny_config(), tmp_path / "trained.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REQUEST, json.dumps(cfg.to_dict()), str(tmp_path), str(log), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["True", "True"]
    assert log.read_text() == "trained\n"
    assert sum("waiting for another process to finish training" in err for _, err in outs) == 1
    run = runs.open_run(cfg, tmp_path)
    assert [m["step"] for m in run.metrics()].count(0) == 1  # one training wrote the metrics


def test_a_held_lock_times_out_with_a_clear_message_but_a_finished_run_loads_at_once(tmp_path):
    cfg = tiny_config(seed=3)
    path = runs.run_dir_for(cfg, tmp_path)
    path.mkdir(parents=True)
    with FileLock(path / ".lock"):  # another process is training this run
        with pytest.raises(TimeoutError, match=r"is being trained by another process .*gave up after 0.2 s"):
            train.get_or_train(cfg, root=tmp_path, progress=False, timeout=0.2)
    run = train.get_or_train(cfg, root=tmp_path, progress=False)
    with FileLock(path / ".lock"):  # timeout 0: a lock still held would raise, a finished run never waits for it
        assert train.get_or_train(cfg, root=tmp_path, progress=False, timeout=0).finished
    assert run.finished


# --- stopping: Ctrl-C, a killed runner, errors in one line -----------------------------------------------------


def sleepy_notebook(path: Path) -> Path:
    """A notebook that records its kernel's pid and papermill's (its parent) in <marks>/x=<x>.json, then sleeps x s."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x: float = 0.0\nmarks: str = ''")
    params.metadata["tags"] = ["parameters"]
    body = (
        "import json, os, pathlib, time\n"
        "pids = {'kernel': os.getpid(), 'papermill': os.getppid()}\n"
        "pathlib.Path(marks, f'x={x}.json').write_text(json.dumps(pids))\n"
        "time.sleep(x)"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may wait for a reaper that never comes)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@contextlib.contextmanager
def sleepy_sweep(tmp_path, ignored=()):
    """A sweep runner (`python -m factored.sweep`, one worker) busy with a 120 s point, a 1 s point queued behind
    it; yields (runner, the busy point's pids: worker, papermill, kernel, its marks folder). The runner starts with
    the signals `ignored` ignored (as a background job of a shell script starts with SIGINT ignored), the others
    at their default. Whatever of it is still alive at the end is killed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = {"notebook": str(sleepy_notebook(tmp_path / "sleepy.ipynb")), "grid": {"x": [120.0, 1.0]}}
    (tmp_path / "sleepy.yaml").write_text(yaml.safe_dump({**spec, "fixed": {"marks": str(marks)}}))
    cmd = [sys.executable, "-m", "factored.sweep", str(tmp_path / "sleepy.yaml"), "--workers", "1"]
    env = {**os.environ, "TQDM_DISABLE": "1"}  # no progress bar on stderr

    def dispositions():  # set here, whatever the shell that started the tests left (it may ignore SIGINT)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)

    runner = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              preexec_fn=dispositions)  # fmt: skip
    pids = {}
    try:
        busy = marks / "x=120.0.json"
        assert wait_for(busy.exists, 240), "the first point's kernel never started"
        time.sleep(0.2)  # the file is written in one call; let it land
        pids = json.loads(busy.read_text())
        pids["worker"] = parent_of(pids["papermill"])
        yield runner, pids, marks
    finally:
        for pid in [runner.pid, *pids.values()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        runner.communicate()


def signal_until_it_exits(process: subprocess.Popen, sig: int, every: float, timeout: float = 90) -> str:
    """Send `sig` to `process`, again every `every` seconds (None: once) until it exits; its stderr."""
    end = time.monotonic() + timeout  # seconds when idle; generous for a loaded 2-core machine
    os.kill(process.pid, sig)
    while every is not None and process.poll() is None and time.monotonic() < end:
        time.sleep(every)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
    return process.communicate(timeout=max(end - time.monotonic(), 1))[1]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_ctrl_c_stops_the_sweep_leaves_the_partial_notebook_and_exits_130(tmp_path, outputs):
    with sleepy_sweep(tmp_path) as (runner, pids, marks):
        err = signal_until_it_exits(runner, signal.SIGINT, every=0.02)  # Ctrl-C, and again while it cleans up
        assert runner.returncode == 130
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "interrupted" in lines[0] and "1 stopped" in lines[0], err
        assert wait_for(lambda: not any(alive(p) for p in pids.values()), 10), pids  # worker, papermill, kernel
        time.sleep(2)
        assert not (marks / "x=1.0.json").exists()  # the queued point never started
    folder = outputs / "sweeps" / "sleepy"
    assert sorted(p.name for p in folder.glob("*x=*")) == [".x=120.0.partial.ipynb", "x=120.0.lock"]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_runner_started_with_signals_ignored_still_stops_on_sigint_and_sigterm(tmp_path, outputs, sig, status):
    # `python -m factored.sweep s.yaml &` in a script starts with SIGINT ignored; a supervisor may ignore SIGTERM
    with sleepy_sweep(tmp_path, ignored=(signal.SIGINT, signal.SIGTERM)) as (runner, pids, marks):
        err = signal_until_it_exits(runner, sig, every=None)
        assert runner.returncode == status, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and f"interrupted ({sig.name})" in lines[0] and "1 stopped" in lines[0], err
        assert wait_for(lambda: not any(alive(p) for p in pids.values()), 10), pids  # worker, papermill, kernel
        assert not (marks / "x=1.0.json").exists()  # the queued point never started
    assert (outputs / "sweeps" / "sleepy" / ".x=120.0.partial.ipynb").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_pool_dies_with_a_killed_runner(tmp_path, outputs):
    with sleepy_sweep(tmp_path) as (runner, pids, marks):
        os.kill(runner.pid, signal.SIGKILL)
        assert wait_for(lambda: not any(alive(p) for p in pids.values()), 10), pids  # worker, papermill, kernel
        time.sleep(2)
        assert not (marks / "x=1.0.json").exists()  # the queued point never started


def test_a_malformed_sweep_file_is_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("notebook: 04_noise\ngrid:\n  seed: [0, 1\nfixed: {profile: laptop}\n")
    assert sweep.main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "not valid YAML" in err and "line 4" in err, err


@pytest.mark.parametrize("blocked", ["read-only folder", "file in the way"])
def test_an_unwritable_outputs_folder_is_one_line_naming_it(notebook, outputs, tmp_path, capsys, blocked):
    if blocked == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        outputs.mkdir()
        outputs.chmod(0o555)
    else:
        outputs.write_text("not a folder")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"notebook": str(notebook), "grid": {"x": [1.0]}}))
    try:
        assert sweep.main([str(path)]) == 2
    finally:
        if outputs.is_dir():
            outputs.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(outputs) in err, err
