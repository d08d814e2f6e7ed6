"""Notebooks 04_noise and 06_dependencies: papermill runs at the smoke profile, parameter checks that stop a
bad run before anything is written, and the theory they rest on (Monte-Carlo optimal loss at eps = 0)."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from notebook_runs import execute, printed, run_checks, run_folders

from factored import config, probing, products, sampling, tables, theory
from factored.processes import bloch_walk, mess3
from factored.trajectory import Checkpoint, dimension_phases


def snapshot(outputs: Path) -> dict[str, int]:
    return {str(p.relative_to(outputs)): p.stat().st_mtime_ns for p in outputs.rglob("*") if p.is_file()}


def test_noise_notebook_runs_and_holds_the_results_table_and_a_bad_run_changes_nothing(outputs, tmp_path):
    """The one papermill run of 04 here (nbval runs it at the default eps): its own run and the eps = 0 run
    beside it; then a run with a bad eps stops in the checking cell and leaves both as they were."""
    nb = execute("04_noise", tmp_path / "out.ipynb", noise=0.1)
    text = printed(nb)
    assert re.search(r"^ +eps = 0.1 ", text, re.MULTILINE)  # the results table's header
    for row in ("fidelity cost of factoring", "optimal loss", "final dims@95 (step)", "mean overlap k = 1, 2"):
        assert row in text
    assert "Factored phase at" in text and "Expansion at" in text
    canonical = config.make_config("smoke").run_id
    assert run_folders(outputs) == sorted([canonical, config.make_config("smoke", noise=0.1).run_id])
    before = snapshot(outputs)
    with pytest.raises(ValueError, match=r"noise must be a number in \[0, 1\], got 2"):
        run_checks("04_noise", noise=2)
    assert snapshot(outputs) == before


def test_an_int_noise_of_0_names_the_canonical_run(outputs):
    """papermill passes `-p noise 0` as an int: it is the canonical run, not a second copy of it."""
    namespace = run_checks("04_noise", noise=0)
    assert namespace["noise"] == 0.0 and isinstance(namespace["noise"], float)
    assert namespace["cfg"] == config.make_config("smoke")


def same_variants_chain(m, b):
    """A chain whose variants are all equal: the same process as independent factors, built as a chain."""
    return products.chain([m, (m,) * 3, (m,) * 3, (b,) * 3, (b,) * 4])


def test_chain_and_noise_estimates_agree_with_the_exact_value_at_eps_0():
    m, b = mess3(0.15, 0.6), bloch_walk(1.0, 3.0)
    exact, _ = theory.optimal_loss(products.paper_process(), 8)
    assert exact.mean() == pytest.approx(5.92558, abs=5e-6)
    for process in (same_variants_chain(m, b), products.paper_process(noise=1e-12)):
        estimate, stderr = theory.optimal_loss(process, 8, n_samples=4_000, seed=1)
        assert np.all(stderr > 0)  # the Monte-Carlo path, not the exact one
        np.testing.assert_array_less(np.abs(estimate - exact), 5 * stderr + 1e-10)  # + round-off
        cost, _ = theory.fidelity_cost(process, 8, n_samples=1_000, seed=1)
        np.testing.assert_allclose(cost, 0, atol=1e-9)
    forced, stderr = theory.optimal_loss(products.paper_process(), 8, n_samples=4_000, seed=1, exact=False)
    np.testing.assert_array_less(np.abs(forced - exact), 5 * stderr + 1e-10)


def _dims_only(dims: dict[int, int]) -> dict:
    """A trajectory that knows only its dims@95 (every other field empty)."""
    return {s: Checkpoint([], {0.95: d}, [], [], 0.0, 0.0, 0.0) for s, d in dims.items()}


def test_dimension_phases_finds_the_plateau_and_the_expansion():
    dims = {0: 60, 10: 40, 100: 3, 200: 8, 300: 10, 1000: 11, 3000: 12, 10000: 19, 30000: 24}
    p = dimension_phases(_dims_only(dims), factored_dims=10, tol=2)
    assert (p["init_dims95"], p["min_dims95"], p["min_step"]) == (60, 3, 100)
    assert p["phase_steps"] == [200, 300, 1000, 3000] and p["phase_span"] == 15
    assert p["final_dims95"] == 24 and p["expanded"]
    flat = dimension_phases(_dims_only({0: 60, 5: 30}), 10)
    assert flat["phase_steps"] == [] and flat["phase_span"] == 0 and flat["expanded"]
    table = tables.phases_table({"run": p, "flat": flat}, factored_dim=10)
    assert table.loc["run"].tolist() == [60, "3 (100)", "steps 200-3000", 4, "24 (30000)"]
    assert table.loc["flat"].tolist() == [60, "30 (5)", "none", 0, "30 (5)"]


class _Logits(torch.nn.Module):
    """A stand-in model that predicts fixed joint logits at every position."""

    uses_bos = True

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits)

    def forward(self, inputs, capture=()):
        return self.logits.expand(*inputs.shape, -1), {}


def test_prediction_total_correlation_is_zero_for_a_factored_prediction():
    process = products.paper_process()
    tokens, _ = sampling.sample(process, 6, 8, seed=0)
    gen = torch.Generator().manual_seed(0)
    per_factor = [torch.randn(v, generator=gen, dtype=torch.float64) for v in process.factor_vocab_sizes]
    additive = products.decode(process, torch.arange(process.vocab_size))  # [432, 5] sub-tokens
    logits = sum(per_factor[n][additive[:, n]] for n in range(process.n_factors))  # log of a product law
    bos = torch.tensor([-1e9], dtype=torch.float64)  # BOS is never predicted; it is left out anyway
    tc = probing.prediction_total_correlation(_Logits(torch.cat([logits, bos])), process, tokens)
    assert tc.shape == (6, 8)
    np.testing.assert_allclose(tc, 0, atol=1e-12)
    joint = torch.randn(process.model_vocab_size, generator=gen, dtype=torch.float64)
    assert (probing.prediction_total_correlation(_Logits(joint), process, tokens) > 1e-3).all()
