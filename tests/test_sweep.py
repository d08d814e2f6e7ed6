"""Sweeps: grid validation, the local pool and Dask runners (outputs, skips on rerun, failures reported), the run lock
(two requests for one run train it once), and the collection of results from run folders."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import notebook_runs
import numpy as np
import pytest
import yaml
from filelock import FileLock

from factored import config, runs, sweep

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


def make_sweep(notebook: Path, grid, fixed=None, name="tiny") -> sweep.Sweep:
    return sweep.from_dict({"notebook": str(notebook), "grid": grid, "fixed": fixed or {}}, name)


def printed(path: Path) -> str:
    return notebook_runs.printed(nbformat.read(path, as_version=4))


# --- grids and their validation ---------------------------------------------------------------------------------


def test_points_cover_the_grid_in_order_with_fixed_values(notebook):
    s = make_sweep(notebook, {"x": [0.5, 1.0], "seed": [0, 1, 2]}, {"label": "a b"})
    pts = sweep.points(s)
    assert [p.name for p in pts][:4] == ["x=0.5_seed=0", "x=0.5_seed=1", "x=0.5_seed=2", "x=1.0_seed=0"]
    assert len(pts) == 6 and pts[-1].parameters == {"label": "a b", "x": 1.0, "seed": 2}
    # a list of grids is the union of their products (values that only make sense together)
    union = make_sweep(notebook, [{"x": [0.5], "seed": [0, 1]}, {"label": ["rnn/64"], "seed": [0]}])
    assert [p.name for p in sweep.validate(union)] == ["x=0.5_seed=0", "x=0.5_seed=1", "label=rnn-64_seed=0"]


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
        sweep.validate(sweep.from_dict(spec, "bad"))
    assert str(e.value).startswith("sweep 'bad': ") and message in str(e.value)
    assert not (outputs / "sweeps").exists()


def test_run_config_values_are_checked_against_the_notebook_semantics():
    s = sweep.from_dict({"notebook": "02_training", "grid": {"seed": [0, -1]}, "fixed": {"profile": "smoke"}}, "seeds")
    with pytest.raises(ValueError, match=r"point seed=-1: seed must be an integer in \[0, 2\*\*63\)"):
        sweep.validate(s)
    s = sweep.from_dict({"notebook": "02_training", "grid": {"profile": ["smoke", "huge"]}}, "profiles")
    with pytest.raises(ValueError, match="point profile=huge: profile must be one of"):
        sweep.validate(s)
    # 0 means "the profile's size" in the notebooks: not an out-of-range d_model
    ok = sweep.from_dict({"notebook": "02_training", "grid": {"d_model": [0, 24]}, "fixed": {"profile": "smoke"}}, "ok")
    assert len(sweep.validate(ok)) == 2


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
    results = sweep.run(s, progress=False)
    assert [(r.name, r.status) for r in results] == [("x=1.0", "done"), ("x=2.0", "done")]
    folder = outputs / "sweeps" / "tiny"
    assert sorted(p.name for p in folder.glob("*.ipynb")) == ["x=1.0.ipynb", "x=2.0.ipynb"]  # no partial left
    _, threads = sweep.split_cores(2)
    assert f"OMP_NUM_THREADS {threads} x 2.0 seed 7" in printed(folder / "x=2.0.ipynb")

    start = time.perf_counter()
    again = sweep.run(s, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"] and time.perf_counter() - start < 10
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


def test_dask_local_cluster_runs_the_same_sweep(notebook, outputs):
    distributed = pytest.importorskip("distributed")
    s = make_sweep(notebook, {"x": [1.0, 2.0]})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        results = sweep.run(s, scheduler=cluster.scheduler_address, progress=False)
        assert [r.status for r in results] == ["done", "done"]
        # two single-slot workers on one machine: each point gets half its cores
        threads = max(1, sweep.available_cores() // 2)
        assert f"OMP_NUM_THREADS {threads} x 1.0" in printed(outputs / "sweeps" / "tiny" / "x=1.0.ipynb")
        again = sweep.run(s, scheduler=cluster.scheduler_address, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]


def test_a_real_notebook_at_smoke_trains_one_run_per_point(outputs):
    s = sweep.from_dict(
        {"notebook": "02_training", "grid": {"seed": [0, 1]}, "fixed": {"profile": "smoke"}}, "training_seeds"
    )
    results = sweep.run(s, progress=False)
    assert [r.status for r in results] == ["done", "done"], sweep.summary_table(results)
    trained = sweep.finished_runs(outputs)
    assert sorted(r.config.train.seed for r in trained) == [0, 1]


def test_the_committed_sweeps_match_their_notebooks():
    files = sorted(sweep.SWEEPS_DIR.glob("*.yaml"))
    assert files, "no sweep files in params/sweeps"
    for path in files:
        s = sweep.load(path)
        pts = sweep.validate(s)
        assert len(pts) >= 2, path.name


def test_the_budget_comes_from_the_sweep_files_unless_given(tmp_path):
    (tmp_path / "a.yaml").write_text("notebook: 04_noise\ngrid: {seed: [0]}\nfixed: {profile: laptop, steps: 1500}\n")
    (tmp_path / "b.yaml").write_text("notebook: 05_architectures\ngrid: {seed: [0]}\nfixed: {profile: laptop}\n")
    assert sweep.sweep_budget("laptop", sweeps_dir=tmp_path).train.steps == 1500
    assert sweep.sweep_budget("laptop", 300, sweeps_dir=tmp_path).train.steps == 300
    assert sweep.sweep_budget("smoke", sweeps_dir=tmp_path) == config.make_config("smoke")  # no sweep at smoke
    (tmp_path / "c.yaml").write_text("notebook: 04_noise\ngrid: {seed: [0]}\nfixed: {profile: laptop, steps: 900}\n")
    with pytest.raises(ValueError, match=r"train for \[900, 1500\] steps at profile laptop"):
        sweep.sweep_budget("laptop", sweeps_dir=tmp_path)


# --- the run lock -------------------------------------------------------------------------------------------------


def tiny_config(**overrides):
    base = dict(d_model=8, n_layers=1, n_heads=1, d_mlp=16, steps=5, batch_size=16, eval_batch_size=32)
    return config.make_config("smoke", plateau_window=5, device="cpu", **{**base, **overrides})


REQUEST = """
import json, sys, time
from pathlib import Path
from factored import runs
from factored.config import RunConfig

cfg, root, log = RunConfig.from_dict(json.loads(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
real_train = runs.train

def counted_train(*args, **kwargs):
    with log.open("a") as f:
        f.write("trained\\n")
    time.sleep(1.0)  # hold the lock a while
    return real_train(*args, **kwargs)

runs.train = counted_train
(root / f"ready-{sys.argv[4]}").touch()
while len(list(root.glob("ready-*"))) < 2:  # both processes ask at the same moment
    time.sleep(0.01)
print(runs.get_or_train(cfg, root=root, progress=False).finished)
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
            runs.get_or_train(cfg, root=tmp_path, progress=False, timeout=0.2)
    run = runs.get_or_train(cfg, root=tmp_path, progress=False)
    with FileLock(path / ".lock"):
        start = time.perf_counter()
        assert runs.get_or_train(cfg, root=tmp_path, progress=False, timeout=0).finished
        assert time.perf_counter() - start < 1
    assert run.finished


# --- collecting results ------------------------------------------------------------------------------------------


def test_seed_interval_is_the_student_t_interval():
    mean, low, high = sweep.seed_interval([10, 12, 14])
    assert mean == 12 and math.isclose(high - mean, 4.302652729911275 * 2 / math.sqrt(3))
    assert math.isclose(mean - low, high - mean)
    mean, low, high = sweep.seed_interval([7])
    assert mean == 7 and math.isnan(low) and math.isnan(high)


def test_collect_reads_finished_runs_of_one_budget(tmp_path):
    ref = tiny_config()
    for noise, seed in [(0.0, 0), (0.0, 1), (0.5, 0)]:
        runs.get_or_train(tiny_config(noise=noise, seed=seed), root=tmp_path, progress=False)
    other = runs.get_or_train(tiny_config(steps=6), root=tmp_path, progress=False)  # another budget
    found = sweep.finished_runs(tmp_path)
    assert len(found) == 4
    selected = [r for r in found if sweep.same_budget(r.config, ref)]
    assert other.dir not in [r.dir for r in selected] and len(selected) == 3
    acfg = config_smoke_analysis()
    per_step, per_run = sweep.collect(selected, ref, acfg)
    assert len(per_run) == 3 and set(per_step["step"]) == set(range(6))
    assert set(per_run["model"]) == {"transformer 8x1"}
    table = sweep.interval_table(per_run, "noise")
    assert list(table["noise"]) == [0.0, 0.5] and list(table["seeds"]) == [2, 1]
    zero = per_run[per_run["noise"] == 0.0]["final_dims95"]
    assert np.isclose(table["mean"][0], zero.mean())


def config_smoke_analysis():
    from factored import probing

    return probing.smoke_sized(probing.AnalysisConfig(), "smoke")


def test_model_labels_name_what_differs_from_the_reference():
    ref = config.make_config("laptop")
    assert sweep.model_label(ref, ref) == "transformer 120x4"
    lstm = config.from_parameters("laptop", arch="lstm", d_model=32, n_layers=2)
    assert sweep.model_label(lstm, ref) == "LSTM 32x2"
    wide = config.from_parameters("laptop", d_model=480, d_mlp=1920, n_ctx=33)
    assert sweep.model_label(wide, ref) == "transformer 480x4, n_ctx 33"
    assert sweep.model_label(config.make_config("laptop", init="gpt2"), ref) == "transformer 120x4, init gpt2"


def test_factor_scaling_sets_measured_dims_beside_both_predictions():
    import pandas as pd

    finals = pd.DataFrame(
        {"n_mess3": [0, 1, 2, 2], "init_dims95": [89, 8, 9, 9], "final_dims95": [18, 3, 5, 7],
         "min_dims95": [9, 2, 4, 4], "gap": [0.1, 0.2, 0.3, 0.5], "r2": [0.9, 0.8, 0.7, 0.5]}
    )  # fmt: skip
    table = sweep.factor_scaling(finals, config_smoke_analysis(), seq_len=8)
    assert list(table["N"]) == [1, 2] and list(table["seeds"]) == [1, 2]  # the paper's process (0) is not an N
    assert list(table["factored"]) == [2, 4] and list(table["joint"]) == [2, 8]
    assert table["final_dims95"][1] == 6 and np.isclose(table["gap"][1], 0.4)  # means over seeds
    # the true beliefs of one factor: concatenation and outer product are the same vectors
    assert table["beliefs_factored"][0] == table["beliefs_joint"][0] <= 2
    assert 3 <= table["beliefs_factored"][1] <= 4 < table["beliefs_joint"][1] <= 8


def test_difference_table_is_welchs_test_against_the_reference():
    import pandas as pd
    from scipy import stats

    finals = pd.DataFrame({"eps": [0, 0, 0, 0.5, 0.5, 0.5, 0.2], "final_dims95": [10, 12, 14, 20, 22, 24, 11]})
    table = sweep.difference_table(finals, "eps", 0).set_index("eps")
    assert list(table.index) == [0.2, 0.5]
    row = table.loc[0.5]
    assert row["seeds"] == 3 and row["reference_mean"] == 12 and row["difference"] == 10
    t = 10 / math.sqrt(4 / 3 + 4 / 3)  # equal variances 4 and 3 seeds each: Welch's df = 4
    assert math.isclose(row["p_welch"], 2 * stats.t.sf(t, 4), rel_tol=1e-9)
    assert math.isnan(table.loc[0.2, "p_welch"])  # one seed: no test


def test_condition_table_counts_the_seeds_still_falling_at_the_end():
    import pandas as pd

    finals = pd.DataFrame(
        {"eps": [0, 0, 0.5, 0.5], "init_dims95": [89, 87, 89, 89], "final_dims95": [9, 10, 80, 84],
         "min_dims95": [8, 10, 80, 84], "min_step": [600, 1000, 1000, 1000], "final_step": [1000] * 4,
         "gap": [0.1, 0.1, 0.03, 0.05], "r2": [0.3, 0.4, 0.2, 0.2]}
    )  # fmt: skip
    table = sweep.condition_table(finals, "eps")
    assert list(table["still_falling"]) == [1, 2] and list(table["init"]) == [88, 89]
    assert list(table["collapse"]) == [9, 82] and table.loc[0.5, "seeds' range"] == "80-84"


def test_difference_table_tests_against_a_reference_without_spread_quietly():
    import warnings

    import pandas as pd

    finals = pd.DataFrame({"eps": [0, 0, 0, 0.2, 0.2, 0.2], "final_dims95": [9, 9, 9, 8, 12, 13]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every seed of the reference at 9: a valid Welch test, and no warning
        row = sweep.difference_table(finals, "eps", 0).iloc[0]
    assert row["difference"] == 2 and 0 < row["p_welch"] < 1
