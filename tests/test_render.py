"""Executing a notebook into a target never leaves it half-written: a failed run keeps the old target."""

import signal
import subprocess
import sys
import time

import nbformat
import pytest
from notebook_runs import NOTEBOOKS

from factored import render


def tiny_notebook(path, source: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x: int = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(source)]  # fmt: skip
    nbformat.write(nb, path)
    return path


def test_a_failing_run_leaves_the_previous_target_and_keeps_the_failed_copy(tmp_path, outputs):
    target = tmp_path / "executed" / "01_theory.ipynb"
    target.parent.mkdir()
    target.write_text("a good executed notebook")
    status = render.main([str(NOTEBOOKS / "01_theory.ipynb"), str(target), "-p", "seed", "-1"])
    assert status == 1
    assert target.read_text() == "a good executed notebook"
    failed = nbformat.read(render.failed_path(target), as_version=4)
    assert any("seed must be an integer" in str(o) for c in failed.cells for o in c.get("outputs", []))
    assert not render.partial_path(target).exists()


def test_a_finished_run_replaces_the_target_and_says_only_what_it_is(tmp_path, outputs):
    notebook = tiny_notebook(tmp_path / "nb.ipynb", "print(x * 2)")
    target = tmp_path / "out" / "nb.ipynb"
    assert render.main([str(notebook), str(target), "-p", "x", "21"]) == 0
    nb = nbformat.read(target, as_version=4)
    assert "42" in nb.cells[-1].outputs[0]["text"]
    assert "formats" not in nb.metadata.get("jupytext", {})  # a copy elsewhere is not paired with a .py
    assert "output_path" not in nb.metadata["papermill"] and "widgets" not in nb.metadata


def test_an_interrupted_run_is_exit_130_and_leaves_the_target(tmp_path, outputs, monkeypatch):
    target = tmp_path / "nb.ipynb"
    target.write_text("old")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "execute", interrupted)
    assert render.main([str(tiny_notebook(tmp_path / "src.ipynb", "pass")), str(target)]) == 130
    assert target.read_text() == "old"


@pytest.mark.parametrize("name", ["out.ipynb", "04_noise-eps0.2.ipynb"])
def test_only_the_project_notebooks_are_paired(name):
    from jupytext.config import load_jupytext_config

    assert load_jupytext_config(str(NOTEBOOKS)).default_formats(str(NOTEBOOKS / name)) is None
    assert nbformat.read(NOTEBOOKS / "04_noise.ipynb", as_version=4).metadata.jupytext.formats == "ipynb,py:percent"


def test_a_relative_outputs_folder_means_the_same_folder_in_the_notebook_s_kernel(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    notebook = tiny_notebook(
        tmp_path / "notebooks" / "nb.ipynb", "from factored import paths\nprint(paths.outputs_dir())"
    )
    monkeypatch.chdir(tmp_path)  # the kernel works in notebooks/, the user started here
    monkeypatch.setenv("FACTORED_OUTPUTS", "relout")
    assert render.main([str(notebook), "out.ipynb"]) == 0
    printed = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert printed.strip() == str(tmp_path / "relout")


def test_command_line_values_read_numbers_as_papermill_does_and_bad_ones_are_one_line(tmp_path, monkeypatch, capsys):
    given = {}
    monkeypatch.setattr(render, "execute", lambda notebook, target, parameters, **_: given.update(parameters))
    notebook, target = str(tmp_path / "nb.ipynb"), str(tmp_path / "out.ipynb")
    assert render.main([notebook, target, "-p", "lr", "1e-3", "-p", "arch", "lstm", "-p", "seed", "2"]) == 0
    assert given == {"lr": 0.001, "arch": "lstm", "seed": 2}
    marker = tmp_path / "code-ran"
    for value in ["[0.1", f"!!python/object/apply:os.system ['touch {marker}']"]:
        assert render.main([notebook, target, "-p", "noise", value]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: noise: cannot read {value!r} ("), err
    assert render.main([notebook, target, "-y", "[1, 2]"]) == 2
    assert "--parameters-yaml must be a mapping" in capsys.readouterr().err
    assert not marker.exists()


def test_a_render_started_with_sigint_ignored_still_stops_on_it(tmp_path):
    # a script's background job (`python -m factored.render ... &`) inherits an ignored SIGINT
    mark = tmp_path / "started"
    notebook = tiny_notebook(tmp_path / "nb.ipynb", f"import pathlib, time\npathlib.Path({str(mark)!r}).touch()\n"
                                                    "time.sleep(120)")  # fmt: skip
    target = tmp_path / "out" / "nb.ipynb"
    cmd = [sys.executable, "-m", "factored.render", str(notebook), str(target), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
    try:
        deadline = time.monotonic() + 240  # a kernel importing on a loaded 2-core machine
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mark.exists(), "the notebook never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and not target.exists()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err  # the kernel's log is quiet too
