import shutil
from pathlib import Path

import jupytext
import pytest
from check_notebook_pairs import pair_problems

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_committed_pairs_are_in_sync():
    assert pair_problems(NOTEBOOKS) == []


@pytest.fixture
def pair(tmp_path):
    src = "# %% [markdown]\n# Title\n\n# %% tags=['parameters']\nnoise = 0.0\n\n# %%\nprint(noise)\n"
    (tmp_path / "01_x.py").write_text(src)
    jupytext.write(jupytext.reads(src, fmt="py:percent"), tmp_path / "01_x.ipynb")
    return tmp_path


def test_detects_edit_missing_file_and_lost_tag(pair):
    assert pair_problems(pair) == []
    py = pair / "01_x.py"
    py.write_text(py.read_text().replace("print(noise)", "print(noise * 2)"))
    assert "differ from cell 2" in pair_problems(pair)[0]
    py.write_text(py.read_text().replace("print(noise * 2)", "print(noise)").replace("tags=['parameters']", ""))
    assert "differ from cell 1" in pair_problems(pair)[0]
    shutil.copy(pair / "01_x.ipynb", pair / "02_y.ipynb")
    assert any("02_y: missing 02_y.py" in p for p in pair_problems(pair))
