"""Factor discovery at the edges of floating point: rows that do not vary, and activations at scales far from 1."""

import numpy as np
import pytest
from test_discovery import beliefs  # noqa: F401  (the fixture: true beliefs of the paper's five factors)

from factored import discovery, discovery_eval


def test_constant_rows_vary_in_no_direction_whatever_the_centring_round_off():
    row = np.random.default_rng(0).normal(size=(1, 3, 12)) * 100  # its mean over sequences is not exact
    acts = np.repeat(row, 500, axis=0)
    assert np.abs(discovery.centre_positions(acts)).max() > 0  # round-off is left after centring
    assert discovery.numerical_rank(acts) == 0
    with pytest.raises(ValueError, match=r"^acts vary in 0 directions once each position is centred"):
        discovery.find_factors(acts)


@pytest.mark.parametrize("scale", [1e160, 1e-170])
def test_the_factors_are_found_at_any_scale(beliefs, scale):  # noqa: F811
    acts, _ = discovery_eval.synthetic_activations(beliefs[:2], d=12, seed=5)
    expected = discovery.find_factors(acts)
    report = discovery.find_factors(acts * scale)
    assert report.n_factors == expected.n_factors == 2 and report.k == expected.k
    assert discovery_eval.match_subspaces(report.subspaces, expected.subspaces)[1].max(axis=1).min() > 0.99
    assert discovery.numerical_rank(acts * scale) == discovery.numerical_rank(acts)
