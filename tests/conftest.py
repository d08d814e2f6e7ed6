import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import the helper scripts beside them


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """A private, empty outputs folder for the runs of notebooks executed in a test, and the environment CI gives
    their kernels (which inherit it): the smoke profile, one torch thread, no progress bars, no windows."""
    folder = tmp_path / "outputs"
    folder.mkdir()
    for key, value in {
        "FACTORED_OUTPUTS": str(folder),
        "FACTORED_PROFILE": "smoke",
        "OMP_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "MPLBACKEND": "Agg",
    }.items():
        monkeypatch.setenv(key, value)
    return folder


@pytest.fixture
def one_thread():
    """One torch thread for tiny models (fastest, and no fight over the shared cores); restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
