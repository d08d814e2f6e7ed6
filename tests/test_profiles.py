"""The `laptop` profile is the target study's chosen cell: its runs are the study's runs, folder for folder."""

import importlib.util
from pathlib import Path

import pytest

from factored.config import make_config

STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "target_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("target_study", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("eps", "seed", "process", "fields"),
    [(0.0, 0, "", {}), (0.0, 2, "", {}), (0.2, 0, "", {}), (0.5, 1, "", {}),
     (0.0, 0, "chain", dict(structure="chain")), (0.0, 0, "lstm", dict(arch="lstm", d_model=32, n_layers=2))],
)  # fmt: skip
def test_the_laptop_profile_trains_the_study_s_chosen_runs(study, eps, seed, process, fields):
    # equal configs, bookkeeping included: the notebooks load the study's runs, and a fresh clone retrains them
    chosen = study.run_config(study.cell(*study.CHOSEN, eps, seed, process=process))
    assert make_config("laptop", noise=eps, seed=seed, **fields) == chosen


def test_token_training_is_one_field_away(study):
    tokens = study.run_config(study.cell("paper", "tokens"))
    assert make_config("laptop", target="tokens") == tokens
    assert make_config("laptop").train.target == "law" and make_config("paper").train.target == "tokens"


@pytest.mark.parametrize(("eps", "seed"), [(0.0, 0), (0.5, 1)])
def test_the_study_s_long_cells_are_the_long_profile_s_runs(study, eps, seed):
    long = study.run_config(study.cell("paper", "tokens", eps, seed, budget="long"))
    assert make_config("long", noise=eps, seed=seed) == long
    assert (long.train.target, long.train.steps, long.model) == ("tokens", 20_000, make_config("laptop").model)


def test_the_study_s_long_batch_cell_sees_the_long_run_s_sequences_at_4x_the_batch(study):
    long = study.run_config(study.cell("paper", "tokens", 0.5, 0, budget="long"))
    wide = study.run_config(study.cell("paper", "tokens", 0.5, 0, batch=1024, budget="long"))
    assert wide.train.batch_size == 4 * long.train.batch_size
    for field in ("steps", "warmup_steps", "checkpoint_every", "log_every"):  # every sequence count stays
        assert getattr(wide.train, field) * 1024 == getattr(long.train, field) * 256, field
    assert (wide.data, wide.model, wide.train.target, wide.train.lr) == (long.data, long.model, "tokens", 4e-3)
