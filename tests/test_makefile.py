"""`make render` (the committed notebooks) executes every notebook exactly as `make run` (a fresh clone) does:
single-threaded lanes, so the committed numbers are the floats a fresh clone reproduces."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(target: str) -> list[str]:
    """The notebook executions `make -n <target>` would run (the setup step stays as it is)."""
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return re.findall(r"env -u FACTORED_PROFILE [^;&|]*factored\.render \S+ \S+", out)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_render_executes_the_notebooks_as_run_does():
    run, render = dry_run("run"), dry_run("render")
    assert len(run) == len(render) == 1  # one lane runner, called for both
    for command in (run[0], render[0]):
        assert "OMP_NUM_THREADS=1" in command  # single-threaded, as every committed run was trained
    assert run[0].replace("outputs/notebooks/", "notebooks/") == render[0]  # the same command, another folder
