"""Rendering and sweeping under faults: a kernel that dies, a render that cannot start, two renders of one
target."""

from test_render import tiny_notebook

from factored import render, sweep
from factored.sweep_spec import Point


def test_a_sweep_point_whose_kernel_dies_names_the_cause(tmp_path, outputs):
    notebook = tiny_notebook(tmp_path / "nb.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    out_dir = tmp_path / "sweep"
    out_dir.mkdir()
    result = sweep.run_point(str(notebook), str(out_dir), Point("x=1", {"x": 1}), 1, str(outputs))
    assert result.status == "failed"
    assert "the kernel died, likely out of memory" in result.error, result.error
    assert (out_dir / "x=1.failed.txt").read_text().splitlines()[0].endswith(result.error)


def test_a_render_that_cannot_start_names_no_file_it_did_not_write(tmp_path, outputs, capsys):
    missing = tmp_path / "missing.ipynb"
    target = tmp_path / "out" / "nb.ipynb"
    assert render.main([str(missing), str(target), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed.ipynb" not in err and not render.failed_path(target).exists(), err
    assert not list(target.parent.glob(".*partial*"))
    (tmp_path / "a-file").write_text("not a folder")
    target = tmp_path / "a-file" / "nb.ipynb"  # its parent is a file
    assert render.main([str(tiny_notebook(tmp_path / "nb.ipynb", "pass")), str(target), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed.ipynb" not in err and "a-file" in err and len(err.strip().splitlines()) == 2, err


def test_two_renders_of_one_target_write_separate_partial_files(tmp_path):
    target = tmp_path / "nb.ipynb"
    with render.claimed_partial(target) as first, render.claimed_partial(target) as second:
        assert first == render.partial_path(target) and second != first
        assert second.name.startswith(".nb.") and second.name.endswith(".partial.ipynb")
    with render.claimed_partial(target) as again:  # released: the usual name again
        assert again == render.partial_path(target)
