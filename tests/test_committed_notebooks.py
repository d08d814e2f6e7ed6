"""The committed notebooks look finished: small enough to keep in the history, no frozen progress bars, no paths of
the machine that rendered them."""

import json
import re

import pytest
from notebook_runs import NOTEBOOKS

MAX_BYTES = 600_000  # figures legible at notebook size; every re-render adds this much to the history at most
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
MACHINE_PATH = re.compile(rf"(/tmp/|/home/|/root/|/Users/|[A-Z]:\\\\|{re.escape(str(NOTEBOOKS.parent))})")


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=[p.stem for p in NOTEBOOK_FILES])
def test_committed_notebook_is_small_finished_and_machine_free(path):
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"
    nb = json.loads(path.read_text())
    assert "widgets" not in nb["metadata"]  # progress-bar widget state: bars frozen at their last frame
    assert not MACHINE_PATH.search(json.dumps(nb["metadata"])), "machine paths in the notebook metadata"
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {})
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            assert not re.search(r"\b0%\|", text), f"{path.name}: a progress bar frozen at 0%"
            assert not MACHINE_PATH.search(text), f"{path.name}: a machine path in an output: {text[:200]!r}"
